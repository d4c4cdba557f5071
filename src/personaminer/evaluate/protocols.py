"""Candidate lists: for each target, which pool texts it is ranked against.

Every protocol draws negatives from the *future pool* (every distinct future text of every
split user) minus the *exclusion set* of the user: their history texts and their future texts
(a negative is never something the user did). The target itself is always a candidate.

* ``sampled``: ``n_negatives`` (99) drawn uniformly without replacement, seeded per
  (seed, user, target);
* ``hard``: the ``n_negatives`` allowed texts with the highest embedding cosine similarity to
  the target, after dropping near-duplicates (cosine >= ``near_duplicate``, 0.9 by default,
  and texts equal to the target once non-alphanumerics are removed);
* ``full``: every allowed text.

Negatives are chosen once per target and shared by every system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from personaminer.evaluate.data import stable_seed

PROTOCOLS = ("sampled", "hard", "full")

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def squash(text: str) -> str:
    return _NON_ALNUM.sub("", text.lower())


@dataclass
class TargetCandidates:
    """One target's candidates: ``target`` and ``negatives`` are positions in the pool."""

    target: int
    negatives: np.ndarray  # int64 pool positions; for ``full`` a boolean mask over the pool instead
    is_mask: bool = False

    @property
    def n_candidates(self) -> int:
        return int(self.negatives.sum() if self.is_mask else len(self.negatives)) + 1


def allowed_mask(pool_size: int, excluded_positions: list[int]) -> np.ndarray:
    mask = np.ones(pool_size, dtype=bool)
    if excluded_positions:
        mask[np.asarray(excluded_positions, dtype=np.int64)] = False
    return mask


def sampled_negatives(allowed: np.ndarray, n: int, seed: int, user_id: str, target_text: int) -> np.ndarray:
    positions = np.flatnonzero(allowed)
    rng = np.random.default_rng(stable_seed("sampled", seed, user_id, target_text))
    if len(positions) <= n:
        return positions
    return np.sort(rng.choice(positions, size=n, replace=False))


def hard_negatives(allowed: np.ndarray, sims: np.ndarray, n: int, near_duplicate: float,
                   squashed: list[str], target_squashed: str) -> tuple[np.ndarray, int]:
    """The ``n`` most similar allowed positions, near-duplicates dropped; also how many were dropped."""
    ok = allowed & (sims < near_duplicate)
    dropped = int((allowed & ~ok).sum())
    positions = np.flatnonzero(ok)
    head = 4 * n + 16
    if len(positions) > head:  # only the top of the ranking is needed; fall back to a full sort if exhausted
        top = positions[np.argpartition(-sims[positions], head)[:head]]
        chosen, d = _take(top, sims, n, squashed, target_squashed)
        if len(chosen) == n:
            return chosen, dropped + d
    chosen, d = _take(positions, sims, n, squashed, target_squashed)
    return chosen, dropped + d


def _take(positions: np.ndarray, sims: np.ndarray, n: int, squashed: list[str],
          target_squashed: str) -> tuple[np.ndarray, int]:
    order = positions[np.lexsort((positions, -sims[positions]))]  # by similarity, ties by position
    out: list[int] = []
    dropped = 0
    for p in order:
        if squashed[p] == target_squashed:
            dropped += 1
            continue
        out.append(int(p))
        if len(out) == n:
            break
    return np.array(sorted(out), dtype=np.int64), dropped
