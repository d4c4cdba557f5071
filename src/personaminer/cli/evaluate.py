"""The ``split`` and ``evaluate`` commands (top level; registered by ``personaminer.cli``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from personaminer.cli import WorkspaceOpt, _select_users, app, console, err
from personaminer.datasets.base import InputError
from personaminer.store import DEFAULT_WORKSPACE, Workspace


@app.command("split")
def split_cmd(
    workspace: WorkspaceOpt = DEFAULT_WORKSPACE,
    future_frac: Annotated[float | None, typer.Option("--future-frac", help="The last fraction of each user's "
                                                      "active days is the future (default 0.2).")] = None,
    future_days: Annotated[int | None, typer.Option("--future-days", help="The last N active days of each user "
                                                    "are the future.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="One global cutoff date YYYY-MM-DD: actions on or "
                                             "after it are the future.")] = None,
    users: Annotated[int | None, typer.Option("--users", help="A seeded random sample of N users (default: all).")] = None,
    user: Annotated[list[str], typer.Option("--user", help="Split this user id (repeatable).")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for --users sampling.")] = 0,
    replace: Annotated[bool, typer.Option("--replace", help="Re-split users split with another rule (their "
                                          "memories and personas become stale).")] = False,
) -> None:
    """Cut each user's timeline into history (what personas may read) and future (what evaluation predicts)."""
    from personaminer.evaluate.split import SplitConfig, split_users

    chosen = [f for f, v in (("--future-frac", future_frac), ("--future-days", future_days), ("--date", date))
              if v is not None]
    if len(chosen) > 1:
        raise InputError(f"give one split rule, not {' and '.join(chosen)}")
    try:
        if future_days is not None:
            config = SplitConfig(rule="days", future_days=future_days)
        elif date is not None:
            config = SplitConfig(rule="date", date=date)
        else:
            config = SplitConfig(rule="frac", future_frac=0.2 if future_frac is None else future_frac)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    with Workspace(workspace) as ws:
        ids = _select_users(ws, users, user, seed)
        if not ids:
            raise InputError(f"workspace {workspace} has no users: run `personaminer ingest` first")
        try:
            summary = split_users(ws, ids, config, replace=replace)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    table = Table(title=f"split ({config.key()}) -> {workspace}", show_header=False)
    for key in ("requested_users", "split", "already_split", "replaced", "unsplittable", "workspace_split_users",
                "history_actions", "future_actions", "mean_history_days", "mean_future_days"):
        value = summary[key]
        table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    for reason, n in summary["unsplittable_reasons"].items():
        table.add_row(f"  not split: {reason}", f"{n:,}", style="yellow")
    console.print(table)
    if summary["unsplittable"]:
        err.print(f"{summary['unsplittable']} user(s) could not be split (ids in {workspace}/reports/split.json)")
    if not summary.get("leakage_check", {}).get("ok", True):
        err.print(f"[bold red]stale:[/] {summary['leakage_check']}: rebuild memories and personas for the re-split "
                  "users", soft_wrap=True)
