"""The ``lineage`` table: one row per named output of a stage, with its config and fingerprint."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb


def get(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> dict[str, Any] | None:
    rows = con.execute("SELECT fingerprint, parents, config, code, created_at, run_id FROM lineage "
                       "WHERE kind = ? AND name = ?", [kind, name]).fetchall()
    if not rows:
        return None
    fp, parents, config, code, created, run_id = rows[0]
    return {"kind": kind, "name": name, "fingerprint": fp, "parents": list(parents), "config": json.loads(config),
            "code": code, "created_at": created, "run_id": run_id}


def put(con: duckdb.DuckDBPyConnection, kind: str, name: str, fingerprint: str, parents: list[str],
        config: dict[str, Any], code: str, run_id: str | None) -> None:
    con.execute("INSERT OR REPLACE INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [kind, name, fingerprint, parents, json.dumps(config, sort_keys=True, default=str), code,
                 dt.datetime.now(dt.UTC).replace(tzinfo=None), run_id])


def delete(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> None:
    con.execute("DELETE FROM lineage WHERE kind = ? AND name = ?", [kind, name])


def children(con: duckdb.DuckDBPyConnection, fingerprint: str) -> list[tuple[str, str, str]]:
    """(kind, name, fingerprint) of the outputs that name ``fingerprint`` among their parents."""
    return con.execute("SELECT kind, name, fingerprint FROM lineage WHERE list_contains(parents, ?) "
                       "ORDER BY kind, name", [fingerprint]).fetchall()


def by_fingerprint(con: duckdb.DuckDBPyConnection, fingerprint: str) -> dict[str, Any] | None:
    rows = con.execute("SELECT kind, name FROM lineage WHERE fingerprint = ?", [fingerprint]).fetchall()
    return get(con, *rows[0]) if rows else None


def all_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return [r for kind, name in con.execute("SELECT kind, name FROM lineage ORDER BY kind, name").fetchall()
            if (r := get(con, kind, name)) is not None]


def legacy_memory_sets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Memory sets with rows but no lineage row (built before lineage existed)."""
    return [r[0] for r in con.execute(
        "SELECT DISTINCT memory_set FROM memories WHERE memory_set NOT IN "
        "(SELECT name FROM lineage WHERE kind = 'memories') ORDER BY 1").fetchall()]
