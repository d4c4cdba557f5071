from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def aol_memories(aol_memory_workspace) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """Four real AOL users with real extractive memories (no LLM needed), built once."""
    return aol_memory_workspace(4, 5, 10)


@pytest.fixture
def ws_copy(aol_memories: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    import shutil

    path, users = aol_memories
    shutil.copytree(path, tmp_path / "ws")
    return tmp_path / "ws", users
