"""Workspace: runs log, reports, user sampling, read-only opening."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personaminer import Workspace, ingest
from personaminer.store import WorkspaceError


def test_run_log_records_failures(tmp_path: Path) -> None:
    with Workspace(tmp_path / "ws") as ws:
        with pytest.raises(RuntimeError):
            with ws.run("boom", {"x": 1}) as summary:
                summary["partial"] = True
                raise RuntimeError("crash")
        status, summary_json = ws.con.execute("SELECT status, summary FROM runs").fetchall()[0]
    assert status == "failed" and json.loads(summary_json)["partial"] is True


def test_users_sample_is_seeded(movielens_dir: Path, tmp_path: Path) -> None:
    ingest(movielens_dir, tmp_path / "ws", progress=False)
    with Workspace(tmp_path / "ws") as ws:
        a = ws.users(sample=10, seed=1)
        b = ws.users(sample=10, seed=1)
        c = ws.users(sample=10, seed=2)
        assert a == b and a != c and len(a) == 10
        assert len(ws.users(limit=5)) == 5
        assert len(ws.users(min_actions=700)) == 1


def test_read_only_needs_an_existing_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no workspace"):
        Workspace(tmp_path / "none", read_only=True)
