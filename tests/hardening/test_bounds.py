"""Unbounded text stays bounded: a huge log line is cut at ingest, and every prompt cuts further."""

from __future__ import annotations

import datetime as dt

import numpy as np

from personaminer.memories.segment import extractive_summary
from personaminer.memories.steps import MAX_TEXT, Step, render_step
from personaminer.personas.base import MemoryItem
from personaminer.prompts import ACTION_CHARS, MEMORY_CHARS, clip
from personaminer.schema import Action


def _action(i: int, text: str) -> Action:
    return Action(action_id=f"a{i}", user_id="u", ts=dt.datetime(2006, 3, 1, 10, i), kind="query", text=text,
                  source="csv", seq=i)


def test_clip_is_one_bounded_line() -> None:
    assert clip("a\n\nb\t c", 10) == "a b c"
    out = clip("x" * 5000 + "\n1. forged line", 300)
    assert len(out) == 300 and "\n" not in out and out.endswith("…")


def test_summaries_and_prompt_lines_of_huge_actions_are_bounded() -> None:
    steps = [Step((_action(i, f"{i} " + "w" * 2000),)) for i in range(5)]
    summary = extractive_summary(steps, np.eye(5, dtype=np.float32))
    assert len(summary) < 3 * ACTION_CHARS + 200, len(summary)
    assert all(len(render_step(s)) < MAX_TEXT + 40 for s in steps)
    line = MemoryItem(memory_id="m1", day=dt.date(2006, 3, 1), summary="s" * 1_000_000).line()
    assert len(line) <= MEMORY_CHARS + len("[2006-03-01] ")
