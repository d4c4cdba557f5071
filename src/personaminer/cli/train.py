"""``personaminer train ...``: preference groups, groupwise DPO, adapter export, before/after comparison."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personaminer.cli import DecodingOpt, MemoryOrderOpt, default
from personaminer.datasets.base import InputError
from personaminer.store import DEFAULT_WORKSPACE, Workspace
from personaminer.terminal import console as _console
from personaminer.terminal import markup
from personaminer.train.groups import GroupConfig
from personaminer.train.verified import VerifiedConfig

app = typer.Typer(no_args_is_help=True)
G = GroupConfig
_SAMPLING = default(G, "persona")
console = _console()

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Persona model: catalog name or GGUF path.")]
# The options `train fit` and `train sft` share.
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, log, adapter).")]
TrainModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog model, checkpoint folder or 'tiny'.")]
LrOpt = Annotated[float, typer.Option("--lr")]
EpochsOpt = Annotated[int, typer.Option("--epochs")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", help="Stop after N steps (0: epochs decide).")]
MaxLengthOpt = Annotated[int, typer.Option("--max-length")]
LoraROpt = Annotated[int, typer.Option("--lora-r")]
SeedOpt = Annotated[int, typer.Option("--seed")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]


def _llm(model: str, adapter: Path | None = None, no_cache: bool = False):  # type: ignore[no-untyped-def]
    from personaminer.cli import llm_config
    from personaminer.llm import make_llm

    cfg = llm_config("llamacpp", model, None, None, no_cache)
    cfg.llamacpp.adapter = adapter
    return make_llm(cfg)


@app.command("build-groups")
def build_groups_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    users: Annotated[int | None, typer.Option("--users", help="A seeded sample of N users (default: all).")] = None,
    group_size: Annotated[int, typer.Option("--group-size", "-G", help="Persona-model samples per "
                                            "user.")] = _SAMPLING.samples,
    temperature: Annotated[float, typer.Option("--temperature")] = _SAMPLING.temperature,
    seed: Annotated[int, typer.Option("--seed")] = _SAMPLING.seed,
    memory_set: Annotated[str, typer.Option("--memories", help="Which memory set to read.")] = _SAMPLING.memory_set,
    max_memories: Annotated[int, typer.Option("--max-memories")] = _SAMPLING.max_memories,
    include: Annotated[list[str], typer.Option("--include-builder", help="Stored sets of this builder join "
                                                "each group (repeatable), e.g. cluster.")] = [],  # noqa: B006
    max_retries: Annotated[int, typer.Option("--max-retries", help="Re-asks of an invalid "
                                             "sample.")] = _SAMPLING.max_retries,
    decoding: DecodingOpt = _SAMPLING.decoding,
    memory_order: MemoryOrderOpt = _SAMPLING.memory_order,
    failed: Annotated[bool, typer.Option("--failed-candidates/--no-failed-candidates", help="Invalid samples join "
                                         "each group as candidates ranked last.")] = default(G, "failed_candidates"),
    tie_margin: Annotated[float, typer.Option("--tie-margin")] = default(G, "tie_margin"),
    val_users: Annotated[int, typer.Option("--val-users")] = default(G, "val_users"),
    test_users: Annotated[int, typer.Option("--test-users")] = default(G, "test_users"),
    judge: Annotated[str, typer.Option("--judge", help="Claim judge for ranking: embedding or llm.")] = "embedding",
    model: ModelOpt = "smollm2-135m-instruct",
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter GGUF of the student (e.g. the SFT "
                                                 "run's adapter.gguf).")] = None,
    verified: Annotated[Path | None, typer.Option("--verified", help="verified.jsonl: each user's verified set "
                                                  "joins the group.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Collection of the samples (default candidates@M; "
                                             "give a new one per student).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: W/train).")] = None,
    sample: Annotated[bool, typer.Option("--sample/--only-sampled", help="--only-sampled: no new samples; "
                                         "groups from the candidates stored so far.")] = True,
    replace: Annotated[bool, typer.Option("--replace", help="Rebuild a groups dataset built otherwise in --out.")
                       ] = False,
) -> None:
    """Sample G persona sets per train/val user, score and rank them, write groups.jsonl."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.quality.scorer import QualityConfig
    from personaminer.train.groups import build_groups

    if judge != "embedding":
        raise InputError("build-groups ranks with the embedding judge (the LLM judge is too slow for G x users "
                         "on a CPU); score the held-out comparison with --judge llm instead")
    try:
        persona = dataclasses.replace(_SAMPLING, samples=group_size, temperature=temperature, seed=seed,
                                      memory_set=memory_set, max_memories=max_memories, max_retries=max_retries,
                                      decoding=decoding, memory_order=memory_order, name=name)
        config = GroupConfig(persona=persona, include_builders=tuple(include), tie_margin=tie_margin,
                             verified=str(verified) if verified else None,
                             failed_candidates=failed, val_users=val_users, test_users=test_users,
                             quality=QualityConfig(judge=judge))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace) as ws:
        ids = ws.users(sample=users, seed=seed) if users else ws.users()
        llm = _llm(model, adapter)
        try:
            meta = build_groups(ws, ids, config, llm=llm, embedder=MiniLMEmbedder(), out_dir=out, sample=sample,
                                replace=replace)
        finally:
            llm.close()
    table = Table(title=f"preference groups -> {markup(out or Path(workspace) / 'train')}", show_header=False)
    for k, v in meta["counts"].items():
        table.add_row(k.replace("_", " "), f"{v:,}")
    for k, v in meta["sampling"].items():
        table.add_row(f"sampling {k.replace('_', ' ')}", f"{v:,}")
    sig = meta["groups_with_signal"]
    if sig["share"] is not None:
        table.add_row("groups with >= 2 valid, distinct scores", f"{sig['groups']} of {sig['of']} ({sig['share']:.0%})")
    console.print(table)


@app.command("roles")
def roles_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    users: Annotated[int | None, typer.Option("--users", help="A seeded sample of N users (default: all).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    val_users: Annotated[int, typer.Option("--val-users")] = default(G, "val_users"),
    test_users: Annotated[int, typer.Option("--test-users")] = default(G, "test_users"),
    split_only: Annotated[bool, typer.Option("--split-only/--any-user", help="Assign roles only among the sampled "
                                             "users that have a split (`personaminer split`): MovieLens users "
                                             "who rated everything on one day cannot be split, so cannot be "
                                             "evaluated.")] = False,
) -> None:
    """Assign the held-out roles (train/val/test) without sampling anything.

    The same ``--users/--seed/--val-users/--test-users`` as a later ``build-groups`` give the
    same roles, and a user never changes role, so the test users can get personas and be
    evaluated (``personas --role test``, ``evaluate --role test``) before or without training.
    """
    from personaminer.evaluate.split import assign_roles, split_user_ids, store_roles

    with Workspace(workspace) as ws:
        ids = ws.users(sample=users, seed=seed) if users else ws.users()
        if not ids:
            raise InputError(f"workspace {workspace} has no users: run `personaminer ingest` first")
        if split_only:
            has_split = set(split_user_ids(ws))
            kept = [u for u in ids if u in has_split]
            console.print(f"--split-only: {len(kept):,} of {len(ids):,} sampled users have a split")
            ids = kept
            if not ids:
                raise InputError(f"no sampled user has a split in {workspace}: run `personaminer split` first")
        roles = store_roles(ws, assign_roles(ids, val_users=val_users, test_users=test_users, seed=seed), seed)
    table = Table(title=f"held-out roles -> {markup(workspace)}", show_header=False)
    for r in ("train", "val", "test"):
        table.add_row(r, f"{sum(v == r for v in roles.values()):,}")
    console.print(table)


@app.command("fit")
def fit_cmd(
    groups: Annotated[list[Path], typer.Argument(help="groups.jsonl file(s) from build-groups.")],
    out: OutOpt,
    model: TrainModelOpt = "smollm2-135m-instruct",
    loss: Annotated[str, typer.Option("--loss", help="listwise, softmax, pairwise, pairwise_margin or sft.")
                    ] = "listwise",
    init_adapter: Annotated[Path | None, typer.Option("--init-adapter", help="Start from this PEFT adapter "
                                                      "folder (e.g. the SFT run's OUT/adapter); the reference is "
                                                      "then the model as it starts.")] = None,
    beta: Annotated[float, typer.Option("--beta")] = 0.1,
    sft_weight: Annotated[float, typer.Option("--sft-weight", help="Add this times the per-token NLL of each "
                                              "group's best candidate (0: pure preference loss).")] = 0.0,
    lr: LrOpt = 2e-4,
    epochs: EpochsOpt = 1,
    max_steps: MaxStepsOpt = 0,
    groups_per_step: Annotated[int, typer.Option("--groups-per-step")] = 4,
    groups_per_forward: Annotated[int, typer.Option("--groups-per-forward", help="0: 1 on CPU, 4 on CUDA.")] = 0,
    max_length: MaxLengthOpt = 2048,
    lora_r: LoraROpt = 8,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
) -> None:
    """Train a LoRA adapter with groupwise DPO, or SFT with --loss sft (resumes from OUT/checkpoint)."""
    _fit(groups, out, model=model, loss=loss, beta=beta, sft_weight=sft_weight, learning_rate=lr, epochs=epochs,
         max_steps=max_steps, groups_per_step=groups_per_step, groups_per_forward=groups_per_forward,
         max_length=max_length, lora_r=lora_r, lora_alpha=2 * lora_r, seed=seed, device=device,
         init_adapter=str(init_adapter) if init_adapter else None)


@app.command("sft")
def sft_cmd(
    verified: Annotated[list[Path], typer.Argument(help="verified.jsonl file(s) from `train verified`.")],
    out: OutOpt,
    model: TrainModelOpt = "smollm2-135m-instruct",
    lr: LrOpt = 2e-4,
    epochs: EpochsOpt = 3,
    max_steps: MaxStepsOpt = 0,
    groups_per_step: Annotated[int, typer.Option("--sets-per-step")] = 4,
    max_length: MaxLengthOpt = 2048,
    lora_r: LoraROpt = 8,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
) -> None:
    """SFT warm start: LoRA fine-tuning on the verified sets (the same as `train fit --loss sft`)."""
    _fit(verified, out, model=model, loss="sft", learning_rate=lr, epochs=epochs, max_steps=max_steps,
         groups_per_step=groups_per_step, max_length=max_length, lora_r=lora_r, lora_alpha=2 * lora_r, seed=seed,
         device=device)


def _fit(groups: list[Path], out: Path, **kw: object) -> None:
    from personaminer.train.trainer import GroupwiseDPOTrainer, TrainConfig

    for g in groups:
        if not g.is_file():
            raise InputError(f"no groups file {g}: run `personaminer train build-groups` (or `train verified`) first")
    try:
        config = TrainConfig(**kw)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    s = GroupwiseDPOTrainer(config, out).fit(groups).summary_
    title = "SFT" if config.loss == "sft" else f"groupwise DPO ({markup(config.loss)})"
    table = Table(title=f"{title} -> {markup(out)}", show_header=False)
    for k in ("device", "train_groups", "val_groups", "candidates_too_long", "steps", "trainable_params",
              "loss_first_fifth", "loss_last_fifth", "seconds_per_step", "adapter", "gguf"):
        v = s[k]
        table.add_row(k.replace("_", " "), f"{v:.4f}" if isinstance(v, float) else str(v))
    for when in ("val_before", "val_after"):
        if s[when]:
            table.add_row(when.replace("_", " "), ", ".join(f"{k} {v:.3f}" for k, v in s[when].items()))
    console.print(table)


@app.command("verified")
def verified_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    teacher: Annotated[list[str], typer.Option("--teacher", help="A persona collection whose sets compete "
                                               "(repeatable; default cluster@M and model@M).")] = [],  # noqa: B006
    min_score: Annotated[float, typer.Option("--min-score", help="Keep a user's best set only at or above this "
                                             "final score.")] = default(VerifiedConfig, "min_score"),
    memory_set: Annotated[str, typer.Option("--memories", help="The student's memory set.")] = "extractive",
    max_memories: Annotated[int, typer.Option("--max-memories", help="Memories the student is shown.")] = 24,
    judge: Annotated[str, typer.Option("--judge", help="Claim judge: embedding or llm.")] = "embedding",
    judge_model: Annotated[str, typer.Option("--judge-model")] = "qwen2.5-coder-1.5b-instruct",
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: W/train).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Rebuild a verified dataset built otherwise in --out.")
                       ] = False,
) -> None:
    """Verified sets: each train/val user's best teacher set above --min-score, as SFT data (verified.jsonl)."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.personas.base import PersonaConfig
    from personaminer.personas.model import STUDENT_MAX_TOKENS
    from personaminer.quality.scorer import QualityConfig
    from personaminer.train.verified import build_verified

    try:
        config = VerifiedConfig(teachers=tuple(teacher), min_score=min_score,
                                student=PersonaConfig(builder="model", memory_set=memory_set,
                                                      max_memories=max_memories, max_tokens=STUDENT_MAX_TOKENS),
                                quality=QualityConfig(judge=judge))  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace) as ws:
        judge_llm = _llm(judge_model) if judge == "llm" else None
        try:
            meta = build_verified(ws, config, embedder=MiniLMEmbedder(), llm=judge_llm, out_dir=out, replace=replace)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        finally:
            if judge_llm is not None:
                judge_llm.close()
    table = Table(title=f"verified sets -> {markup(out or Path(workspace) / 'train')}", show_header=False)
    for k, v in meta["counts"].items():
        table.add_row(k.replace("_", " "), f"{v:,}")
    for k, v in meta["kept_by_collection"].items():
        table.add_row(f"kept from {markup(k)}", f"{v:,}")
    if meta["mean_kept_score"] is not None:
        table.add_row("mean kept final", f"{meta['mean_kept_score']:.3f}")
    console.print(table)


@app.command("export")
def export_cmd(
    adapter: Annotated[Path, typer.Argument(help="PEFT adapter folder written by `train fit` (OUT/adapter).")],
    to: Annotated[Path, typer.Option("--to", help="Output .gguf file.")],
) -> None:
    """Convert a trained adapter to a llama.cpp LoRA GGUF (fit does this already for catalog models)."""
    from personaminer.train.export import export_gguf_adapter

    console.print(f"wrote {markup(export_gguf_adapter(adapter, to))}")


@app.command("compare")
def compare_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    adapter: Annotated[list[str], typer.Option("--adapter", help="NAME=PATH of an adapter GGUF (repeatable).")
                       ] = [],  # noqa: B006
    model: ModelOpt = "smollm2-135m-instruct",
    role: Annotated[str, typer.Option("--role", help="Which users: test or val (from build-groups).")] = "test",
    max_users: Annotated[int | None, typer.Option("--users", help="Only the first N of them (by user id).")] = None,
    memory_set: Annotated[str, typer.Option("--memories")] = "extractive",
    max_memories: Annotated[int, typer.Option("--max-memories")] = 24,
    judge: Annotated[str, typer.Option("--judge", help="embedding or llm.")] = "embedding",
    judge_model: Annotated[str, typer.Option("--judge-model")] = "qwen2.5-coder-1.5b-instruct",
    max_retries: Annotated[int, typer.Option("--max-retries", help="Re-asks of an invalid set (0: the share of "
                                             "valid first answers is measured as such).")] = 2,
    decoding: DecodingOpt = "oneshot",
    memory_order: MemoryOrderOpt = "time",
    tag: Annotated[str | None, typer.Option("--tag", help="Name the systems TAG-base, TAG-NAME (their collections) "
                                            "and the report train-compare-TAG, e.g. to compare decodings.")] = None,
) -> None:
    """Score the base persona model against trained adapters on held-out users (mean +- SE, paired)."""
    from personaminer.cli import parse_pairs
    from personaminer.embed import MiniLMEmbedder
    from personaminer.evaluate.split import load_roles
    from personaminer.personas.base import PersonaConfig
    from personaminer.personas.model import STUDENT_MAX_TOKENS
    from personaminer.quality.scorer import QualityConfig
    from personaminer.train.compare import compare_systems

    pairs = parse_pairs(adapter, "--adapter")
    try:
        persona_config = PersonaConfig(builder="model", memory_set=memory_set, max_memories=max_memories,
                                       max_tokens=STUDENT_MAX_TOKENS, max_retries=max_retries,
                                       decoding=decoding, memory_order=memory_order)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace) as ws:
        users = sorted(u for u, r in load_roles(ws).items() if r == role)[:max_users]
        if not users:
            raise InputError(f"no {role} users in {workspace}: run `personaminer train build-groups` first")
        named = (lambda s: f"{tag}-{s}") if tag else (lambda s: s)
        systems = {named("base"): (_llm(model), None)}
        systems.update({named(name): (_llm(model, Path(path)), str(path)) for name, path in pairs.items()})
        judge_llm = _llm(judge_model) if judge == "llm" else None
        try:
            report = compare_systems(ws, users, systems, persona_config,
                                     QualityConfig(judge=judge), embedder=MiniLMEmbedder(), judge=judge_llm)  # type: ignore[arg-type]
        finally:
            for m in [*(llm for llm, _ in systems.values()), judge_llm]:
                if m is not None:
                    m.close()
        report_name = f"train-compare-{tag}" if tag else "train-compare"
        ws.write_report(report_name, report)
    table = Table(title=f"persona model on {report['users']} {role} users ({judge} judge)")
    table.add_column("system")
    cols = ("valid", "final_all", "final", "cohesion", "alignment", "truthfulness", "coverage")
    for t in cols:
        table.add_column(t.replace("final_all", "final (failed = 0)"), justify="right")
    for name, s in report["systems"].items():
        table.add_row(f"{markup(name)} (n={s['sets_scored']})", *(_fmt(s[t]) for t in cols))
    for name, d in report["paired_vs_" + next(iter(systems))].items():
        table.add_row(f"{markup(name)} - base (paired, n={d['final']['n']}; all {d['valid']['n']})",
                      *(_fmt(d[t]) for t in cols))
    console.print(table)
    console.print(markup(json.dumps({"report": str(Path(workspace) / "reports" / f"{report_name}.json")})))


def _fmt(x: dict) -> str:  # type: ignore[type-arg]
    if x["mean"] is None:
        return "-"
    return f"{x['mean']:.3f} ± {x['se']:.3f}" if x["se"] is not None else f"{x['mean']:.3f}"


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="train", help="Train the persona model with groupwise DPO (LoRA).")
