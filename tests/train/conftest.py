from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def train_ws(aol_memory_copy) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """A private copy of six real AOL users with real extractive memories (no LLM needed)."""
    return aol_memory_copy(6, 3, 8)
