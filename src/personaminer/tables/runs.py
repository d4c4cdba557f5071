"""The ``runs`` table: one row per command, written ``running`` first and closed at its end."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from typing import Any

import duckdb


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def start(con: duckdb.DuckDBPyConnection, run_id: str, command: str, config: dict[str, Any],
          versions: dict[str, str]) -> None:
    con.execute(
        "INSERT INTO runs (run_id, command, started_at, finished_at, status, config, versions, summary, pid, host) "
        "VALUES (?, ?, ?, NULL, 'running', ?, ?, NULL, ?, ?)",
        [run_id, command, _now(), json.dumps(config, default=str), json.dumps(versions), os.getpid(),
         socket.gethostname()])


def finish(con: duckdb.DuckDBPyConnection, run_id: str, status: str, summary: dict[str, Any]) -> None:
    con.execute("UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
                [_now(), status, json.dumps(summary, default=str), run_id])


def mark_interrupted(con: duckdb.DuckDBPyConnection, active: list[str]) -> None:
    """Every ``running`` row but ``active`` becomes ``interrupted`` (see ``Workspace._mark_interrupted``)."""
    con.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND NOT list_contains(?, run_id)",
                [active])


def by_status(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 2 DESC").fetchall())


def interrupted(con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[dict[str, Any]]:
    return [{"run_id": r, "command": c, "started_at": t} for r, c, t in con.execute(
        "SELECT run_id, command, started_at FROM runs WHERE status = 'interrupted' ORDER BY started_at DESC LIMIT ?",
        [limit]).fetchall()]


def count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM runs").fetchall()[0][0])


def ok_stage_runs(con: duckdb.DuckDBPyConnection, commands: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """(command, config, summary) of the successful runs of ``commands``, oldest first."""
    return con.execute("SELECT command, config, summary FROM runs WHERE status = 'ok' AND "
                       "list_contains(?, command) ORDER BY started_at", [list(commands)]).fetchall()
