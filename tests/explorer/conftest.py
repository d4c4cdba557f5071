"""A real MovieLens workspace and its report, shared by the explorer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import Workspace, ingest
from personaminer.explorer import ReportConfig, build_report


@pytest.fixture(scope="package")
def movielens_report(movielens_dir: Path, embedder, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from personaminer.memories import MemoryConfig, run_memories
    from personaminer.personas import PersonaConfig, run_personas
    from personaminer.quality.scorer import QualityConfig, run_scores
    from tests.fakes import persona_model

    tmp = tmp_path_factory.mktemp("report")
    ws_path = tmp / "ws"
    ingest(movielens_dir, ws_path, progress=False)
    with Workspace(ws_path) as ws:
        users = ws.users(sample=3, seed=0, min_actions=40)
        run_memories(ws, users, MemoryConfig(mode="extractive", max_days=5), embedder=embedder, progress=False)
        run_personas(ws, users, PersonaConfig(builder="cluster", memory_set="extractive"), embedder=embedder,
                     llm=persona_model(), progress=False)
        run_scores(ws, QualityConfig(judge="embedding"), embedder=embedder, llm=None, progress=False)
        summary = build_report(ws, tmp / "report", ReportConfig(max_actions=3), progress=False)
    return ws_path, tmp / "report", users, summary
