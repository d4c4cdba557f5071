"""Segmentation without an LLM: time gaps and embedding shifts, plus extractive summaries.

Used two ways: as the ``extractive`` mode's whole segmentation, and in the ``llm`` mode to cut
long days into coherent windows that fit the model's context.
"""

from __future__ import annotations

import numpy as np

from personaminer.memories.steps import Step
from personaminer.prompts import ACTION_CHARS, cut

_PHRASES = {"query": ("searched", "search", "searches"), "click": ("clicked", "result", "results"),
            "view": ("viewed", "item", "items"), "like": ("liked", "item", "items"),
            "cart": ("added", "item to the cart", "items to the cart"), "offer": ("made", "offer", "offers"),
            "checkout": ("started", "checkout", "checkouts"), "purchase": ("bought", "item", "items"),
            "rating": ("rated", "item", "items")}


def boundaries(steps: list[Step], vectors: np.ndarray, *, gap_minutes: float, min_similarity: float,
               context: int = 3) -> list[int]:
    """Indices where a new segment starts (always including 0).

    A new segment starts at step *i* when the time since step *i-1* exceeds ``gap_minutes``,
    or when step *i*'s embedding has cosine similarity below ``min_similarity`` to the mean of
    the current segment's last ``context`` steps (an embedding shift).
    """
    starts = [0]
    for i in range(1, len(steps)):
        gap = (steps[i].first.ts - steps[i - 1].actions[-1].ts).total_seconds() / 60
        recent = vectors[max(starts[-1], i - context):i].mean(axis=0)
        norm = float(np.linalg.norm(recent))
        sim = float(vectors[i] @ recent / norm) if norm > 0 else 0.0
        if gap > gap_minutes or sim < min_similarity:
            starts.append(i)
    return starts


def spans(starts: list[int], n: int) -> list[tuple[int, int]]:
    """``[start, end)`` pairs from segment start indices."""
    return list(zip(starts, [*starts[1:], n], strict=True))


def pack_windows(segments: list[tuple[int, int]], max_steps: int) -> list[tuple[int, int]]:
    """Pack consecutive segments into windows of at most ``max_steps`` steps.

    A window never splits a segment unless the segment alone is longer than ``max_steps``
    (then it is cut into ``max_steps``-sized pieces).
    """
    windows: list[tuple[int, int]] = []
    for start, end in segments:
        while end - start > max_steps:
            windows.append((start, start + max_steps))
            start += max_steps
        if windows and windows[-1][1] == start and end - windows[-1][0] <= max_steps:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def extractive_summary(steps: list[Step], vectors: np.ndarray) -> str:
    """A summary made only of the segment's own texts.

    It names the segment's most central step (highest mean similarity to the others), counts
    the actions by kind, and lists up to two other distinct texts.
    """
    if len(steps) == 1:
        central = 0
    else:
        sims = vectors @ vectors.T
        central = int(np.argmax((sims.sum(axis=1) - 1) / (len(steps) - 1)))
    counts: dict[str, int] = {}
    for step in steps:
        for a in step.actions:
            counts[a.kind] = counts.get(a.kind, 0) + 1
    parts = []
    for kind, n in counts.items():
        verb, one, many = _PHRASES.get(kind, (kind, "action", "actions"))
        parts.append(f"{verb} {n} {one if n == 1 else many}" if kind != "query" else
                     f"{verb} {n} {'time' if n == 1 else 'times'}")
    texts = [cut(step.text, ACTION_CHARS) for step in steps]  # a summary stays bounded, whatever the log holds
    head = f'Centered on "{texts[central]}": ' + ", ".join(parts) + "."
    others: list[str] = []
    for i, text in enumerate(texts):
        if i != central and text not in others and text != texts[central]:
            others.append(text)
    if others:
        head += " Also: " + "; ".join(f'"{t}"' for t in others[:2]) + ("; ..." if len(others) > 2 else "") + "."
    return head
