from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import Workspace, ingest


@pytest.fixture(scope="session")
def aol_memory_ws(aol_tar: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """Six real AOL users with real extractive memories (no LLM needed), built once."""
    from personaminer.memories import MemoryConfig, run_memories

    path = tmp_path_factory.mktemp("train_ws") / "ws"
    ingest(aol_tar, path, progress=False)
    with Workspace(path) as ws:
        users = ws.users(sample=6, seed=3, min_actions=100)
        run_memories(ws, users, MemoryConfig(mode="extractive", max_days=8), embedder=embedder, progress=False)
    return path, users


@pytest.fixture
def train_ws(aol_memory_ws: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    import shutil

    path, users = aol_memory_ws
    shutil.copytree(path, tmp_path / "ws")
    return tmp_path / "ws", users
