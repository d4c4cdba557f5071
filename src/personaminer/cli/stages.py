"""``memories``, ``personas`` and ``score``: the method's stages, each over one stage config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personaminer.cli import (
    BaseUrlOpt,
    DecodingOpt,
    LlmConfigOpt,
    LlmOpt,
    MemoryOrderOpt,
    ModelOpt,
    NoCacheOpt,
    QuietOpt,
    ReplaceOpt,
    WorkspaceOpt,
    config_error,
    console,
    default,
    err,
    llm_config,
    parse_pairs,
    select_users,
)
from personaminer.datasets.base import InputError
from personaminer.memories.build import MemoryConfig
from personaminer.personas.base import PersonaConfig
from personaminer.quality.scorer import TERMS, QualityConfig
from personaminer.store import DEFAULT_WORKSPACE, Workspace
from personaminer.terminal import markup

M, P, Q = MemoryConfig, PersonaConfig, QualityConfig
UsersOpt = Annotated[int | None, typer.Option("--users", help="A seeded random sample of N users (default: all).")]
UserOpt = Annotated[list[str], typer.Option("--user", help="This user id (repeatable).")]


def _table(title: str, summary: dict, keys: list[tuple[str, str]]) -> Table:  # type: ignore[type-arg]
    table = Table(title=title, show_header=False)
    for label, key in keys:
        v = summary[key]
        table.add_row(label, f"{v:,}" if isinstance(v, int) else markup(v))
    return table


def memories_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    users: UsersOpt = None,
    user: UserOpt = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for --users sampling and LLM sampling.")] = default(M, "seed"),
    mode: Annotated[str, typer.Option(help="llm (the method: embedder proposes, LLM decides uncertain boundaries "
                                      "and summarizes), llm-segment (the LLM segments whole days; the first "
                                      "version), extractive (no LLM) or actions (one memory per step: the "
                                      "no-hierarchy ablation).")] = default(M, "mode"),
    max_days: Annotated[int | None, typer.Option("--max-days", help="At most D days per user, most recent "
                                                 "first.")] = default(M, "max_days"),
    memory_set: Annotated[str | None, typer.Option("--set", help="Name of the memory set (default: the "
                                                   "mode).")] = default(M, "memory_set"),
    history: Annotated[bool, typer.Option("--history/--all-actions", help="Build from each user's history only "
                                          "(actions before the split cutoff: what evaluation needs) or from every "
                                          "action.")] = default(M, "view") == "history",
    window_steps: Annotated[int, typer.Option(help="Steps per LLM request; longer days are cut into "
                                              "windows.")] = default(M, "window_steps"),
    summary_words: Annotated[int, typer.Option(help="llm mode: at most this many words per "
                                               "summary.")] = default(M, "summary_words"),
    redact: Annotated[bool | None, typer.Option("--redact/--no-redact", help="Strip e-mails, phones, card and "
                                                "SSN numbers, URL query strings before prompting (default: on "
                                                "for a remote backend).")] = default(M, "redact"),
    replace: ReplaceOpt = False,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Stage 1: group each user-day's contiguous same-intent actions into summarized intent memories."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.memories import run_memories

    try:
        config = MemoryConfig(mode=mode, memory_set=memory_set, max_days=max_days, window_steps=window_steps,  # type: ignore[arg-type]
                              summary_words=summary_words, seed=seed, redact=redact, view="history" if history else "all")
    except ValueError as exc:
        raise config_error(exc) from exc
    with Workspace(workspace) as ws:
        ids = select_users(ws, users, user, seed)
        if not ids:
            raise InputError(f"workspace {workspace} has no users: run `personaminer ingest` first")
        if history and not user:  # a sampled user without a split has no history: skipped, and said so
            from personaminer.evaluate.split import split_user_ids

            has_split = set(split_user_ids(ws))
            unsplit = [u for u in ids if u not in has_split]
            if unsplit and len(unsplit) < len(ids):
                err.print(f"[yellow]{len(unsplit)} of {len(ids)} sampled users have no split (no history): skipped[/] "
                          f"(`personaminer split -w {markup(workspace)}` lists why)")
                ids = [u for u in ids if u in has_split]
        model_obj, remote = None, False
        if config.uses_llm:
            from personaminer.llm import make_llm

            cfg = llm_config(llm, model, base_url, llm_config_file, no_cache)
            remote = cfg.backend == "openai"
            model_obj = make_llm(cfg)
        try:
            summary = run_memories(ws, ids, config, embedder=MiniLMEmbedder(), llm=model_obj, redact=remote,
                                   replace=replace, progress=not quiet)
        finally:
            if model_obj is not None:
                model_obj.close()
    check = summary["check"]
    table = _table(f"memories ({markup(summary['memory_set'])}) -> {markup(workspace)}", summary, [
        ("users", "users"), ("days processed", "days"), ("days already done", "days_skipped"),
        ("days rebuilt (their actions changed)", "days_rebuilt"), ("memories written", "memories"),
        ("actions per memory", "actions_per_memory"), ("LLM requests", "llm_requests"),
        ("LLM model calls (not cached)", "llm_model_calls"), ("prompt tokens", "prompt_tokens"),
        ("completion tokens", "completion_tokens"), ("completion tokens per action", "completion_tokens_per_action"),
        ("yes/no boundary questions", "questions"), ("LLM summaries", "summaries"), ("days repaired", "repaired_days"),
        ("days with extractive fallback", "fallback_days"), ("lineage", "lineage"), ("fingerprint", "fingerprint"),
        ("seconds", "seconds")])
    table.add_row("coverage check", "ok" if check["ok"] else f"FAILED {markup(check)}",
                  style="green" if check["ok"] else "bold red")
    console.print(table)
    if not check["ok"]:
        raise InputError(f"memories: the coverage check failed ({check}): some actions are in no memory or in "
                         "memories of another user; rebuild the set with --set NEW_NAME")


def personas_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str, typer.Option("--builder", "-b", help="cluster, model (the persona model) or "
                                         "single.")] = default(P, "builder"),
    name: Annotated[str | None, typer.Option("--name", help="The persona collection to store the sets under "
                                             "(default: BUILDER@MEMORY_SET).")] = default(P, "name"),
    users: UsersOpt = None,
    user: UserOpt = [],  # noqa: B006
    role: Annotated[str | None, typer.Option("--role", help="Only users holding this held-out role (train, val "
                                             "or test; see `train roles`).")] = None,
    memory_set: Annotated[str, typer.Option("--memories", help="Which memory set to read.")] = default(P, "memory_set"),
    min_personas: Annotated[int, typer.Option("--min-personas")] = default(P, "min_personas"),
    max_personas: Annotated[int, typer.Option("--max-personas")] = default(P, "max_personas"),
    samples: Annotated[int, typer.Option("--samples", help="Candidate sets per user.")] = default(P, "samples"),
    temperature: Annotated[float, typer.Option("--temperature")] = default(P, "temperature"),
    seed: Annotated[int, typer.Option("--seed")] = default(P, "seed"),
    shared_evidence: Annotated[bool, typer.Option("--shared-evidence/--exclusive-evidence", help="May one memory "
                                                  "support several personas?")] = default(P, "allow_shared_evidence"),
    decoding: DecodingOpt = PersonaConfig.decoding,
    memory_order: MemoryOrderOpt = PersonaConfig.memory_order,
    max_memories: Annotated[int, typer.Option("--max-memories", help="Memories per prompt; more are reduced "
                                              "to a representative subset.")] = default(P, "max_memories"),
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter GGUF for the persona model.")] = None,
    linkage: Annotated[str, typer.Option("--linkage", help="cluster: ward (default) or average "
                                         "(cosine) agglomerative linkage.")] = default(P, "linkage"),
    distinct_labels: Annotated[bool, typer.Option(
        "--distinct-labels/--repeated-labels", help="cluster: re-ask (up to --max-retries times) the label of a cluster whose label "
        "repeats a larger cluster's (docs/personas.md).")] = default(P, "distinct_labels"),
    keyword_labels: Annotated[bool, typer.Option(
        "--keyword-labels/--no-keyword-labels", help="cluster: a label that still repeats after the relabels gets its "
        "cluster's three most distinctive words appended (docs/personas.md).")] = default(P, "keyword_labels"),
    label_similarity: Annotated[float, typer.Option(
        "--label-similarity", help="cluster: two labels whose MiniLM cosine is at least this count as the "
        "same label.")] = default(P, "label_similarity"),
    retry_temperature: Annotated[float, typer.Option(
        "--retry-temperature", help="Retries sample at this temperature (seeded); 0 = greedy "
        "retries.")] = default(P, "retry_temperature"),
    max_retries: Annotated[int, typer.Option("--max-retries", help="Re-asks of an invalid set before it is "
                                             "recorded as failed.")] = default(P, "max_retries"),
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Completion budget of one "
                                            "answer.")] = default(P, "max_tokens"),
    replace: ReplaceOpt = False,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Stage 2: build persona sets (label, description, evidence memories) for each user."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import make_llm
    from personaminer.personas import run_personas

    try:
        config = PersonaConfig(builder=builder, memory_set=memory_set, min_personas=min_personas,  # type: ignore[arg-type]
                               max_personas=max_personas, samples=samples, temperature=temperature, seed=seed,
                               allow_shared_evidence=shared_evidence, max_memories=max_memories,
                               decoding=decoding, memory_order=memory_order,  # type: ignore[arg-type]
                               linkage=linkage,  # type: ignore[arg-type]
                               distinct_labels=distinct_labels, label_similarity=label_similarity,
                               keyword_labels=keyword_labels,
                               retry_temperature=retry_temperature or None, max_retries=max_retries,
                               max_tokens=max_tokens, adapter=str(adapter) if adapter else None, name=name)
    except ValueError as exc:
        raise config_error(exc) from exc
    cfg = llm_config(llm, model, base_url, llm_config_file, no_cache)
    if adapter:
        cfg.llamacpp.adapter = adapter
    with Workspace(workspace) as ws:
        ids = select_users(ws, users, user, seed, role)
        model_obj = make_llm(cfg)
        try:
            summary = run_personas(ws, ids, config, embedder=MiniLMEmbedder(), llm=model_obj, replace=replace,
                                   progress=not quiet)
        finally:
            model_obj.close()
    keys = ["users", "users_without_memories", "sets", "sets_skipped", "failed_sets", "repaired_sets", "personas",
            "personas_per_set", "unassigned_memories", "subset_sets", "llm_requests", "llm_model_calls",
            "prompt_tokens", "completion_tokens", "lineage", "fingerprint", "seconds"]
    table = _table(f"personas ({markup(summary['collection'])}) -> {markup(workspace)}", summary,
                   [(k.replace("_", " "), k) for k in keys])
    ok = summary["check"]["ok"]
    table.add_row("evidence check", "ok" if ok else f"FAILED {markup(summary['check'])}",
                  style="green" if ok else "bold red")
    console.print(table)
    if summary["users_without_memories"]:
        err.print(f"{summary['users_without_memories']} user(s) have no memories in set {markup(repr(memory_set))}: "
                  "run `personaminer memories` first", soft_wrap=True)


def score_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    where: Annotated[list[str], typer.Option("--set", help="Filter sets: builder=model, collection=..., "
                                             "user_id=..., memory_set=... (repeatable).")] = [],  # noqa: B006
    judge: Annotated[str, typer.Option("--judge", help="llm (yes/no judge from log-probabilities) or embedding "
                                       "(cheap cosine support, for large runs).")] = default(Q, "judge"),
    strict: Annotated[bool, typer.Option("--strict", help="The judge also sees the evidence's raw "
                                         "actions.")] = default(Q, "strict"),
    claims: Annotated[str, typer.Option("--claims", help="sentences (default) or llm (an LLM rewrites each "
                                        "description as one-fact claims).")] = default(Q, "claims"),
    weights: Annotated[str | None, typer.Option("--weights", help="cohesion,alignment,truthfulness,specificity,"
                                                "distinctness weights, e.g. 1,1,2,1,1 (default equal).")] = None,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score persona sets: cohesion, alignment, truthfulness, coverage, redundancy and the final score."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.quality import run_scores

    try:
        w = default(Q, "weights")
        if weights:
            w = dict(zip(TERMS, (float(x) for x in weights.split(",")), strict=True))
        config = QualityConfig(judge=judge, strict=strict, weights=w, claims=claims)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(f"bad --judge, --claims or --weights: {exc}") from exc
    model_obj = None
    with Workspace(workspace) as ws:
        if judge == "llm" or claims == "llm":
            from personaminer.llm import make_llm

            model_obj = make_llm(llm_config(llm, model, base_url, llm_config_file, no_cache))
        try:
            summary = run_scores(ws, config, embedder=MiniLMEmbedder(), llm=model_obj,
                                 where=parse_pairs(where, "--set"), progress=not quiet)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        finally:
            if model_obj is not None:
                model_obj.close()
    print_scores(summary, judge, workspace)


def print_scores(summary: dict, judge: str, workspace: Path) -> None:  # type: ignore[type-arg]
    table = Table(title=f"persona quality ({markup(judge)} judge) in {markup(workspace)}")
    table.add_column("builder", no_wrap=True)
    table.add_column("sets", justify="right")
    terms = ("final", "cohesion", "alignment", "truthfulness", "mean_p_yes", "coverage", "redundancy")
    for m in terms:
        table.add_column(m, justify="right")
    for builder, st in summary["builders"].items():
        cells = []
        for m in terms:
            mean, sd = st[m]["mean"], st[m]["std"]
            cells.append("-" if mean is None else f"{mean:.3f}" + (f" ±{sd:.3f}" if sd is not None else ""))
        table.add_row(markup(builder), str(st["sets"]), *cells)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("memories")(memories_cmd)
    app.command("personas")(personas_cmd)
    app.command("score")(score_cmd)
