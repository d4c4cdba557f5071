"""``demo``: the main job end to end on embedded defaults, through the Python API.

MovieLens 100K (from PyPI) -> actions -> intent memories -> persona sets (cluster-then-label, the
best builder the project has) -> quality scores (the LLM judge) -> the explorer (``report/``), and
two users shown in the terminal with their personas, scores, claim verdicts and evidence.

Defaults chosen for a first run of about two minutes on two CPU cores (docs/explorer.md, "The
demo"): users whose ratings span the most days (several interests, few actions), extractive
memories (the hybrid LLM memories cost about a minute per MovieLens user here; ``--memories llm``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from personaminer import datasets, tables
from personaminer.cli import BaseUrlOpt, LlmOpt, ModelOpt, WorkspaceOpt, console, err, llm_config
from personaminer.cli.data import print_info, print_ingest
from personaminer.cli.stages import print_scores
from personaminer.cli.views import scored_trees
from personaminer.ingest import ingest
from personaminer.store import Workspace
from personaminer.terminal import markup


def demo_cmd(
    workspace: WorkspaceOpt = Path("personaminer-demo"),
    users: Annotated[int, typer.Option("--users", min=1, help="How many MovieLens users to take through the pipeline.")] = 2,
    min_days: Annotated[int, typer.Option("--min-days", min=1, help="Users with at least this many active days.")] = 4,
    max_actions: Annotated[int, typer.Option("--max-actions", min=1, help="Users with at most this many ratings.")] = 60,
    memories: Annotated[str, typer.Option("--memories", help="Intent memories: extractive (no LLM, the default: "
                                          "fast) or llm (the hybrid LLM mode, about a minute per user on 2 cores).")]
    = "extractive",
    builder: Annotated[str, typer.Option("--builder", help="Persona builder: cluster (cluster-then-label), model "
                                         "or single.")] = "cluster",
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
) -> None:
    """The main job end to end on embedded defaults: MovieLens 100K from PyPI -> actions -> intent memories
    -> several personas per user (cluster-then-label) -> quality scores (LLM judge) -> the explorer, and two
    users shown with their personas, scores and evidence."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.explorer import build_report
    from personaminer.llm import make_llm
    from personaminer.memories import MemoryConfig, run_memories
    from personaminer.personas import PersonaConfig, run_personas
    from personaminer.quality import QualityConfig, run_scores

    if memories not in ("extractive", "llm"):
        raise typer.BadParameter("--memories must be extractive or llm")
    if builder not in ("cluster", "model", "single"):
        raise typer.BadParameter("--builder must be cluster, model or single")
    t0 = time.perf_counter()
    path = datasets.fetch_movielens_100k()
    console.print(f"MovieLens 100K: {markup(path)}")
    print_ingest(ingest(path, workspace, format="movielens"), path, workspace)
    embedder = MiniLMEmbedder()
    model_obj = make_llm(llm_config(llm, model, base_url, None))
    try:
        with Workspace(workspace) as ws:
            print_info(ws.info(), workspace)
            chosen = tables.actions.users_by_days(ws.con, min_days=min_days, min_actions=20, max_actions=max_actions,
                                                  limit=users)
            if not chosen:
                raise typer.BadParameter(f"no MovieLens user has >= {min_days} active days and 20..{max_actions} "
                                         "ratings: lower --min-days or raise --max-actions")
            console.print(f"users: {', '.join(markup(u) for u in chosen)} (the most active days, at most "
                          f"{max_actions} ratings each)")
            mem = run_memories(ws, chosen, MemoryConfig(mode=memories), embedder=embedder,
                               llm=model_obj if memories == "llm" else None)
            console.print(f"intent memories ({markup(memories)}): {mem['memories']} for {mem['actions']} actions "
                          f"({mem['actions_per_memory']} actions per memory), coverage check "
                          f"{'ok' if mem['check']['ok'] else 'FAILED'}")
            collection = f"{builder}@{memories}"
            run_personas(ws, chosen, PersonaConfig(builder=builder, memory_set=memories, keyword_labels=builder == "cluster"),
                         embedder=embedder, llm=model_obj)
            scores = run_scores(ws, QualityConfig(judge="llm"), embedder=embedder, llm=model_obj)
            print_scores(scores, "llm", workspace)
            report = build_report(ws, Path(workspace) / "report")
            counts = tables.explorer.personas_per_user(ws.con)
            multi = [u for u in chosen if (counts.get(u) or 0) >= 2]
            for uid in (multi + [u for u in chosen if u not in multi])[:2]:
                for tree in scored_trees(ws, uid, judge="llm", config_key=scores["config_key"],
                                         collection=collection):
                    console.print(tree)
            if len(multi) < min(2, len(chosen)):
                err.print(f"[yellow]only {len(multi)} of {len(chosen)} users got two or more personas[/]")
    finally:
        model_obj.close()
    console.print(f"explorer: [bold]{markup(report['index'])}[/] (open it in a browser; {report['user_pages']} user "
                  f"pages)")
    console.print(f"demo finished in {time.perf_counter() - t0:.0f} s")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
