"""Helpers for the memories tests. Run as a script it builds memories for a workspace with the fake
segmenter (:func:`tests.fakes.segmenter`, logging each request's day), which lets a test SIGKILL it
mid-run and count how often each user-day reached "the model"."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from personaminer import Workspace
from tests.fakes import segmenter

_STEP = re.compile(r"^(\d+)\. ", re.MULTILINE)
_DAY = re.compile(r"steps one user took on (\d{4}-\d{2}-\d{2})")


def sample_users(ws_path: Path, n: int, seed: int = 0) -> list[str]:
    with Workspace(ws_path) as ws:
        return ws.users(sample=n, seed=seed, min_actions=20)


def main() -> None:  # python fake_segmenter.py WORKSPACE CACHE LOG USER [USER ...]
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm.cache import CachedLLM, LLMCache
    from personaminer.memories import MemoryConfig, run_memories

    ws_path, cache_path, log_path, *users = sys.argv[1:]
    llm = CachedLLM(segmenter(log_path=Path(log_path), delay=0.3), LLMCache(cache_path))
    with Workspace(ws_path) as ws:
        run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=4, window_steps=6), embedder=MiniLMEmbedder(),
                     llm=llm, progress=False)


if __name__ == "__main__":
    main()
