from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def ws_copy(aol_memory_copy) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """A private copy of four real AOL users with real extractive memories (no LLM needed)."""
    return aol_memory_copy(4, 5, 10)
