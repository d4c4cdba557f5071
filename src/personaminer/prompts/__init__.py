"""Prompts are files with a name and a version; both go into every LLM cache key.

A prompt file ``<name>.v<version>.txt`` has two sections::

    === system ===
    ...
    === user ===
    ... {placeholders} ...

Bump the version (a new file) whenever the wording changes, so cached answers of the old
wording are never reused for the new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: Every prompt shows at most this many characters of one action's text (the segmentation prompt
#: shows fewer, ``memories.steps.MAX_TEXT``), and of one memory's summary: however long a log line
#: is (ingest keeps up to 2,000 characters), a prompt stays bounded.
ACTION_CHARS = 300
MEMORY_CHARS = 1000


def cut(text: str, limit: int) -> str:
    """``text`` as it is, or cut to ``limit`` characters ending with ``…`` when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters with ``…``."""
    return cut(" ".join(text.split()), limit)


_FILE = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>\d+)\.txt$")


@dataclass(frozen=True)
class Prompt:
    """A named, versioned chat prompt: a system message and a user template."""

    name: str
    version: str
    system: str
    user: str

    def messages(self, **fields: object) -> list[dict[str, str]]:
        """The chat messages with the user template filled in (``str.format`` fields)."""
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user.format(**fields)}]


@cache
def load_prompt(name: str, version: str | None = None) -> Prompt:
    """The prompt ``name`` at ``version`` (default: the highest version shipped)."""
    files = {}
    for entry in resources.files(__package__).iterdir():
        m = _FILE.match(entry.name)
        if m and m["name"] == name:
            files[m["version"]] = entry
    if not files:
        raise KeyError(f"no prompt named {name!r} in personaminer/prompts")
    version = version or max(files, key=int)
    if version not in files:
        raise KeyError(f"prompt {name!r} has no version {version} (have {', '.join(sorted(files))})")
    text = files[version].read_text(encoding="utf-8")
    parts = re.split(r"^=== (system|user) ===\s*$", text, flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], (p.strip("\n") for p in parts[2::2]), strict=True))
    return Prompt(name=name, version=version, system=sections["system"].strip(), user=sections["user"].strip() + "\n")
