"""``demo``: the main job end to end on embedded defaults, through the Python API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personaminer import datasets, tables
from personaminer.cli import BaseUrlOpt, LlmOpt, ModelOpt, WorkspaceOpt, console, llm_config
from personaminer.cli.data import print_info, print_ingest
from personaminer.cli.stages import print_scores
from personaminer.cli.views import persona_trees
from personaminer.ingest import ingest
from personaminer.store import Workspace
from personaminer.terminal import markup


def demo_cmd(
    workspace: WorkspaceOpt = Path("personaminer-demo"),
    users: Annotated[int, typer.Option("--users", help="How many MovieLens users to take through the pipeline.")] = 3,
    max_days: Annotated[int, typer.Option("--max-days", help="Days per user (most recent first).")] = 1,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
) -> None:
    """The main job end to end on embedded defaults: MovieLens 100K from PyPI -> actions -> intent memories
    -> personas (the persona model) -> quality scores -> two users shown with their evidence."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import make_llm
    from personaminer.memories import MemoryConfig, run_memories
    from personaminer.personas import PersonaConfig, run_personas
    from personaminer.quality import QualityConfig, run_scores

    path = datasets.fetch_movielens_100k()
    console.print(f"MovieLens 100K: {markup(path)}")
    print_ingest(ingest(path, workspace, format="movielens"), path, workspace)
    embedder = MiniLMEmbedder()
    model_obj = make_llm(llm_config(llm, model, base_url, None))
    try:
        with Workspace(workspace) as ws:
            print_info(ws.info(), workspace)
            chosen = tables.actions.users_by_last_day(ws.con, 5, 25, users)  # latest day fits one prompt window
            run_memories(ws, chosen, MemoryConfig(mode="llm", max_days=max_days), embedder=embedder, llm=model_obj)
            run_personas(ws, chosen, PersonaConfig(builder="model", memory_set="llm", min_personas=1, max_personas=3),
                         embedder=embedder, llm=model_obj)
            print_scores(run_scores(ws, QualityConfig(judge="llm"), embedder=embedder, llm=model_obj), "llm",
                         workspace)
            for uid in chosen[:2]:
                for tree in persona_trees(ws, uid, builder="model"):
                    console.print(tree)
    finally:
        model_obj.close()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
