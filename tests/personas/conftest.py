from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from personaminer import Workspace, ingest  # noqa: E402


@pytest.fixture(scope="session")
def aol_memories(aol_tar: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """Real AOL users with real extractive memories (no LLM needed), built once."""
    from personaminer.memories import MemoryConfig, run_memories

    path = tmp_path_factory.mktemp("persona_ws") / "ws"
    ingest(aol_tar, path, progress=False)
    with Workspace(path) as ws:
        users = ws.users(sample=4, seed=5, min_actions=100)
        run_memories(ws, users, MemoryConfig(mode="extractive", max_days=10), embedder=embedder, progress=False)
    return path, users


@pytest.fixture
def ws_copy(aol_memories: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    import shutil

    path, users = aol_memories
    shutil.copytree(path, tmp_path / "ws")
    return tmp_path / "ws", users
