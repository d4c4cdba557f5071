"""The evaluation protocol's tables: ``splits`` (each user's cutoff) and ``roles`` (held-out roles)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb


# -- splits ---------------------------------------------------------------------------------
def split_keys(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """``user_id -> rule_key`` of every split user."""
    return dict(con.execute("SELECT user_id, rule_key FROM splits").fetchall())


def replace_splits(con: duckdb.DuckDBPyConnection, users: list[str], rows: list[list[Any]]) -> None:
    """Delete the split rows of ``users`` and insert ``rows`` (call inside a transaction)."""
    con.execute("DELETE FROM splits WHERE list_contains(?, user_id)", [users])
    if rows:
        con.executemany("INSERT INTO splits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def split_stats(con: duckdb.DuckDBPyConnection, rule_key: str) -> tuple[Any, ...]:
    """(users, history actions, future actions, mean history days, mean future days, min, max cutoff)."""
    return con.execute(
        "SELECT count(*), sum(n_history_actions), sum(n_future_actions), avg(history_days), avg(future_days), "
        "min(cutoff_ts), max(cutoff_ts) FROM splits WHERE rule_key = ?", [rule_key]).fetchall()[0]


def split_summary(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    """Per rule key: (rule_key, users, mean history days, mean future days, history actions, future actions)."""
    return con.execute("SELECT rule_key, count(*), avg(history_days), avg(future_days), sum(n_history_actions), "
                       "sum(n_future_actions) FROM splits GROUP BY 1 ORDER BY 2 DESC").fetchall()


def split_users(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT user_id FROM splits ORDER BY user_id").fetchall()]


def cutoff(con: duckdb.DuckDBPyConnection, user_id: str) -> dt.datetime | None:
    rows = con.execute("SELECT cutoff_ts FROM splits WHERE user_id = ?", [user_id]).fetchall()
    return rows[0][0] if rows else None


def split_interactions(con: duckdb.DuckDBPyConnection, kinds: list[str]) -> list[tuple[str, str, bool, float]]:
    """(user, text, is_future, days before the cutoff) of every split user's actions of ``kinds``, in
    (user, ts, seq) order."""
    return con.execute(
        "SELECT a.user_id, a.text, a.ts >= s.cutoff_ts AS fut, "
        "(epoch(s.cutoff_ts) - epoch(a.ts)) / 86400.0 AS age FROM actions a JOIN splits s USING (user_id) "
        "WHERE list_contains(?, a.kind) ORDER BY a.user_id, a.ts, a.seq", [kinds]).fetchall()


def split_kinds(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT DISTINCT kind FROM actions WHERE user_id IN (SELECT user_id FROM splits) ORDER BY 1").fetchall()]


def leaky_memories(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Memories of split users holding an action at or after the cutoff (or ending after it), sorted."""
    return [r[0] for r in con.execute(
        """SELECT DISTINCT m.memory_id FROM memories m JOIN splits s ON s.user_id = m.user_id
           LEFT JOIN (SELECT memory_id, unnest(action_ids) AS action_id FROM memories) x ON x.memory_id = m.memory_id
           LEFT JOIN actions a ON a.action_id = x.action_id
           WHERE m.end_ts >= s.cutoff_ts OR m.start_ts >= s.cutoff_ts OR a.ts >= s.cutoff_ts ORDER BY 1""").fetchall()]


def personas_citing(con: duckdb.DuckDBPyConnection, memory_ids: list[str]) -> tuple[int, int]:
    """(personas, persona sets) whose evidence includes one of ``memory_ids``."""
    row = con.execute("""SELECT count(DISTINCT persona_id), count(DISTINCT set_id) FROM
                         (SELECT persona_id, set_id, unnest(evidence) AS memory_id FROM personas)
                         WHERE list_contains(?, memory_id)""", [memory_ids]).fetchall()[0]
    return int(row[0]), int(row[1])


# -- roles ----------------------------------------------------------------------------------
def roles(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT user_id, role FROM roles").fetchall())


def add_roles(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, int]]) -> None:
    if rows:
        con.executemany("INSERT INTO roles VALUES (?, ?, ?)", rows)


def role_users(con: duckdb.DuckDBPyConnection, role: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT user_id FROM roles WHERE role = ? ORDER BY user_id", [role]).fetchall()]
