"""Where personaminer keeps downloaded data and models (never inside a workspace)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """``$PERSONAMINER_CACHE_DIR`` or the platform's user cache folder, plus ``parts`` (created)."""
    root = os.environ.get("PERSONAMINER_CACHE_DIR") or platformdirs.user_cache_dir("personaminer")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_dir(module: str) -> Path | None:
    """The directory of an installed package, found without importing it (None if absent)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))
