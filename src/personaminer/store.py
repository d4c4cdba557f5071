"""The workspace: an embedded DuckDB database plus a ``reports/`` folder.

One workspace holds one project's tables (see :mod:`personaminer.tables.ddl`). Every command
records itself in ``runs`` and writes a machine-readable summary to ``reports/<command>.json``.
Writes that must land together go through :meth:`Workspace.transaction`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb

from personaminer import tables
from personaminer.datasets.base import sql_str
from personaminer.errors import UserError
from personaminer.schema import Action

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = Path("personaminer-workspace")
DB_FILE = "workspace.duckdb"

#: Runs this process has started and not yet finished (see :meth:`Workspace._mark_interrupted`).
_ACTIVE_RUNS: set[str] = set()


class WorkspaceError(UserError, RuntimeError):
    """A workspace that cannot be opened or used; the message says what to do."""


def package_versions() -> dict[str, str]:
    """Versions recorded with every run, so a result can be traced to its code."""
    names = ["personaminer", "duckdb", "pyarrow", "pydantic", "numpy", "xllamacpp", "llama_cpp_python", "onnxruntime"]
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
        if read_only:
            if not self.has_table("meta"):
                self.con.close()
                raise WorkspaceError(f"workspace {self.path} predates this version: open it once for writing "
                                     f"(`personaminer info -w {self.path}`) to upgrade it")
            return
        tmp = self.path / "tmp"
        tmp.mkdir(exist_ok=True)
        self.con.execute(f"SET temp_directory = {sql_str(tmp.as_posix())}")
        for line in tables.ddl.upgrade(self.con):
            log.warning("workspace %s: %s", self.path, line)
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

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """``BEGIN`` ... ``COMMIT``, or ``ROLLBACK`` on any error; nested calls join the outer one."""
        if getattr(self, "_in_tx", False):
            yield self.con
            return
        self._in_tx = True
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self._in_tx = False

    # -- runs and reports ----------------------------------------------------------------
    @contextmanager
    def run(self, command: str, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Record a command in ``runs``; the caller fills the yielded summary dict.

        The row is written as ``running`` first; a process killed before the end is found by
        the next one that opens the workspace and marked ``interrupted``.
        """
        run_id = f"{command}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        summary: dict[str, Any] = {"run_id": run_id}
        tables.runs.start(self.con, run_id, command, config, package_versions())
        _ACTIVE_RUNS.add(run_id)
        status = "failed"
        try:
            yield summary
            status = "ok"
        finally:
            _ACTIVE_RUNS.discard(run_id)
            tables.runs.finish(self.con, run_id, status, summary)

    def _mark_interrupted(self) -> None:
        """Runs left ``running`` by a process that is gone become ``interrupted``.

        DuckDB lets one process at a time open a database for writing, so when this process holds
        it, a ``running`` row that is not one of this process's own live runs belongs to a process
        that was killed (or crashed) before it could record its end.
        """
        tables.runs.mark_interrupted(self.con, sorted(_ACTIVE_RUNS))

    def write_report(self, command: str, data: dict[str, Any]) -> Path:
        """Write ``reports/<command>.json`` atomically and return its path."""
        out = self.path / "reports" / f"{command}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, out)
        return out

    # -- reading -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts, users, time span, actions-per-user percentiles, kinds, quarantine, runs, outputs."""
        con = self.con
        return {"workspace": str(self.path), **tables.actions.info(con), "runs": tables.runs.count(con),
                "runs_by_status": tables.runs.by_status(con), "interrupted_runs": tables.runs.interrupted(con),
                "outputs": [{k: r[k] for k in ("kind", "name", "fingerprint")}
                            for r in tables.lineage.all_rows(con)] if self.has_table("lineage") else []}

    def users(self, *, limit: int | None = None, sample: int | None = None, seed: int = 0,
              min_actions: int = 1) -> list[str]:
        """User ids, sorted; or a seeded random ``sample`` of them."""
        return tables.actions.users(self.con, limit=limit, sample=sample, seed=seed, min_actions=min_actions)

    def role_users(self, role: str) -> list[str]:
        """Users holding a held-out role (``train``, ``val``, ``test``), sorted (see ``personaminer train roles``)."""
        return tables.protocol.role_users(self.con, role) if self.has_table("roles") else []

    def has_table(self, name: str) -> bool:
        return tables.ddl.has_table(self.con, name)

    def cutoff(self, user_id: str) -> dt.datetime | None:
        """The user's split cutoff (actions at or after it are the future), or None if not split."""
        return tables.protocol.cutoff(self.con, user_id) if self.has_table("splits") else None

    def user_actions(self, user_id: str) -> list[Action]:
        """All of one user's actions in time order (``(ts, seq)``), split or not.

        A stage that builds a user representation for evaluation reads :meth:`history_actions`
        instead; the choice is explicit (``MemoryConfig.view``) and recorded in the lineage.
        """
        return tables.actions.user_actions(self.con, user_id)

    def history_actions(self, user_id: str) -> list[Action]:
        """A split user's history, the actions before the cutoff: all that may build a representation
        of the user when the future is to be predicted. Raises :class:`WorkspaceError` if not split."""
        cutoff = self.cutoff(user_id)
        if cutoff is None:
            raise WorkspaceError(f"user {user_id!r} has no split, so no history: run `personaminer split -w "
                                 f"{self.path}` first (or build on all actions)")
        return tables.actions.user_actions(self.con, user_id, before=cutoff)

    def user_future_actions(self, user_id: str) -> list[Action]:
        """A split user's actions at or after the cutoff, in time order (empty if not split)."""
        cutoff = self.cutoff(user_id)
        return [] if cutoff is None else tables.actions.user_actions(self.con, user_id, since=cutoff)
