"""The ``persona_sets`` and ``personas`` tables (stage 2)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from personaminer.schema import PersonaSet


def write_set(con: duckdb.DuckDBPyConnection, ps: PersonaSet) -> None:
    """A set and its personas (call inside a transaction; a failed set is stored without personas)."""
    con.execute("INSERT INTO persona_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        ps.set_id, ps.user_id, ps.builder, ps.memory_set, ps.sample_index, ps.seed, ps.temperature, ps.model,
        ps.prompt, json.dumps(ps.config), ps.status, len(ps.personas), ps.n_memories, ps.unassigned, ps.subset,
        ps.note, ps.raw, ps.llm_requests, ps.llm_model_calls, ps.prompt_tokens, ps.completion_tokens,
        ps.collection, ps.lineage])
    for p in ps.personas:
        con.execute("INSERT INTO personas VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [p.persona_id, p.set_id, p.user_id, p.position, p.label, p.description, p.evidence, p.builder])


def existing(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> set[str]:
    return {r[0] for r in con.execute("SELECT set_id FROM persona_sets WHERE list_contains(?, set_id)",
                                      [set_ids]).fetchall()}


def collection_sets(con: duckdb.DuckDBPyConnection, collection: str) -> dict[str, list[str]]:
    """``user_id -> set ids`` (by sample) of a collection."""
    out: dict[str, list[str]] = {}
    for uid, sid in con.execute("SELECT user_id, set_id FROM persona_sets WHERE collection = ? "
                                "ORDER BY user_id, sample_index", [collection]).fetchall():
        out.setdefault(uid, []).append(sid)
    return out


def delete_sets(con: duckdb.DuckDBPyConnection, where: str, value: str) -> list[str]:
    """Delete the sets whose ``collection`` or ``memory_set`` (``where``) is ``value``, with their
    personas and scores; returns their ids."""
    column = {"collection": "collection", "memory_set": "memory_set"}[where]
    ids = [r[0] for r in con.execute(f"SELECT set_id FROM persona_sets WHERE {column} = ?", [value]).fetchall()]
    for table in ("claim_verdicts", "persona_scores", "set_scores", "personas", "persona_sets"):
        con.execute(f"DELETE FROM {table} WHERE list_contains(?, set_id)", [ids])
    return ids


def sets_of_user(con: duckdb.DuckDBPyConnection, user_id: str, builder: str | None, all_samples: bool
                 ) -> list[dict[str, Any]]:
    """A user's sets (optionally one builder's; sample 0 only unless ``all_samples``), with their personas."""
    cur = con.execute(
        "SELECT set_id, builder, sample_index, status, model, prompt, unassigned, subset, note, collection "
        "FROM persona_sets WHERE user_id = ? AND (? IS NULL OR builder = ?) AND (? OR sample_index = 0) "
        "ORDER BY builder, collection, sample_index", [user_id, builder, builder, all_samples])
    cols = [d[0] for d in cur.description]
    out = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for s in out:
        s["personas"] = personas_of(con, s["set_id"])
    return out


def personas_of(con: duckdb.DuckDBPyConnection, set_id: str) -> list[dict[str, Any]]:
    """A set's personas in order: persona_id, label, description, evidence."""
    return [{"persona_id": p, "label": lab, "description": d, "evidence": list(e)} for p, lab, d, e in con.execute(
        "SELECT persona_id, label, description, evidence FROM personas WHERE set_id = ? ORDER BY position",
        [set_id]).fetchall()]


def set_header(con: duckdb.DuckDBPyConnection, set_id: str) -> tuple[str, str, str]:
    """(user_id, memory_set, builder) of a set."""
    return con.execute("SELECT user_id, memory_set, builder FROM persona_sets WHERE set_id = ?",
                       [set_id]).fetchall()[0]


def statuses(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> dict[str, str]:
    return dict(con.execute("SELECT set_id, status FROM persona_sets WHERE list_contains(?, set_id)",
                            [set_ids]).fetchall())


def scored_sets(con: duckdb.DuckDBPyConnection, set_ids: list[str], judge: str, key: str) -> dict[str, dict[str, Any]]:
    """Sets that were scored (with ``judge`` / ``key``) and did not fail: builder, sample, values, personas."""
    if not set_ids:
        return {}
    out = {sid: {"builder": b, "sample_index": i, "values": json.loads(v), "personas": []}
           for sid, b, i, v in con.execute(
               "SELECT s.set_id, s.builder, s.sample_index, x.values FROM persona_sets s JOIN set_scores x USING "
               "(set_id) WHERE list_contains(?, s.set_id) AND s.status <> 'failed' AND x.judge = ? "
               "AND x.config_key = ?", [set_ids, judge, key]).fetchall()}
    for sid, label, desc, evidence in con.execute(
            "SELECT set_id, label, description, evidence FROM personas WHERE list_contains(?, set_id) "
            "ORDER BY set_id, position", [list(out)]).fetchall():
        out[sid]["personas"].append((label, desc, list(evidence)))
    return out


def failed_sets(con: duckdb.DuckDBPyConnection, set_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Failed sets among ``set_ids`` that kept a raw answer: builder, sample, raw."""
    if not set_ids:
        return {}
    return {sid: {"builder": b, "sample_index": i, "raw": raw.strip()} for sid, b, i, raw in con.execute(
        "SELECT set_id, builder, sample_index, raw FROM persona_sets WHERE list_contains(?, set_id) "
        "AND status = 'failed' AND raw IS NOT NULL AND trim(raw) <> ''", [set_ids]).fetchall()}


def first_set(con: duckdb.DuckDBPyConnection, user_id: str, builder: str, memory_set: str) -> list[str]:
    """The id of the user's valid sample-0 set of ``builder`` on ``memory_set`` (at most one)."""
    return [r[0] for r in con.execute(
        "SELECT set_id FROM persona_sets WHERE user_id = ? AND builder = ? AND memory_set = ? AND sample_index = 0 "
        "AND status <> 'failed' ORDER BY set_id LIMIT 1", [user_id, builder, memory_set]).fetchall()]


def groups(con: duckdb.DuckDBPyConnection, builder: str | None) -> list[tuple[str, str, str, str | None, str, str]]:
    """(builder, memory_set, model, config, collection, user_id) of every sample-0 set."""
    return con.execute("SELECT builder, memory_set, coalesce(model, ''), config, coalesce(collection, ''), user_id "
                       "FROM persona_sets WHERE sample_index = 0 AND (? IS NULL OR builder = ?)",
                       [builder, builder]).fetchall()


def system_rows(con: duckdb.DuckDBPyConnection, builder: str, memory_set: str, model: str, collection: str,
                users: list[str]) -> list[tuple[Any, ...]]:
    """For evaluation: (user, set_id, status, config, model, LLM tokens, label, description) of sample-0
    sets of one group, one row per persona."""
    return con.execute(
        "SELECT s.user_id, s.set_id, s.status, s.config, coalesce(s.model, ''), s.prompt_tokens + s.completion_tokens, "
        "p.label, p.description FROM persona_sets s LEFT JOIN personas p USING (set_id) "
        "WHERE s.builder = ? AND s.memory_set = ? AND s.sample_index = 0 AND coalesce(s.model, '') = ? "
        "AND coalesce(s.collection, '') = ? AND list_contains(?, s.user_id) ORDER BY s.user_id, p.position",
        [builder, memory_set, model, collection, users]).fetchall()


def ok_sets(con: duckdb.DuckDBPyConnection, user_id: str, collection: str | None, builder: str | None
            ) -> list[tuple[str, str | None]]:
    """(set_id, collection) of a user's usable (not failed) sample-0 sets, of one collection and/or builder."""
    return con.execute("SELECT set_id, collection FROM persona_sets WHERE user_id = ? AND sample_index = 0 "
                       "AND status <> 'failed' AND (? IS NULL OR collection = ?) AND (? IS NULL OR builder = ?) "
                       "ORDER BY set_id", [user_id, collection, collection, builder, builder]).fetchall()


def routes(con: duckdb.DuckDBPyConnection, set_ids: list[str], kinds: list[str] | None) -> dict[str, list[Any]]:
    """Per set, its personas as :class:`personaminer.routing.Route` (position order): evidence ids,
    the evidence memories' summaries (evidence order), the end of the latest one, and the distinct
    texts of the actions under them of ``kinds`` (default: every kind but ``click``), in time order."""
    from personaminer.routing import Route

    out: dict[str, list[Any]] = {}
    by_id: dict[tuple[str, int], Any] = {}
    for set_id, pos, pid, label, desc, evidence in con.execute(
            "SELECT set_id, position, persona_id, label, description, evidence FROM personas "
            "WHERE list_contains(?, set_id) ORDER BY set_id, position", [set_ids]).fetchall():
        r = Route(label, desc, list(evidence), persona_id=pid)
        out.setdefault(set_id, []).append(r)
        by_id[(set_id, pos)] = r
    if not by_id:
        return out
    rows = con.execute(
        """WITH ev AS (SELECT set_id, position, unnest(evidence) AS memory_id,
                              generate_subscripts(evidence, 1) AS k FROM personas WHERE list_contains(?, set_id))
           SELECT ev.set_id, ev.position, ev.k, m.summary, m.end_ts FROM ev JOIN memories m USING (memory_id)
           ORDER BY ev.set_id, ev.position, ev.k""", [set_ids]).fetchall()
    for set_id, pos, _k, summary, end_ts in rows:
        r = by_id[(set_id, pos)]
        r.summaries.append(summary)
        r.last_ts = end_ts if r.last_ts is None or end_ts > r.last_ts else r.last_ts
    acts = con.execute(
        """WITH ev AS (SELECT set_id, position, unnest(evidence) AS memory_id FROM personas
                       WHERE list_contains(?, set_id)),
                ma AS (SELECT memory_id, unnest(action_ids) AS action_id FROM memories
                       WHERE memory_id IN (SELECT memory_id FROM ev))
           SELECT ev.set_id, ev.position, a.text FROM ev JOIN ma USING (memory_id) JOIN actions a USING (action_id)
           WHERE (? IS NULL AND a.kind <> 'click') OR list_contains(?, a.kind)
           ORDER BY ev.set_id, ev.position, a.ts, a.seq""", [set_ids, kinds, kinds]).fetchall()
    seen: dict[tuple[str, int], set[str]] = {}
    for set_id, pos, text in acts:
        t = " ".join(str(text or "").split())
        known = seen.setdefault((set_id, pos), set())
        if t and t not in known:
            known.add(t)
            by_id[(set_id, pos)].actions.append(t)
    return out


def verify(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every persona's evidence exists, belongs to the persona's user, and is non-empty (counts must be 0)."""
    return {
        "empty_evidence": con.execute("SELECT count(*) FROM personas WHERE len(evidence) = 0").fetchall()[0][0],
        "missing_or_foreign_evidence": con.execute("""
            SELECT count(*) FROM (SELECT p.user_id, unnest(p.evidence) AS memory_id FROM personas p) e
            LEFT JOIN memories m ON m.memory_id = e.memory_id
            WHERE m.memory_id IS NULL OR m.user_id <> e.user_id""").fetchall()[0][0],
        "personas_without_set": con.execute(
            "SELECT count(*) FROM personas p ANTI JOIN persona_sets s ON s.set_id = p.set_id").fetchall()[0][0],
    }


EXPORT_QUERY = """
    SELECT p.persona_id, p.set_id, p.user_id, p.position, p.label, p.description, p.builder,
           s.collection, s.memory_set, s.sample_index, s.model, s.prompt, s.status AS set_status, s.lineage,
           list({'memory_id': m.memory_id, 'day': m.day, 'summary': m.summary, 'action_ids': m.action_ids}
                ORDER BY m.day, m.position) AS evidence
    FROM personas p JOIN persona_sets s USING (set_id)
    JOIN (SELECT persona_id, unnest(evidence) AS memory_id FROM personas) e USING (persona_id)
    JOIN memories m ON m.memory_id = e.memory_id
    GROUP BY ALL ORDER BY p.user_id, p.set_id, p.position"""


def export(con: duckdb.DuckDBPyConnection, to: str, fmt: str) -> int:
    """COPY one record per persona to ``to`` (``JSON`` or ``PARQUET``); returns the number of records."""
    from personaminer.datasets.base import sql_str

    if fmt not in ("JSON", "PARQUET"):
        raise ValueError(f"unknown export format {fmt!r}")
    con.execute(f"COPY ({EXPORT_QUERY}) TO {sql_str(to)} (FORMAT {fmt})")
    return int(con.execute(f"SELECT count(*) FROM ({EXPORT_QUERY})").fetchall()[0][0])
