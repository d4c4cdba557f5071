"""Shared fixtures. Real data is read from ``../shared/datasets`` at test time, never copied."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PERSONAMINER_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


def shared_dataset(name: str) -> Path:
    """Path of a shared dataset, or skip the test with the reason."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"real dataset {name} not found under {SHARED} (set PERSONAMINER_SHARED_DATASETS)")
    return path


@pytest.fixture(scope="session")
def aol_tar() -> Path:
    return shared_dataset("aol_top1000_users") / "user_search_logs.tar.gz"


@pytest.fixture(scope="session")
def aol_user_file(aol_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real AOL user's file, extracted to a temp folder (the first member of the archive)."""
    out = tmp_path_factory.mktemp("aol_one")
    with tarfile.open(aol_tar) as tar:
        member = next(m for m in tar if m.isfile() and m.name.endswith(".txt"))
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
    path = out / Path(member.name).name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def merrec_csv() -> Path:
    return shared_dataset("merrec_head_sample") / "merrec_head.csv"


@pytest.fixture(scope="session")
def instacart_dir() -> Path:
    return shared_dataset("instacart_593_users")


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    return shared_dataset("movielens_100k")


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The default MiniLM embedder, or skip saying why it is missing."""
    from personaminer.embed import MiniLMEmbedder

    try:
        return MiniLMEmbedder()
    except Exception as exc:  # ModelNotAvailable
        pytest.skip(f"embedder not installed: {exc}")


@pytest.fixture(scope="session")
def aol_memory_workspace(aol_tar: Path, embedder, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A factory of workspaces of real AOL users with real extractive memories (no LLM needed).

    ``make(n_users, seed, max_days)`` ingests the archive once per distinct argument set and
    returns ``(path, users)``; tests copy the path before writing to it.
    """
    from personaminer import Workspace, ingest
    from personaminer.memories import MemoryConfig, run_memories

    built: dict[tuple[int, int, int], tuple[Path, list[str]]] = {}

    def make(n_users: int, seed: int, max_days: int) -> tuple[Path, list[str]]:
        key = (n_users, seed, max_days)
        if key not in built:
            path = tmp_path_factory.mktemp("aol_memories") / "ws"
            ingest(aol_tar, path, progress=False)
            with Workspace(path) as ws:
                users = ws.users(sample=n_users, seed=seed, min_actions=100)
                run_memories(ws, users, MemoryConfig(mode="extractive", max_days=max_days), embedder=embedder,
                             progress=False)
            built[key] = (path, users)
        return built[key]

    return make


@pytest.fixture
def aol_memory_copy(aol_memory_workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make(n_users, seed, max_days)``: a private copy of that AOL memory workspace, for tests that write."""
    import shutil

    def make(n_users: int, seed: int, max_days: int) -> tuple[Path, list[str]]:
        path, users = aol_memory_workspace(n_users, seed, max_days)
        shutil.copytree(path, tmp_path / "ws")
        return tmp_path / "ws", users

    return make
