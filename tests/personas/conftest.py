from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ws_copy(aol_memory_copy) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """A private copy of four real AOL users with real extractive memories (no LLM needed)."""
    return aol_memory_copy(4, 5, 10)
