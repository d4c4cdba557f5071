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
