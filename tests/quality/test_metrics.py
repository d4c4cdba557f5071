"""The metric formulas on small hand-made vectors (values computed by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personaminer.quality import PersonaView, SetContext, final_score, split_claims
from personaminer.quality.metrics import Alignment, Cohesion, Coverage, Redundancy, average_precision


def _ctx(groups: list[list[int]], vectors: np.ndarray, pvec: np.ndarray | None = None) -> SetContext:
    ids = [f"m{i}" for i in range(len(vectors))]
    personas = [PersonaView(f"p{k}", f"L{k}", "D.", [ids[i] for i in g]) for k, g in enumerate(groups)]
    pvec = pvec if pvec is not None else np.eye(len(groups), vectors.shape[1])
    return SetContext("s", "u", personas, ids, vectors, pvec, np.zeros((0, vectors.shape[1])))


def test_average_precision() -> None:
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert average_precision(np.array([0.1, 0.8, 0.9]), np.array([True, False, False])) == pytest.approx(1 / 3)
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True])) == pytest.approx(5 / 6)


def test_cohesion_by_hand() -> None:
    x = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    values, per = Cohesion().score(_ctx([[0, 1], [2, 3]], x))
    # a(m) = 1; u(m) = mean(1, 0, 0) = 1/3 -> gain 2/3; plain a - b = 1 - 0 = 1
    assert values["cohesion_raw"] == pytest.approx(2 / 3) and values["cohesion"] == pytest.approx(5 / 6)
    assert values["cohesion_ab"] == pytest.approx(1.0)
    values, _ = Cohesion().score(_ctx([[0, 2], [1, 3]], x))  # each persona mixes both directions
    # a(m) = 0, u(m) = 1/3 -> -1/3; plain: b(m) = mean(1, 0) = 0.5 -> -0.5
    assert values["cohesion_raw"] == pytest.approx(-1 / 3) and values["cohesion_ab"] == pytest.approx(-0.5)
    values, _ = Cohesion().score(_ctx([[0, 1, 2, 3]], x))  # everything merged into one persona
    assert values["cohesion_raw"] == pytest.approx(0.0) and values["cohesion"] == pytest.approx(0.5)
    values, per = Cohesion().score(_ctx([[0], [1, 2, 3]], x))  # a singleton adds 0
    assert per["p0"]["cohesion"] == 0.0 and values["singleton_personas"] == 1.0


def test_alignment_coverage_redundancy() -> None:
    x = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=float)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    good = _ctx([[0, 1], [2]], x, pvec=np.array([[1.0, 0.0], [0.0, 1.0]]))
    bad = _ctx([[0, 1], [2]], x, pvec=np.array([[0.0, 1.0], [1.0, 0.0]]))
    assert Alignment().score(good)[0]["alignment"] == 1.0
    assert Alignment().score(bad)[0]["alignment"] < 0.5
    assert Coverage().score(_ctx([[0]], x))[0]["coverage"] == pytest.approx(1 / 3)
    assert Redundancy().score(good)[0]["redundancy"] == pytest.approx(0.0)


def test_final_score_and_claims() -> None:
    w = {"cohesion": 1.0, "alignment": 1.0, "truthfulness": 2.0}
    assert final_score({"cohesion": 0.5, "alignment": 1.0, "truthfulness": 0.25}, w) == pytest.approx(0.5)
    assert final_score({"cohesion": 0.5, "alignment": 1.0, "truthfulness": math.nan}, w) == pytest.approx(0.75)
    assert split_claims("Likes golf. Plays on weekends! Is 40?  no") == ["Likes golf.", "Plays on weekends!",
                                                                         "Is 40? no"]
