"""Everything personaminer prints goes through here: log text is data, never terminal instructions.

Log text reaches the terminal in many places (action texts, memory summaries, persona labels,
user ids, file names in errors and progress bars). A byte such as ESC or BEL, a C1 control, or a
Unicode bidi override in that text could clear the screen, open a hyperlink that swallows the rest
of the output, or reorder what the reader sees. :class:`SafeConsole` is a Rich console that
renders every such character of every text segment as a visible escape (``\\x1b``, ``\\u202e``)
at the last step before writing, while keeping Rich's own styling and cursor control. Rich
*markup* in untrusted text is a separate matter: call sites pass it through :func:`markup` (or
Rich's ``escape``), so ``[/]`` in a file name prints as written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape as _escape_markup
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.segment import Segment

#: Characters that act on a terminal or reorder text: C0 controls but newline and tab, DEL, C1
#: controls, the Unicode bidi embeddings, overrides, isolates and marks, and the line/paragraph
#: separators.
_UNSAFE = ([c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0))
           + [0x061C, 0x200E, 0x200F, 0x2028, 0x2029] + list(range(0x202A, 0x202F)) + list(range(0x2066, 0x206A)))
_TABLE = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}


def visible(text: str) -> str:
    """``text`` with every terminal-active character written as a visible escape."""
    return text.translate(_TABLE)


def markup(text: Any) -> str:
    """Untrusted text made safe to embed in Rich markup (``[`` escaped) and for a terminal."""
    return _escape_markup(visible(str(text)))


def has_unsafe(text: str) -> bool:
    """Whether ``text`` holds a character :func:`visible` would escape (for tests and checks)."""
    return any(ord(ch) in _TABLE for ch in text)


class SafeConsole(Console):
    """A Rich console whose output never carries a raw control or bidi character from the data."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        safe = (seg if seg.control else Segment(visible(seg.text), seg.style, seg.control) for seg in buffer)
        return super()._render_buffer(safe)


class SafeWriter:
    """A text file wrapper for output that does not go through Rich (click's usage errors)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(visible(text))

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_consoles: dict[str, SafeConsole] = {}


def console(stderr: bool = False) -> SafeConsole:
    """The shared console for standard output (or standard error)."""
    key = "err" if stderr else "out"
    if key not in _consoles:
        _consoles[key] = SafeConsole(stderr=stderr)
    return _consoles[key]


def progress(*columns: str | ProgressColumn, disable: bool = False, **kwargs: Any) -> Progress:
    """A progress bar on the safe console (the default columns: spinner, description, bar, elapsed)."""
    cols = columns or (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    return Progress(*cols, console=console(), disable=disable, **kwargs)


def echo(text: str, *, err: bool = False) -> None:
    """One plain line (no markup, no styling), escaped for the terminal."""
    stream = sys.stderr if err else sys.stdout
    stream.write(visible(text) + "\n")
