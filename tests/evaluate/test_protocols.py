"""Candidate drawing: exclusions, determinism, hard negatives without near-duplicates."""

from __future__ import annotations

import numpy as np

from personaminer.evaluate.protocols import allowed_mask, hard_negatives, sampled_negatives, squash


def test_sampled_negatives_respect_exclusions_and_seed() -> None:
    allowed = allowed_mask(1000, list(range(0, 1000, 3)))
    a = sampled_negatives(allowed, 99, 0, "u1", 7)
    assert len(a) == 99 and len(set(a.tolist())) == 99 and all(p % 3 for p in a)
    assert np.array_equal(a, sampled_negatives(allowed, 99, 0, "u1", 7))
    assert not np.array_equal(a, sampled_negatives(allowed, 99, 1, "u1", 7))
    assert not np.array_equal(a, sampled_negatives(allowed, 99, 0, "u1", 8))
    small = allowed_mask(10, [0, 1])
    assert sampled_negatives(small, 99, 0, "u", 1).tolist() == list(range(2, 10))


def test_hard_negatives_are_nearest_without_near_duplicates() -> None:
    n = 500
    sims = np.linspace(1.0, 0.0, n)  # position i has similarity 1 - i/(n-1)
    texts = [f"text {i}" for i in range(n)]
    texts[55] = "Target!"  # the same text as the target once punctuation and case are dropped
    allowed = allowed_mask(n, [5, 6])
    neg, dropped = hard_negatives(allowed, sims, 10, 0.9, [squash(t) for t in texts], squash("target"))
    first_ok = int(np.argmax(sims < 0.9))
    expected = [p for p in range(first_ok, n) if p not in (5, 6, 55)][:10]
    assert neg.tolist() == expected
    assert dropped == (first_ok - 2) + 1  # the near-duplicates above the threshold, plus the squashed copy
    assert all(sims[p] < 0.9 for p in neg)
