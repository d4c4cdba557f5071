from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import ingest


@pytest.fixture(scope="session")
def aol_workspace(aol_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real AOL top-1000 archive ingested once per test session."""
    path = tmp_path_factory.mktemp("aol_ws") / "ws"
    ingest(aol_tar, path, progress=False)
    return path


@pytest.fixture
def aol_copy(aol_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested AOL workspace (tests may write memories into it)."""
    import shutil

    dst = tmp_path / "ws"
    shutil.copytree(aol_workspace, dst)
    return dst

