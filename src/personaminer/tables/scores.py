"""The quality tables: ``set_scores``, ``persona_scores`` and ``claim_verdicts``."""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb

#: What ``personaminer score --set KEY=VALUE`` may filter on (columns of ``persona_sets``).
FILTERS = ("builder", "user_id", "memory_set", "set_id", "collection")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def pending(con: duckdb.DuckDBPyConnection, where: dict[str, str], judge: str, key: str) -> list[str]:
    """Ids of the non-failed sets matching ``where`` that have no score for (judge, key) yet."""
    if bad := set(where) - set(FILTERS):
        raise ValueError(f"--set filters on {', '.join(FILTERS)}, not {', '.join(sorted(bad))}")
    cond = " AND ".join(f"s.{k} = ?" for k in where) or "TRUE"
    return [r[0] for r in con.execute(
        f"SELECT s.set_id FROM persona_sets s WHERE s.status <> 'failed' AND {cond} AND NOT EXISTS ("
        "SELECT 1 FROM set_scores x WHERE x.set_id = s.set_id AND x.judge = ? AND x.config_key = ?) ORDER BY s.set_id",
        [*where.values(), judge, key]).fetchall()]


def write(con: duckdb.DuckDBPyConnection, set_id: str, user_id: str, builder: str, judge: str, key: str,
          judge_model: str, values: dict[str, float], per: dict[str, dict[str, float]],
          verdicts: list[dict[str, Any]]) -> None:
    """One set's scores, per-persona scores and claim verdicts (call inside a transaction)."""
    clean = _clean(values)
    con.execute("INSERT INTO set_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [set_id, user_id, builder, judge, key, judge_model, json.dumps(clean), clean.get("final")])
    for pid, d in per.items():
        con.execute("INSERT INTO persona_scores VALUES (?, ?, ?, ?, ?)",
                    [pid, set_id, judge, key, json.dumps(_clean(d))])
    for v in verdicts:
        con.execute("INSERT INTO claim_verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            set_id, v["persona_id"], judge, key, v["claim_index"], v["claim"],
            None if math.isnan(v["p_yes"]) else v["p_yes"], v["supported"], v["evidence"], v.get("guard")])


def values_by_builder(con: duckdb.DuckDBPyConnection, judge: str, key: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(builder, user, values) of every set scored with (judge, key)."""
    return [(b, u, json.loads(v)) for b, u, v in con.execute(
        "SELECT builder, user_id, values FROM set_scores WHERE judge = ? AND config_key = ?", [judge, key]).fetchall()]


def values_of(con: duckdb.DuckDBPyConnection, set_ids: list[str], judge: str | None = None,
              key: str | None = None) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(set_id, judge, key, values) of the scores of ``set_ids`` (optionally of one judge and key)."""
    return [(s, j, k, json.loads(v)) for s, j, k, v in con.execute(
        "SELECT set_id, judge, config_key, values FROM set_scores WHERE list_contains(?, set_id) "
        "AND (? IS NULL OR judge = ?) AND (? IS NULL OR config_key = ?)",
        [set_ids, judge, judge, key, key]).fetchall()]


def verdicts(con: duckdb.DuckDBPyConnection, user_id: str, judge: str, builder: str | None) -> list[tuple[Any, ...]]:
    """For ``audit``: (set_id, builder, sample, persona_id, label, claim_index, claim, p_yes, supported,
    evidence, guard) of a user's claims judged by ``judge``, in set, persona and claim order."""
    return con.execute(
        "SELECT s.set_id, s.builder, s.sample_index, p.persona_id, p.label, c.claim_index, c.claim, c.p_yes, "
        "c.supported, c.evidence, c.guard FROM claim_verdicts c JOIN personas p USING (persona_id) "
        "JOIN persona_sets s ON s.set_id = c.set_id WHERE s.user_id = ? AND c.judge = ? "
        "AND (? IS NULL OR s.builder = ?) ORDER BY s.builder, s.sample_index, p.position, c.claim_index",
        [user_id, judge, builder, builder]).fetchall()


def delete_config(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Every score of one scorer config (a fingerprint)."""
    for table in ("claim_verdicts", "persona_scores", "set_scores"):
        con.execute(f"DELETE FROM {table} WHERE config_key = ?", [key])
