"""Stage 1, the driver: map :func:`build_memories` over a workspace's users, resumably.

Each user-day is written in one transaction together with its ``memory_days`` row, so after
a crash a re-run skips exactly the days that were stored and redoes the rest; memory ids are
content hashes, so the result equals that of an uninterrupted run. LLM answers are cached by
the model runtime, so a redone day costs no model call when its answer was already received.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from personaminer import terminal
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.memories.build import DayResult, MemoryConfig, build_memories, days_of, select_days
from personaminer.schema import MEMORIES_DDL, MEMORY_DAYS_DDL
from personaminer.store import Workspace

log = logging.getLogger(__name__)


def ensure_tables(ws: Workspace) -> None:
    ws.con.execute(MEMORIES_DDL)
    ws.con.execute(MEMORY_DAYS_DDL)


def _done_days(ws: Workspace, memory_set: str, user_id: str) -> set:
    return {r[0] for r in ws.con.execute(
        "SELECT day FROM memory_days WHERE memory_set = ? AND user_id = ?", [memory_set, user_id]).fetchall()}


def write_day(ws: Workspace, memory_set: str, day: DayResult) -> None:
    """Store one user-day's memories and its bookkeeping row atomically."""
    con = ws.con
    con.execute("BEGIN TRANSACTION")
    try:
        for m in day.memories:
            con.execute(
                "INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [m.memory_id, m.memory_set, m.user_id, m.day, m.position, m.start_ts, m.end_ts, m.action_ids,
                 m.summary, m.topics, m.mode, m.summary_by, m.model, m.prompt, m.redacted])
        con.execute(
            "INSERT INTO memory_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [memory_set, day.user_id, day.day, day.status, day.n_actions, len(day.memories), day.llm_requests,
             day.llm_model_calls, day.prompt_tokens, day.completion_tokens, day.note])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def run_memories(ws: Workspace, users: Sequence[str], config: MemoryConfig, *, embedder: Embedder,
                 llm: LLM | None = None, redact: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """Build and store intent memories for ``users``; return the summary (also written to reports)."""
    ensure_tables(ws)
    memory_set = config.memory_set or config.mode
    do_redact = bool(config.redact if config.redact is not None else redact)
    per_user: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    totals = {"days": 0, "days_skipped": 0, "memories": 0, "actions": 0, "llm_requests": 0, "llm_model_calls": 0,
              "prompt_tokens": 0, "completion_tokens": 0, "fallback_days": 0, "repaired_days": 0}
    with ws.run("memories", {**config.to_dict(), "users": len(users), "redact": do_redact}) as run, terminal.progress(
            TextColumn("memories"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("users", total=len(users), stats="")
        for user_id in users:
            actions = ws.user_actions(user_id)
            done = _done_days(ws, memory_set, user_id) & set(select_days(list(days_of(actions)), config.max_days))
            results = build_memories(actions, config, embedder=embedder, llm=llm, skip_days=done, redact=do_redact)
            for day in results:
                write_day(ws, memory_set, day)
            u = {"days": len(results), "days_skipped": len(done), "memories": sum(len(d.memories) for d in results),
                 "actions": sum(d.n_actions for d in results),
                 "llm_requests": sum(d.llm_requests for d in results),
                 "llm_model_calls": sum(d.llm_model_calls for d in results),
                 "prompt_tokens": sum(d.prompt_tokens for d in results),
                 "completion_tokens": sum(d.completion_tokens for d in results),
                 "fallback_days": sum(d.status == "fallback" for d in results),
                 "repaired_days": sum(d.status == "repaired" for d in results)}
            u["actions_per_memory"] = round(u["actions"] / u["memories"], 2) if u["memories"] else None
            per_user[user_id] = u
            for k in totals:
                totals[k] += u[k]
            elapsed = time.perf_counter() - t0
            bar.update(task, advance=1, stats=f"{totals['memories']:,} memories, "
                                              f"{totals['completion_tokens'] / elapsed:,.1f} tok/s")
        seconds = time.perf_counter() - t0
        summary = {
            "memory_set": memory_set, "config": config.to_dict(), "redacted": do_redact,
            "model": llm.model_id if (llm is not None and config.mode == "llm") else None,
            "users": len(users), **totals,
            "actions_per_memory": round(totals["actions"] / totals["memories"], 2) if totals["memories"] else None,
            "seconds": round(seconds, 2), "users_per_hour": round(len(users) / seconds * 3600, 1) if seconds else None,
            "check": verify_memories(ws, memory_set),
            "per_user": per_user,
        }
        run.update({k: v for k, v in summary.items() if k != "per_user"})
    ws.write_report("memories", summary)
    return summary


def verify_memories(ws: Workspace, memory_set: str) -> dict[str, Any]:
    """Check the stage's invariants over the tables; every count must be 0.

    * ``uncovered``: actions of a processed user-day that are in no memory;
    * ``multiply_covered``: actions in more than one memory;
    * ``foreign``: memory action ids that are not the user's actions of that day;
    * ``non_contiguous``: memories whose actions are not consecutive in the user-day's
      ``(ts, seq)`` order;
    * ``empty``: memories without actions.
    """
    con = ws.con
    con.execute("""CREATE OR REPLACE TEMP TABLE _mem_actions AS
        SELECT m.memory_id, m.user_id, m.day, unnest(m.action_ids) AS action_id
        FROM memories m WHERE m.memory_set = $s""", {"s": memory_set})
    q = {
        "uncovered": """SELECT count(*) FROM actions a JOIN memory_days d
                        ON d.memory_set = $s AND d.user_id = a.user_id AND d.day = CAST(a.ts AS DATE)
                        WHERE a.action_id NOT IN (SELECT action_id FROM _mem_actions)""",
        "multiply_covered": """SELECT count(*) FROM (SELECT action_id FROM _mem_actions GROUP BY 1
                               HAVING count(*) > 1)""",
        "foreign": """SELECT count(*) FROM _mem_actions x LEFT JOIN actions a ON a.action_id = x.action_id
                      WHERE a.action_id IS NULL OR a.user_id <> x.user_id OR CAST(a.ts AS DATE) <> x.day""",
        "non_contiguous": """SELECT count(*) FROM (
                SELECT x.memory_id, max(r.rk) - min(r.rk) + 1 AS span, count(*) AS n
                FROM _mem_actions x JOIN (
                    SELECT action_id, row_number() OVER (PARTITION BY user_id, CAST(ts AS DATE) ORDER BY ts, seq) AS rk
                    FROM actions WHERE user_id IN (SELECT DISTINCT user_id FROM _mem_actions)) r
                  ON r.action_id = x.action_id GROUP BY 1) WHERE span <> n""",
        "empty": "SELECT count(*) FROM memories WHERE memory_set = $s AND len(action_ids) = 0",
    }
    out = {k: con.execute(v, {"s": memory_set} if "$s" in v else {}).fetchall()[0][0] for k, v in q.items()}
    con.execute("DROP TABLE _mem_actions")
    out["ok"] = all(v == 0 for v in out.values())
    return out


def load_memories(ws: Workspace, user_id: str, memory_set: str) -> list[dict[str, Any]]:
    """A user's memories in time order, as dicts (for ``show`` and later stages)."""
    cur = ws.con.execute("SELECT * FROM memories WHERE user_id = ? AND memory_set = ? ORDER BY day, position",
                         [user_id, memory_set])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

