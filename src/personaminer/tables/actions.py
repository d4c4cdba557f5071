"""The ``actions`` and ``quarantine`` tables (written by :mod:`personaminer.ingest`), read here."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

import duckdb

from personaminer.schema import Action

_COLS = "action_id, user_id, ts, kind, text, item_id, attrs, source, seq"


def info(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Counts, users, time span, actions-per-user percentiles, kinds, sources, quarantine reasons."""
    n_actions, n_users, t0, t1 = con.execute(
        "SELECT count(*), count(DISTINCT user_id), min(ts), max(ts) FROM actions").fetchall()[0]
    pct = con.execute("SELECT quantile_cont(n, [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]) FROM "
                      "(SELECT count(*) AS n FROM actions GROUP BY user_id)").fetchall()[0][0]
    labels = ["min", "p25", "median", "p75", "p90", "p99", "max"]
    reasons = dict(con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 2 DESC").fetchall())
    return {
        "actions": n_actions, "users": n_users, "first_ts": t0, "last_ts": t1,
        "actions_per_user": dict(zip(labels, pct, strict=True)) if pct else {},
        "kinds": dict(con.execute("SELECT kind, count(*) FROM actions GROUP BY kind ORDER BY 2 DESC").fetchall()),
        "sources": dict(con.execute("SELECT source, count(*) FROM actions GROUP BY source ORDER BY 2 DESC").fetchall()),
        "quarantined": sum(reasons.values()), "quarantine_reasons": reasons,
    }


def users(con: duckdb.DuckDBPyConnection, *, limit: int | None = None, sample: int | None = None, seed: int = 0,
          min_actions: int = 1) -> list[str]:
    """User ids, sorted; or a seeded random ``sample`` of them."""
    ids = [r[0] for r in con.execute(
        "SELECT user_id FROM actions GROUP BY user_id HAVING count(*) >= ? ORDER BY user_id", [min_actions]).fetchall()]
    if sample is not None:
        ids = sorted(random.Random(seed).sample(ids, min(sample, len(ids))))
    return ids[:limit] if limit is not None else ids


def user_actions(con: duckdb.DuckDBPyConnection, user_id: str, *, before: dt.datetime | None = None,
                 since: dt.datetime | None = None) -> list[Action]:
    """One user's actions in ``(ts, seq)`` order, optionally only those before / since a time."""
    cond, params = "user_id = ?", [user_id]
    if before is not None:
        cond, params = cond + " AND ts < ?", [*params, before]
    if since is not None:
        cond, params = cond + " AND ts >= ?", [*params, since]
    cur = con.execute(f"SELECT {_COLS} FROM actions WHERE {cond} ORDER BY ts, seq", params)
    cols = [d[0] for d in cur.description]
    return [Action(**dict(zip(cols, row, strict=True))) for row in cur.fetchall()]


def kinds_of(con: duckdb.DuckDBPyConnection, users: list[str]) -> list[str]:
    """The distinct action kinds of ``users``, sorted."""
    return [r[0] for r in con.execute("SELECT DISTINCT kind FROM actions WHERE list_contains(?, user_id) ORDER BY 1",
                                      [users]).fetchall()]


def days_per_user(con: duckdb.DuckDBPyConnection, users: list[str]) -> list[tuple[str, dt.date, int]]:
    """(user, active day, actions that day) for ``users``, in user then day order."""
    return con.execute("SELECT user_id, CAST(ts AS DATE) AS day, count(*) FROM actions WHERE list_contains(?, user_id) "
                       "GROUP BY 1, 2 ORDER BY 1, 2", [users]).fetchall()


def lookup(con: duckdb.DuckDBPyConnection, action_ids: list[str]) -> dict[str, tuple[dt.datetime, str, str]]:
    """``action_id -> (ts, kind, text)`` for the given ids."""
    return {a: (t, k, x) for a, t, k, x in con.execute(
        "SELECT action_id, ts, kind, text FROM actions WHERE list_contains(?, action_id)", [action_ids]).fetchall()}


def ids_hash(action_ids: list[str]) -> str:
    """A short hash of an ordered list of action ids: what a derived row was built from."""
    return hashlib.sha256("\x1f".join(action_ids).encode()).hexdigest()[:16]


def users_by_days(con: duckdb.DuckDBPyConnection, *, min_days: int, min_actions: int, max_actions: int,
                  limit: int) -> list[str]:
    """Up to ``limit`` users with at least ``min_days`` active days and ``min_actions`` ..
    ``max_actions`` actions, most active days first (then fewer actions, then user id): the demo's
    users, whose history spans enough days for several interests at a small LLM cost."""
    return [r[0] for r in con.execute(
        "SELECT user_id FROM (SELECT user_id, count(*) AS n, count(DISTINCT CAST(ts AS DATE)) AS d FROM actions "
        "GROUP BY 1) WHERE d >= ? AND n BETWEEN ? AND ? ORDER BY d DESC, n, user_id LIMIT ?",
        [min_days, min_actions, max_actions, limit]).fetchall()]
