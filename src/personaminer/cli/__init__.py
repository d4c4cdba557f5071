"""The ``personaminer`` command line. Each command calls the Python API and nothing more.

The commands live in one module per area, each with a ``register(app)`` that mounts them (the
one way commands are added): :mod:`~personaminer.cli.data` (ingest, info, users, fetch, export),
:mod:`~personaminer.cli.stages` (memories, personas, score), :mod:`~personaminer.cli.views`
(show, audit), :mod:`~personaminer.cli.evaluate` (split, evaluate), :mod:`~personaminer.cli.demo`,
and the sub-command groups :mod:`~personaminer.cli.models` and :mod:`~personaminer.cli.train`.
Option defaults are read from the stage configs' dataclass fields (:func:`default`), so a
default is written once, where the config owns it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import random
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler

from personaminer.datasets.base import InputError
from personaminer.errors import UserError
from personaminer.store import Workspace
from personaminer.terminal import SafeWriter, markup
from personaminer.terminal import console as _console

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn user behavioral logs into evidence-grounded, truthful personas.")
console = _console()
err = _console(stderr=True)
_debug = False  # --verbose: an unexpected error shows its traceback

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder (DuckDB database + reports).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
MemoryOrderOpt = Annotated[str, typer.Option("--memory-order", help="The order (and numbers) of the memories the "
                                             "persona model is shown: time, or similarity (similar memories "
                                             "adjacent).")]
DecodingOpt = Annotated[str, typer.Option("--decoding", help="How the persona model writes a set: oneshot (one call) "
                                          "or stepwise (one call per persona over the memories not yet cited, so no "
                                          "memory is cited twice; needs a server that continues a prefilled answer, "
                                          "as the embedded one does).")]
LlmOpt = Annotated[str | None, typer.Option("--llm", help="LLM backend: llamacpp (embedded, default) or openai.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Catalog model name or GGUF path (llamacpp), "
                                              "or the server's model name (openai).")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. "
                                                "http://127.0.0.1:8000/v1 (implies --llm openai).")]
LlmConfigOpt = Annotated[Path | None, typer.Option("--llm-config", help="LLM config file (.toml or .json).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the LLM answer cache.")]
ReplaceOpt = Annotated[bool, typer.Option("--replace", help="If the name is taken by an output built otherwise, "
                                          "delete it and what was built on it, then build anew.")]


def default(config: type, name: str) -> Any:
    """The default of field ``name`` of the dataclass ``config`` (the one place it is written)."""
    f = {f.name: f for f in dataclasses.fields(config)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logging (and the "
                                              "traceback of an unexpected error).")] = False) -> None:
    global _debug
    _debug = verbose
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)])


def parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` as a dict; a malformed pair is an :class:`InputError` naming ``flag``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{flag} expects FIELD=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


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


def select_users(ws: Workspace, users: int | None, user: list[str], seed: int, role: str | None = None) -> list[str]:
    """``--user`` ids (checked), else the users holding ``--role``, else a seeded sample of ``--users``, else all."""
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
            held = sorted(random.Random(seed).sample(held, users))
        return held
    return ws.users(sample=users, seed=seed) if users else ws.users()


def config_error(exc: ValueError) -> InputError:
    """A config's own validation error, as the user error the CLI prints."""
    return InputError(str(exc))


for _module in ("data", "stages", "views", "evaluate", "demo", "models", "train"):
    importlib.import_module(f"personaminer.cli.{_module}").register(app)


def main() -> Any:
    """Entry point: run the app; any error is one line on stderr and a non-zero exit status.

    A user error (:class:`~personaminer.errors.UserError`: bad input, bad option, a workspace or
    model that cannot be used) exits 1 with its message, which says what to do; a full disk or
    another system error exits 1 naming it; an unexpected error exits 2 with one line
    (``--verbose`` shows its traceback). Ctrl-C exits 130.
    """
    import click
    import duckdb

    try:
        rc = app(standalone_mode=False)
    except UserError as exc:
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
    # typer turns Ctrl-C inside a command into a returned 130 (and typer.Exit(n) into n) when not
    # standalone: make it the exit status whichever way the CLI was started (`python -m` too)
    if rc == 130:
        err.print("interrupted")
    if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
        raise SystemExit(rc)
    return rc


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
