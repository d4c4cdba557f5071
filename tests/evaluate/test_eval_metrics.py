"""Ranking metrics with ties, bootstrap intervals, paired tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personaminer.evaluate.metrics import _harmonic, bootstrap_ci, metrics_from_counts, paired_test, rank_counts


def test_metrics_without_ties() -> None:
    m = metrics_from_counts(np.array([0, 4, 9, 10]), np.array([0, 0, 0, 0]))
    assert m["hit@1"].tolist() == [1, 0, 0, 0]
    assert m["hit@5"].tolist() == [1, 1, 0, 0]
    assert m["hit@10"].tolist() == [1, 1, 1, 0]
    assert m["ndcg@10"] == pytest.approx([1, 1 / math.log2(6), 1 / math.log2(11), 0])
    assert m["mrr"] == pytest.approx([1, 1 / 5, 1 / 10, 1 / 11])


def test_all_tied_gives_exactly_the_chance_level() -> None:
    m = metrics_from_counts(np.array([0]), np.array([99]))  # 100 candidates, all equal
    assert m["hit@1"][0] == pytest.approx(0.01) and m["hit@10"][0] == pytest.approx(0.10)
    assert m["mrr"][0] == pytest.approx(sum(1 / r for r in range(1, 101)) / 100)
    assert m["ndcg@10"][0] == pytest.approx(sum(1 / math.log2(r + 1) for r in range(1, 11)) / 100)
    # partial tie: 3 above, the target tied with 4 others -> rank uniform on 4..8
    m = metrics_from_counts(np.array([3]), np.array([4]))
    assert m["hit@5"][0] == pytest.approx(2 / 5) and m["hit@1"][0] == 0


def test_harmonic_numbers_large_and_small() -> None:
    for n in (0, 1, 10, 64, 65, 1000, 54321):
        assert _harmonic(np.array([n]))[0] == pytest.approx(sum(1 / i for i in range(1, n + 1)), rel=1e-9, abs=1e-12)


def test_rank_counts_tolerance() -> None:
    assert rank_counts(0.5, np.array([0.6, 0.5 + 1e-9, 0.4, 0.5])) == (1, 2)


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    rng = np.random.default_rng(1)
    v = rng.random(200)
    a, b = bootstrap_ci(v, seed=3), bootstrap_ci(v, seed=3)
    assert a == b and a[0] < v.mean() < a[1] and a[1] - a[0] < 0.2
    assert bootstrap_ci(np.array([np.nan, 1.0, 1.0]))[0] == 1.0  # NaN users dropped


def test_paired_test_detects_a_consistent_gain_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(60)
    better = paired_test(base + 0.05 + rng.normal(0, 0.01, 60), base)
    assert better["p_wilcoxon"] < 1e-6 and better["ci"][0] > 0 and better["diff"] == pytest.approx(0.05, abs=0.01)
    same = paired_test(base, base)
    assert same["p_wilcoxon"] == 1.0 and same["diff"] == 0.0
    noise = paired_test(base + rng.normal(0, 0.05, 60), base)
    assert noise["p_wilcoxon"] > 0.01 and noise["ci"][0] < 0 < noise["ci"][1]
