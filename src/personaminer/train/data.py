"""The groups dataset file: reading it and fingerprinting it (no workspace, no database).

Kept apart from :mod:`personaminer.train.groups` so the trainer runs where only the training
stack is installed (a GPU server with the groups file copied over).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def fingerprint(path: Path) -> str:
    """sha256 of a groups file (keys the reference log-probability cache)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_groups(paths: Sequence[Path | str], role: str | None = None) -> list[dict[str, Any]]:
    """Groups from one or more ``groups.jsonl`` files, optionally of one role."""
    out = []
    for p in paths:
        with Path(p).open(encoding="utf-8") as f:
            for line in f:
                g = json.loads(line)
                if role is None or g["role"] == role:
                    out.append(g)
    return out
