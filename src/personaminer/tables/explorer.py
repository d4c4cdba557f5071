"""Reads for ``personaminer report`` (the offline explorer): counts, collections, scores, users, runs.

Every function reads; nothing here writes. Tables that a workspace does not have yet (a workspace
that was only ingested) read as empty.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb

from personaminer.tables.ddl import has_table


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _json(value: Any) -> dict[str, Any]:
    """A JSON column's value as a dict (DuckDB returns JSON as text; NULL as ``{}``)."""
    return json.loads(value) if isinstance(value, str) else (value or {})


def stage_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many rows each stage wrote: actions, users, quarantined rows, memories, persona sets, scores."""
    out: dict[str, int] = {}
    for key, table, expr in (("actions", "actions", "count(*)"), ("users", "actions", "count(DISTINCT user_id)"),
                             ("quarantined rows", "quarantine", "count(*)"), ("memories", "memories", "count(*)"),
                             ("persona sets", "persona_sets", "count(*)"), ("personas", "personas", "count(*)"),
                             ("scored sets", "set_scores", "count(*)"), ("judged claims", "claim_verdicts", "count(*)"),
                             ("runs", "runs", "count(*)")):
        out[key] = int(con.execute(f"SELECT {expr} FROM {table}").fetchall()[0][0]) if has_table(con, table) else 0
    return out


def memory_sets(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per memory set: users, memories, actions covered, actions per memory."""
    if not has_table(con, "memories"):
        return []
    return _rows(con, "SELECT memory_set, count(DISTINCT user_id) AS users, count(*) AS memories, "
                      "sum(len(action_ids)) AS actions, sum(len(action_ids)) / count(*) AS actions_per_memory "
                      "FROM memories GROUP BY memory_set ORDER BY memory_set")


def collections(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per persona collection (sample 0 and every other sample): builder, model, sets, ok and failed
    sets, mean personas per ok set, tokens per set."""
    if not has_table(con, "persona_sets"):
        return []
    return _rows(con, "SELECT coalesce(collection, '(legacy)') AS collection, builder, any_value(model) AS model, "
                      "any_value(prompt) AS prompt, count(*) AS sets, count(DISTINCT user_id) AS users, "
                      "count(*) FILTER (WHERE status <> 'failed') AS ok, count(*) FILTER (WHERE status = 'failed') "
                      "AS failed, avg(n_personas) FILTER (WHERE status <> 'failed') AS personas_per_set, "
                      "avg(prompt_tokens + completion_tokens) AS tokens_per_set "
                      "FROM persona_sets GROUP BY 1, 2 ORDER BY 1, 2")


def scores(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every stored set score: collection, builder, user, judge, config key, final and the terms."""
    if not has_table(con, "set_scores"):
        return []
    rows = _rows(con, "SELECT coalesce(s.collection, '(legacy)') AS collection, c.builder, c.user_id, c.set_id, "
                      "c.judge, c.config_key, c.final, c.values FROM set_scores c JOIN persona_sets s USING (set_id) "
                      "WHERE s.sample_index = 0 ORDER BY 1, c.judge, c.user_id")
    for r in rows:
        r["values"] = _json(r["values"])
    return rows


def users(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One row per user: actions, active days, first and last action, memories."""
    if not has_table(con, "actions"):
        return []
    rows = _rows(con, "SELECT user_id, count(*) AS actions, count(DISTINCT CAST(ts AS DATE)) AS days, "
                      "min(ts) AS first, max(ts) AS last FROM actions GROUP BY user_id ORDER BY user_id")
    if has_table(con, "memories"):
        mem = dict(con.execute("SELECT user_id, count(*) FROM memories GROUP BY user_id").fetchall())
        for r in rows:
            r["memories"] = int(mem.get(r["user_id"], 0))
    return rows


def personas_per_user(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The most personas in any valid sample-0 set of each user that has one."""
    if not has_table(con, "persona_sets"):
        return {}
    return {u: int(n) for u, n in con.execute(
        "SELECT user_id, max(n_personas) FROM persona_sets WHERE sample_index = 0 AND status <> 'failed' "
        "GROUP BY user_id").fetchall()}


def user_sets(con: duckdb.DuckDBPyConnection, user_id: str) -> list[dict[str, Any]]:
    """The user's sample-0 persona sets (every collection), each with its personas in order."""
    if not has_table(con, "persona_sets"):
        return []
    sets = _rows(con, "SELECT set_id, coalesce(collection, '(legacy)') AS collection, builder, memory_set, model, "
                      "prompt, status, n_personas, n_memories, unassigned, subset, note, prompt_tokens, "
                      "completion_tokens FROM persona_sets WHERE user_id = ? AND sample_index = 0 "
                      "ORDER BY collection, builder", [user_id])
    for s in sets:
        s["personas"] = _rows(con, "SELECT persona_id, position, label, description, evidence FROM personas "
                                   "WHERE set_id = ? ORDER BY position", [s["set_id"]])
    return sets


def set_scores(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> list[dict[str, Any]]:
    """Scores of these sets (every judge and config), values parsed."""
    if not set_ids or not has_table(con, "set_scores"):
        return []
    rows = _rows(con, "SELECT set_id, judge, config_key, judge_model, final, values FROM set_scores "
                      "WHERE list_contains(?, set_id) ORDER BY set_id, judge, config_key", [set_ids])
    for r in rows:
        r["values"] = _json(r["values"])
    return rows


def persona_scores(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> list[dict[str, Any]]:
    if not set_ids or not has_table(con, "persona_scores"):
        return []
    rows = _rows(con, "SELECT persona_id, set_id, judge, config_key, values FROM persona_scores "
                      "WHERE list_contains(?, set_id)", [set_ids])
    for r in rows:
        r["values"] = _json(r["values"])
    return rows


def claim_verdicts(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> list[dict[str, Any]]:
    if not set_ids or not has_table(con, "claim_verdicts"):
        return []
    return _rows(con, "SELECT set_id, persona_id, judge, config_key, claim_index, claim, p_yes, supported, evidence, "
                      "guard FROM claim_verdicts WHERE list_contains(?, set_id) "
                      "ORDER BY persona_id, judge, config_key, claim_index", [set_ids])


def memories(con: duckdb.DuckDBPyConnection, memory_ids: list[str]) -> dict[str, dict[str, Any]]:
    """These memories by id: day, start, summary, action ids."""
    if not memory_ids:
        return {}
    return {r["memory_id"]: r for r in _rows(
        con, "SELECT memory_id, memory_set, day, start_ts, summary, action_ids FROM memories "
             "WHERE list_contains(?, memory_id)", [memory_ids])}


def actions(con: duckdb.DuckDBPyConnection, action_ids: list[str]) -> dict[str, dict[str, Any]]:
    """These actions by id: time, kind, text, attributes (rating, price, event type...)."""
    if not action_ids:
        return {}
    rows = _rows(con, "SELECT action_id, ts, kind, text, attrs FROM actions WHERE list_contains(?, action_id)",
                 [action_ids])
    for r in rows:
        r["attrs"] = _json(r["attrs"])
    return {r["action_id"]: r for r in rows}


def activity_days(con: duckdb.DuckDBPyConnection, user_id: str) -> list[tuple[dt.date, int]]:
    """The user's actions per day, in day order."""
    return [(d, int(n)) for d, n in con.execute(
        "SELECT CAST(ts AS DATE) AS d, count(*) FROM actions WHERE user_id = ? GROUP BY 1 ORDER BY 1",
        [user_id]).fetchall()]


def runs(con: duckdb.DuckDBPyConnection, limit: int = 200) -> list[dict[str, Any]]:
    """The latest runs: command, start, seconds, status."""
    if not has_table(con, "runs"):
        return []
    return _rows(con, "SELECT run_id, command, started_at, finished_at, status, "
                      "date_diff('millisecond', started_at, finished_at) / 1000.0 AS seconds FROM runs "
                      "ORDER BY started_at DESC LIMIT ?", [limit])
