from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import Workspace, ingest


@pytest.fixture(scope="session")
def real_sets(aol_tar: Path, embedder, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """24 real AOL users with >= 2 cluster personas each, grounded descriptions; scored data handle."""
    from personaminer.memories import MemoryConfig, run_memories
    from personaminer.personas import PersonaConfig, run_personas
    from personaminer.quality import QualityConfig, WorkspaceData
    from tests.fakes import grounded_labeller

    path = tmp_path_factory.mktemp("quality_ws") / "ws"
    ingest(aol_tar, path, progress=False)
    ws = Workspace(path)
    users = ws.users(sample=40, seed=1, min_actions=200)
    run_memories(ws, users, MemoryConfig(mode="extractive", max_days=15), embedder=embedder, progress=False)
    run_personas(ws, users, PersonaConfig(builder="cluster", memory_set="extractive", max_personas=4),
                 embedder=embedder, llm=grounded_labeller(), progress=False)
    sets = [r[0] for r in ws.con.execute(
        "SELECT set_id FROM persona_sets WHERE n_personas >= 2 ORDER BY set_id").fetchall()][:24]
    data = WorkspaceData(ws, embedder, QualityConfig(judge="embedding"))
    yield ws, sets, data
    ws.close()
