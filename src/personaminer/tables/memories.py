"""The ``memories`` and ``memory_days`` tables (stage 1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from personaminer.schema import IntentMemory


def write_day(con: duckdb.DuckDBPyConnection, memory_set: str, lineage: str, user_id: str, day: dt.date,
              memories: list[IntentMemory], book: dict[str, Any]) -> None:
    """One user-day: its memories and its ``memory_days`` row (call inside a transaction).

    A day built before is replaced whole (its input changed), so no stale memory survives it.
    """
    con.execute("DELETE FROM memories WHERE memory_set = ? AND user_id = ? AND day = ?", [memory_set, user_id, day])
    con.execute("DELETE FROM memory_days WHERE memory_set = ? AND user_id = ? AND day = ?", [memory_set, user_id, day])
    for m in memories:
        con.execute("INSERT INTO memories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [m.memory_id, m.memory_set, m.user_id, m.day, m.position, m.start_ts, m.end_ts, m.action_ids,
                     m.summary, m.topics, m.mode, m.summary_by, m.model, m.prompt, m.redacted, lineage])
    con.execute("INSERT INTO memory_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [memory_set, user_id, day, book["status"], book["n_actions"], len(memories), book["llm_requests"],
                 book["llm_model_calls"], book["prompt_tokens"], book["completion_tokens"], book["note"], lineage,
                 book["input_hash"]])


def done_days(con: duckdb.DuckDBPyConnection, memory_set: str, user_id: str) -> dict[dt.date, str | None]:
    """``day -> input_hash`` of the user's days stored in ``memory_set``."""
    return dict(con.execute("SELECT day, input_hash FROM memory_days WHERE memory_set = ? AND user_id = ?",
                            [memory_set, user_id]).fetchall())


def delete_set(con: duckdb.DuckDBPyConnection, memory_set: str) -> int:
    n = int(con.execute("SELECT count(*) FROM memories WHERE memory_set = ?", [memory_set]).fetchall()[0][0])
    con.execute("DELETE FROM memories WHERE memory_set = ?", [memory_set])
    con.execute("DELETE FROM memory_days WHERE memory_set = ?", [memory_set])
    return n


def sets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every memory set with at least one memory, sorted."""
    return [r[0] for r in con.execute("SELECT DISTINCT memory_set FROM memories ORDER BY 1").fetchall()]


def items(con: duckdb.DuckDBPyConnection, user_id: str, memory_set: str) -> list[tuple[str, dt.date, str]]:
    """(memory_id, day, summary) of a user's memories in time order."""
    return con.execute("SELECT memory_id, day, summary FROM memories WHERE user_id = ? AND memory_set = ? "
                       "ORDER BY day, position", [user_id, memory_set]).fetchall()


def rows(con: duckdb.DuckDBPyConnection, user_id: str, memory_set: str) -> list[dict[str, Any]]:
    """A user's memories in time order, every column."""
    cur = con.execute("SELECT * FROM memories WHERE user_id = ? AND memory_set = ? ORDER BY day, position",
                      [user_id, memory_set])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def lookup(con: duckdb.DuckDBPyConnection, memory_ids: list[str]) -> dict[str, tuple[dt.date, str, list[str]]]:
    """``memory_id -> (day, summary, action_ids)``."""
    return {m: (d, s, list(a)) for m, d, s, a in con.execute(
        "SELECT memory_id, day, summary, action_ids FROM memories WHERE list_contains(?, memory_id)",
        [memory_ids]).fetchall()}


def user_summaries(con: duckdb.DuckDBPyConnection, user_id: str) -> dict[str, str]:
    """``memory_id -> summary`` of every memory of a user (any set)."""
    return dict(con.execute("SELECT memory_id, summary FROM memories WHERE user_id = ?", [user_id]).fetchall())


def summaries_by_user(con: duckdb.DuckDBPyConnection, memory_set: str, users: list[str]) -> list[tuple[str, str]]:
    """(user, summary) of ``users`` in ``memory_set``, in user then time order."""
    return con.execute("SELECT user_id, summary FROM memories WHERE memory_set = ? AND list_contains(?, user_id) "
                       "ORDER BY user_id, day, position", [memory_set, users]).fetchall()


def tokens_by_user(con: duckdb.DuckDBPyConnection, memory_set: str, users: list[str]) -> dict[str, int]:
    """LLM tokens (prompt + completion) each user's memories in ``memory_set`` cost."""
    return {u: int(n or 0) for u, n in con.execute(
        "SELECT user_id, sum(prompt_tokens + completion_tokens) FROM memory_days WHERE memory_set = ? AND "
        "list_contains(?, user_id) GROUP BY 1", [memory_set, users]).fetchall()}


def reference_sample(con: duckdb.DuckDBPyConnection, memory_set: str, user_id: str, seed: int,
                     size: int) -> list[str]:
    """A fixed seeded sample of other users' memory summaries in ``memory_set``."""
    return [r[0] for r in con.execute(
        "SELECT summary FROM memories WHERE memory_set = ? AND user_id <> ? ORDER BY hash(memory_id || ?) LIMIT ?",
        [memory_set, user_id, str(seed), size]).fetchall()]


def actions_of(con: duckdb.DuckDBPyConnection, memory_id: str) -> list[tuple[str, str]]:
    """(kind, text) of a memory's actions."""
    return con.execute("SELECT a.kind, a.text FROM memories m, unnest(m.action_ids) AS u(action_id) "
                       "JOIN actions a ON a.action_id = u.action_id WHERE m.memory_id = ?", [memory_id]).fetchall()


def action_facts(con: duckdb.DuckDBPyConnection, user_id: str, memory_set: str
                 ) -> list[tuple[str, dt.date, str, str, float | None, float | None]]:
    """(memory_id, day, action kind, action text, rating, price) of every action of the user's memories."""
    return con.execute(
        "SELECT m.memory_id, m.day, a.kind, a.text, try_cast(a.attrs->>'rating' AS DOUBLE), "
        "try_cast(a.attrs->>'price' AS DOUBLE) FROM memories m, unnest(m.action_ids) AS u(action_id) "
        "JOIN actions a ON a.action_id = u.action_id WHERE m.user_id = ? AND m.memory_set = ?",
        [user_id, memory_set]).fetchall()


def verify(con: duckdb.DuckDBPyConnection, memory_set: str) -> dict[str, int]:
    """The stage's invariants over the tables (see ``memories.run.verify_memories``); every count must be 0."""
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
    out = {k: int(con.execute(sql, {"s": memory_set} if "$s" in sql else {}).fetchall()[0][0]) for k, sql in q.items()}
    con.execute("DROP TABLE _mem_actions")
    return out
