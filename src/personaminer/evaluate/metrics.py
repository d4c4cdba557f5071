"""Ranking metrics with ties in expectation, bootstrap confidence intervals, paired tests.

Each target has exactly one relevant candidate (itself). With ``g`` candidates scored strictly
higher and ``e`` tied with it (within 1e-6), its rank is taken as uniform over ``g+1 ..
g+e+1`` (ties broken at random) and every metric is its expectation over that range, so a
system that scores everything equal (``random``) gets exactly the chance level.

* ``hit@k``: P(rank <= k); ``ndcg@10``: E[1 / log2(rank + 1)] if rank <= 10 else 0 (one
  relevant item, so the ideal DCG is 1); ``mrr``: E[1 / rank].

Per-target values are averaged per user, then over users (each user weighs the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

METRICS = ("hit@1", "hit@5", "hit@10", "ndcg@10", "mrr")
TIE_TOL = 1e-6

_DCG = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, 12)))])  # _DCG[r] = sum_{i<=r} 1/log2(i+1)


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H(n) = sum_{i=1}^n 1/i for integer arrays n >= 0 (exact below 64, asymptotic above)."""
    n = np.asarray(n, dtype=np.float64)
    small = np.cumsum(np.concatenate([[0.0], 1.0 / np.arange(1, 65)]))
    big = np.log(np.maximum(n, 1)) + 0.5772156649015329 + 1 / (2 * np.maximum(n, 1)) - 1 / (12 * np.maximum(n, 1) ** 2)
    return np.where(n <= 64, small[np.minimum(n, 64).astype(np.int64)], big)


def rank_counts(target_score: float, negative_scores: np.ndarray) -> tuple[int, int]:
    """(candidates scored higher than the target, candidates tied with it)."""
    higher = int((negative_scores > target_score + TIE_TOL).sum())
    tied = int((np.abs(negative_scores - target_score) <= TIE_TOL).sum())
    return higher, tied


def metrics_from_counts(higher: np.ndarray, tied: np.ndarray) -> dict[str, np.ndarray]:
    """Expected metrics per target for rank ~ Uniform{higher+1, ..., higher+tied+1}."""
    g = np.asarray(higher, dtype=np.int64)
    e = np.asarray(tied, dtype=np.int64)
    width = (e + 1).astype(np.float64)
    last = g + e + 1
    out: dict[str, np.ndarray] = {}
    for k in (1, 5, 10):
        out[f"hit@{k}"] = np.clip(np.minimum(k, last) - g, 0, None) / width
    out["ndcg@10"] = (_DCG[np.minimum(10, last)] - _DCG[np.minimum(10, g)]) / width
    out["mrr"] = (_harmonic(last) - _harmonic(g)) / width
    return out


def bootstrap_ci(values: np.ndarray, *, resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> list[float]:
    """Percentile bootstrap CI of the mean over users (NaNs, users without a value, dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return [math.nan, math.nan]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    return [float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))]


def paired_test(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> dict[str, float | int]:
    """System ``a`` against baseline ``b`` on the same users (pairs with a NaN dropped).

    Returns the mean difference, its paired-bootstrap 95% CI, and the two-sided Wilcoxon
    signed-rank p-value (scipy; zero differences dropped, ``p = 1`` when all are zero).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    if len(d) == 0:
        return {"n": 0, "diff": math.nan, "ci": [math.nan, math.nan], "p_wilcoxon": math.nan}  # type: ignore[dict-item]
    p = 1.0
    if np.any(np.abs(d) > 1e-12):
        from scipy.stats import wilcoxon

        p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return {"n": int(len(d)), "diff": float(d.mean()), "ci": bootstrap_ci(d, resamples=resamples, seed=seed),  # type: ignore[dict-item]
            "p_wilcoxon": p}


def per_user_means(values: Sequence[float], groups: Sequence[bool]) -> tuple[float, float]:
    """(mean over the targets where ``groups`` is true, mean over the others); NaN if none."""
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray(groups, dtype=bool)
    return (float(v[g].mean()) if g.any() else math.nan, float(v[~g].mean()) if (~g).any() else math.nan)
