from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def aol_memory_ws(aol_memory_workspace) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """Six real AOL users with real extractive memories (no LLM needed), built once."""
    return aol_memory_workspace(6, 3, 8)


@pytest.fixture
def train_ws(aol_memory_ws: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    import shutil

    path, users = aol_memory_ws
    shutil.copytree(path, tmp_path / "ws")
    return tmp_path / "ws", users
