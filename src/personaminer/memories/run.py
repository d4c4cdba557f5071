"""Stage 1, the driver: map :func:`build_memories` over a workspace's users, resumably.

A memory set is a named output with a lineage (:mod:`personaminer.lineage`): its fingerprint
hashes the config, the prompt version, the model and embedder, the stage's code version and,
for ``view="history"``, the split. Asking for a set name whose fingerprint differs is refused
(or, with ``replace``, the old set and what was built on it are deleted first).

Each user-day is written in one transaction together with its ``memory_days`` row, which records
a hash of the day's action ids: after a crash a re-run skips exactly the days that were stored
and redoes the rest, and a day whose actions changed since (a later ingest) is rebuilt, never
reused. Memory ids are content hashes, so the result equals that of an uninterrupted run. LLM
answers are cached by the model runtime, so a redone day costs no model call when its answer was
already received.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from personaminer import lineage, tables, terminal
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.memories.build import PROMPT_NAME, DayResult, MemoryConfig, build_memories, days_of, select_days
from personaminer.memories.hybrid import prompt_tag
from personaminer.prompts import load_prompt
from personaminer.schema import Action
from personaminer.store import Workspace, WorkspaceError

log = logging.getLogger(__name__)

#: The stage's code version, part of every memory set's fingerprint: bump it when the memories
#: built for the same config change.
CODE = "memories/1"


def memory_output(ws: Workspace, config: MemoryConfig, *, embedder: Embedder, llm: LLM | None,
                  redact: bool) -> lineage.Output:
    """The lineage entry of a memory set built with ``config`` (and these models) in ``ws``."""
    parents: tuple[str, ...] = ()
    if config.view == "history":
        split = lineage.fingerprint_of(ws.con, "split", "split")
        if split is None:
            raise WorkspaceError(f"memories from the history need a split: run `personaminer split -w {ws.path}` "
                                 "first")
        parents = (split,)
    uses_llm = config.uses_llm
    if uses_llm and llm is None:
        raise ValueError(f"mode {config.mode!r} needs an llm")
    prompt = None
    if config.mode == "llm-segment":
        p = load_prompt(PROMPT_NAME, config.prompt_version)
        prompt = f"{p.name}.v{p.version}"
    elif config.mode == "llm":
        prompt = prompt_tag()
    return lineage.Output(
        "memories", str(config.memory_set), CODE, {**config.output_config(), "redact": redact if uses_llm else None},
        parents, prompt=prompt,
        model=llm.model_id if uses_llm and llm is not None else None, embedder=embedder.model_id)


def write_day(ws: Workspace, memory_set: str, fingerprint: str, day: DayResult, input_hash: str) -> None:
    """Store one user-day's memories and its bookkeeping row atomically."""
    with ws.transaction() as con:
        tables.memories.write_day(con, memory_set, fingerprint, day.user_id, day.day, day.memories, {
            "status": day.status, "n_actions": day.n_actions, "llm_requests": day.llm_requests,
            "llm_model_calls": day.llm_model_calls, "prompt_tokens": day.prompt_tokens,
            "completion_tokens": day.completion_tokens, "note": day.note, "input_hash": input_hash})


def _inputs(ws: Workspace, user_id: str, view: str) -> list[Action]:
    return ws.history_actions(user_id) if view == "history" else ws.user_actions(user_id)


def run_memories(ws: Workspace, users: Sequence[str], config: MemoryConfig, *, embedder: Embedder,
                 llm: LLM | None = None, redact: bool | None = None, replace: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Build and store intent memories for ``users``; return the summary (also written to reports).

    Raises :class:`~personaminer.lineage.LineageConflict` when the set's name is taken by memories
    built otherwise, unless ``replace``.
    """
    memory_set = str(config.memory_set)
    do_redact = bool(config.redact if config.redact is not None else redact)
    out = memory_output(ws, config, embedder=embedder, llm=llm, redact=do_redact)
    if config.view == "all" and ws.has_table("splits") and tables.protocol.split_users(ws.con):
        log.warning("this workspace has a split, and memory set %r reads every action, the future included: it "
                    "cannot be evaluated (use view='history', `memories --history`, for that)", memory_set)
    per_user: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    totals = {"days": 0, "days_skipped": 0, "days_rebuilt": 0, "memories": 0, "actions": 0, "llm_requests": 0,
              "llm_model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "fallback_days": 0,
              "repaired_days": 0, "questions": 0, "summaries": 0}
    with ws.run("memories", {**config.to_dict(), "users": len(users), "redact": do_redact,
                             "fingerprint": out.fingerprint}) as run, terminal.progress(
            TextColumn("memories"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), disable=not progress) as bar:
        outcome = lineage.claim(ws, out, replace=replace, run_id=run["run_id"])
        task = bar.add_task("users", total=len(users), stats="")
        for user_id in users:
            u = _user(ws, user_id, config, out.fingerprint, embedder=embedder, llm=llm, redact=do_redact)
            per_user[user_id] = u
            for k in totals:
                totals[k] += u[k]
            elapsed = time.perf_counter() - t0
            bar.update(task, advance=1, stats=f"{totals['memories']:,} memories, "
                                              f"{totals['completion_tokens'] / elapsed:,.1f} tok/s")
        seconds = time.perf_counter() - t0
        summary = {
            "memory_set": memory_set, "fingerprint": out.fingerprint, "lineage": outcome, "config": config.to_dict(),
            "redacted": do_redact, "model": llm.model_id if (llm is not None and config.uses_llm) else None,
            "users": len(users), **totals,
            "actions_per_memory": round(totals["actions"] / totals["memories"], 2) if totals["memories"] else None,
            **cost_per(totals, len(users)),
            "seconds": round(seconds, 2), "users_per_hour": round(len(users) / seconds * 3600, 1) if seconds else None,
            "check": verify_memories(ws, memory_set),
            "per_user": per_user,
        }
        run.update({k: v for k, v in summary.items() if k != "per_user"})
    ws.write_report("memories", summary)
    return summary


def _user(ws: Workspace, user_id: str, config: MemoryConfig, fingerprint: str, *, embedder: Embedder,
          llm: LLM | None, redact: bool) -> dict[str, Any]:
    """Build and store one user's missing (or stale) days; that user's counts."""
    actions = _inputs(ws, user_id, config.view)
    by_day = days_of(actions)
    chosen = select_days(list(by_day), config.max_days)
    hashes = {d: tables.actions.ids_hash([a.action_id for a in by_day[d]]) for d in chosen}
    stored = tables.memories.done_days(ws.con, str(config.memory_set), user_id)
    done = {d for d in chosen if d in stored and stored[d] in (hashes[d], None)}
    rebuilt = sum(d in stored and d not in done for d in chosen)
    results = build_memories(actions, config, embedder=embedder, llm=llm, skip_days=done, redact=redact)
    for day in results:
        write_day(ws, str(config.memory_set), fingerprint, day, hashes[day.day])
    u = {"days": len(results), "days_skipped": len(done), "days_rebuilt": rebuilt,
         "memories": sum(len(d.memories) for d in results), "actions": sum(d.n_actions for d in results),
         "llm_requests": sum(d.llm_requests for d in results), "llm_model_calls": sum(d.llm_model_calls for d in results),
         "prompt_tokens": sum(d.prompt_tokens for d in results),
         "completion_tokens": sum(d.completion_tokens for d in results),
         "fallback_days": sum(d.status == "fallback" for d in results),
         "repaired_days": sum(d.status == "repaired" for d in results),
         "questions": sum(d.questions for d in results), "summaries": sum(d.summaries for d in results)}
    u["actions_per_memory"] = round(u["actions"] / u["memories"], 2) if u["memories"] else None
    return u


def cost_per(totals: dict[str, Any], users: int) -> dict[str, float | None]:
    """LLM tokens per user and per action of what this run built (days already stored cost nothing
    and count in neither)."""
    built_users = users if totals["days"] else 0
    out: dict[str, float | None] = {}
    for k in ("prompt_tokens", "completion_tokens"):
        out[f"{k}_per_user"] = round(totals[k] / built_users, 1) if built_users else None
        out[f"{k}_per_action"] = round(totals[k] / totals["actions"], 3) if totals["actions"] else None
    out["questions_per_action"] = round(totals["questions"] / totals["actions"], 3) if totals["actions"] else None
    return out


def verify_memories(ws: Workspace, memory_set: str) -> dict[str, Any]:
    """Check the stage's invariants over the tables; every count must be 0.

    * ``uncovered``: actions of a processed user-day that are in no memory;
    * ``multiply_covered``: actions in more than one memory;
    * ``foreign``: memory action ids that are not the user's actions of that day;
    * ``non_contiguous``: memories whose actions are not consecutive in the user-day's
      ``(ts, seq)`` order;
    * ``empty``: memories without actions.
    """
    out: dict[str, Any] = dict(tables.memories.verify(ws.con, memory_set))
    out["ok"] = all(v == 0 for v in out.values())
    return out


def load_memories(ws: Workspace, user_id: str, memory_set: str) -> list[dict[str, Any]]:
    """A user's memories in time order, as dicts (for ``show`` and later stages)."""
    return tables.memories.rows(ws.con, user_id, memory_set)
