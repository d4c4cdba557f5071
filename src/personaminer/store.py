"""The workspace: an embedded DuckDB database plus a ``reports/`` folder.

One workspace holds one project's tables (``actions``, ``quarantine``, ``runs``, and the
tables that later stages add). Every command records itself in ``runs`` and writes a
machine-readable summary to ``reports/<command>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from personaminer.datasets.base import sql_str
from personaminer.schema import ACTIONS_DDL, QUARANTINE_DDL, RUNS_ADDED_COLUMNS, RUNS_DDL, SPLITS_DDL, Action

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = Path("personaminer-workspace")
DB_FILE = "workspace.duckdb"

#: Runs this process has started and not yet finished (see :meth:`Workspace._mark_interrupted`).
_ACTIVE_RUNS: set[str] = set()


class WorkspaceError(RuntimeError):
    """A workspace that cannot be opened or used; the message says what to do."""


def package_versions() -> dict[str, str]:
    """Versions recorded with every run, so a result can be traced to its code."""
    names = ["personaminer", "duckdb", "pyarrow", "pydantic", "numpy", "llama_cpp_python", "onnxruntime"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            continue
    return out


class Workspace:
    """A project folder with a DuckDB database.

    Parameters
    ----------
    path:
        Folder of the workspace; created if missing.
    read_only:
        Open the database read-only (several readers may share it).
    memory_limit:
        DuckDB's memory cap. Work beyond it spills to ``<path>/tmp``, which keeps ingest of
        inputs larger than RAM bounded.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_WORKSPACE, *, read_only: bool = False,
                 memory_limit: str = "1GB", threads: int | None = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        if read_only and not (self.path / DB_FILE).exists():
            raise WorkspaceError(f"no workspace at {self.path}: run `personaminer ingest ... --workspace {self.path}` first")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / "reports").mkdir(exist_ok=True)
            self.con = duckdb.connect(str(self.path / DB_FILE), read_only=read_only)
        except (OSError, duckdb.Error) as exc:
            raise WorkspaceError(f"cannot open workspace {self.path}: {exc}") from exc
        if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B|B|%)?", memory_limit.strip(), flags=re.IGNORECASE):
            self.con.close()
            raise WorkspaceError(f"memory_limit must look like 1GB or 512MiB, not {memory_limit!r}")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET memory_limit = {sql_str(memory_limit.strip())}")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if not read_only:
            tmp = self.path / "tmp"
            tmp.mkdir(exist_ok=True)
            self.con.execute(f"SET temp_directory = {sql_str(tmp.as_posix())}")
            for ddl in (ACTIONS_DDL, QUARANTINE_DDL, RUNS_DDL, SPLITS_DDL):
                self.con.execute(ddl)
            for column, typ in RUNS_ADDED_COLUMNS.items():  # workspaces made before these columns existed
                self.con.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {column} {typ}")
            self._mark_interrupted()

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- runs and reports ----------------------------------------------------------------
    @contextmanager
    def run(self, command: str, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Record a command in ``runs``; the caller fills the yielded summary dict.

        The row is written as ``running`` first, so a crashed run stays visible as such.
        """
        run_id = f"{command}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        summary: dict[str, Any] = {"run_id": run_id}
        self.con.execute(
            "INSERT INTO runs (run_id, command, started_at, finished_at, status, config, versions, summary, pid, host) "
            "VALUES (?, ?, ?, NULL, 'running', ?, ?, NULL, ?, ?)",
            [run_id, command, _utcnow(), json.dumps(config, default=str), json.dumps(package_versions()),
             os.getpid(), socket.gethostname()],
        )
        _ACTIVE_RUNS.add(run_id)
        status = "failed"
        try:
            yield summary
            status = "ok"
        finally:
            _ACTIVE_RUNS.discard(run_id)
            self.con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE run_id = ?",
                [_utcnow(), status, json.dumps(summary, default=str), run_id],
            )

    def _mark_interrupted(self) -> None:
        """Runs left ``running`` by a process that is gone become ``interrupted``.

        DuckDB lets one process at a time open a database for writing, so when this process holds
        it, a ``running`` row that is not one of this process's own live runs belongs to a process
        that was killed (or crashed) before it could record its end.
        """
        active = sorted(_ACTIVE_RUNS)
        self.con.execute(
            "UPDATE runs SET status = 'interrupted' WHERE status = 'running' AND NOT list_contains(?, run_id)",
            [active])

    def write_report(self, command: str, data: dict[str, Any]) -> Path:
        """Write ``reports/<command>.json`` atomically and return its path."""
        out = self.path / "reports" / f"{command}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, out)
        return out

    # -- reading -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, users, time span, actions-per-user percentiles and kinds."""
        con = self.con
        n_actions, n_users, t0, t1 = con.execute(
            "SELECT count(*), count(DISTINCT user_id), min(ts), max(ts) FROM actions").fetchall()[0]
        pct = con.execute(
            "SELECT quantile_cont(n, [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0]) FROM "
            "(SELECT count(*) AS n FROM actions GROUP BY user_id)").fetchall()[0][0]
        kinds = dict(con.execute("SELECT kind, count(*) FROM actions GROUP BY kind ORDER BY 2 DESC").fetchall())
        sources = dict(con.execute("SELECT source, count(*) FROM actions GROUP BY source ORDER BY 2 DESC").fetchall())
        reasons = dict(con.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY 2 DESC").fetchall())
        labels = ["min", "p25", "median", "p75", "p90", "p99", "max"]
        return {
            "workspace": str(self.path),
            "actions": n_actions,
            "users": n_users,
            "first_ts": t0,
            "last_ts": t1,
            "actions_per_user": dict(zip(labels, pct, strict=True)) if pct else {},
            "kinds": kinds,
            "sources": sources,
            "quarantined": sum(reasons.values()),
            "quarantine_reasons": reasons,
            "runs": con.execute("SELECT count(*) FROM runs").fetchall()[0][0],
            "runs_by_status": dict(con.execute(
                "SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 2 DESC").fetchall()),
            "interrupted_runs": [
                {"run_id": r, "command": c, "started_at": t} for r, c, t in con.execute(
                    "SELECT run_id, command, started_at FROM runs WHERE status = 'interrupted' "
                    "ORDER BY started_at DESC LIMIT 5").fetchall()],
        }

    def users(self, *, limit: int | None = None, sample: int | None = None, seed: int = 0,
              min_actions: int = 1) -> list[str]:
        """User ids, sorted; or a seeded random ``sample`` of them."""
        rows = self.con.execute(
            "SELECT user_id FROM actions GROUP BY user_id HAVING count(*) >= ? ORDER BY user_id",
            [min_actions]).fetchall()
        ids = [r[0] for r in rows]
        if sample is not None:
            import random

            rng = random.Random(seed)
            ids = sorted(rng.sample(ids, min(sample, len(ids))))
        return ids[:limit] if limit is not None else ids

    def role_users(self, role: str) -> list[str]:
        """Users holding a held-out role (``train``, ``val``, ``test``) in ``train_roles``, sorted."""
        if not self.has_table("train_roles"):
            return []
        return [r[0] for r in self.con.execute("SELECT user_id FROM train_roles WHERE role = ? ORDER BY user_id",
                                               [role]).fetchall()]

    def has_table(self, name: str) -> bool:
        return bool(self.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                     [name]).fetchall()[0][0])

    def cutoff(self, user_id: str) -> dt.datetime | None:
        """The user's split cutoff (actions at or after it are the future), or None if not split."""
        if not self.has_table("splits"):
            return None
        rows = self.con.execute("SELECT cutoff_ts FROM splits WHERE user_id = ?", [user_id]).fetchall()
        return rows[0][0] if rows else None

    def user_actions(self, user_id: str) -> list[Action]:
        """One user's actions in time order: the input of every per-user stage.

        For a user with a temporal split (the ``splits`` table, ``personaminer split``) only the
        history, ``ts < cutoff_ts``, is returned: no stage that builds a user representation
        may see the future that evaluation predicts. :meth:`user_future_actions` has the rest.
        """
        return self._actions(user_id, future=False)

    def user_future_actions(self, user_id: str) -> list[Action]:
        """A split user's actions at or after the cutoff, in time order (empty if not split)."""
        return self._actions(user_id, future=True)

    def _actions(self, user_id: str, *, future: bool) -> list[Action]:
        cutoff = self.cutoff(user_id)
        if future and cutoff is None:
            return []
        cond = "" if cutoff is None else (" AND ts >= ?" if future else " AND ts < ?")
        cur = self.con.execute(
            "SELECT action_id, user_id, ts, kind, text, item_id, attrs, source, seq FROM actions "
            f"WHERE user_id = ?{cond} ORDER BY ts, seq", [user_id] + ([cutoff] if cutoff is not None else []))
        cols = [d[0] for d in cur.description]
        return [Action(**dict(zip(cols, row, strict=True))) for row in cur.fetchall()]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
