"""Where personaminer keeps downloaded data and models (never inside a workspace)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """``$PERSONAMINER_CACHE_DIR`` or the platform's user cache folder, plus ``parts`` (created)."""
    root = os.environ.get("PERSONAMINER_CACHE_DIR") or platformdirs.user_cache_dir("personaminer")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
