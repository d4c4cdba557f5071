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
    # by hand: persona 0 (evidence 0, 1) ranks 2, 1, 0 -> AP (1/2 + 2/3) / 2 = 7/12 below its chance
    # level 2/3, persona 1 (evidence 2) ranks 0, 1, 2 -> AP 1/3 = chance: both 0 after the correction
    values, per = Alignment().score(bad)
    assert values["alignment"] == 0.0 and values["alignment_raw"] == pytest.approx((7 / 12 + 1 / 3) / 2)
    # a persona holding every memory: AP 1 by construction, no alignment above chance
    everything = _ctx([[0, 1, 2]], x, pvec=np.array([[1.0, 0.0]]))
    assert Alignment().score(everything)[0] == {"alignment": 0.0, "alignment_raw": 1.0}
    # half right: evidence {0, 2} of 3, ranked 0, 1, 2 -> AP (1 + 2/3) / 2 = 5/6, r = 2/3 -> 1/2
    half = _ctx([[0, 2]], x, pvec=np.array([[1.0, 0.0]]))
    assert Alignment().score(half)[0]["alignment"] == pytest.approx((5 / 6 - 2 / 3) / (1 / 3))
    assert Coverage().score(_ctx([[0]], x))[0]["coverage"] == pytest.approx(1 / 3)
    assert Redundancy().score(good)[0]["redundancy"] == pytest.approx(0.0)


def test_final_score_and_claims() -> None:
    w = {"cohesion": 1.0, "alignment": 1.0, "truthfulness": 2.0}
    assert final_score({"cohesion": 0.5, "alignment": 1.0, "truthfulness": 0.25}, w) == pytest.approx(0.5)
    assert final_score({"cohesion": 0.5, "alignment": 1.0, "truthfulness": math.nan}, w) == pytest.approx(0.75)
    assert split_claims("Likes golf. Plays on weekends! Is 40?  no") == ["Likes golf.", "Plays on weekends!",
                                                                         "Is 40? no"]
    # an abbreviation or an initial does not end a claim; a real sentence end after it still does
    assert split_claims("Rated 'Mr. Holland's Opus' and St. Elmo's Fire. Likes J. R. R. Tolkien. Done.") == [
        "Rated 'Mr. Holland's Opus' and St. Elmo's Fire.", "Likes J. R. R. Tolkien.", "Done."]


def test_specificity_by_hand() -> None:
    from personaminer.quality.metrics import Specificity

    own = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    background = np.array([[0, 0, 1], [0, 0, 1]], dtype=float)
    ctx = _ctx([[0, 1], [2]], own)
    ctx.background_vectors = background
    ctx.label_vectors = np.array([[1, 0, 0], [0, 1, 0]], dtype=float)  # each label points at its evidence
    ctx.description_vectors = ctx.label_vectors.copy()
    values, per = Specificity().score(ctx)
    assert values["specificity"] == pytest.approx(1.0)
    # a label that fits everyone: equally close to every memory, own or not -> ties keep the pool order
    ctx.label_vectors = np.array([[1, 1, 1], [0, 1, 0]], dtype=float) / np.sqrt([[3], [1]])
    values, per = Specificity().score(ctx)
    assert per["p0"]["specificity_label"] == pytest.approx(1.0)  # ties keep order: own memories come first
    assert per["p0"]["specificity_description"] == pytest.approx(1.0)  # the description still points at it
    ctx.background_vectors = np.array([[1, 1, 0.9]] * 3) / np.linalg.norm([1, 1, 0.9])
    values, per = Specificity().score(ctx)  # other users' memories now rank above the evidence for the label
    assert per["p0"]["specificity_label"] < 0.5 and per["p0"]["specificity_description"] == pytest.approx(1.0)
    assert values["specificity"] < 1.0
    ctx.label_vectors = None
    assert math.isnan(Specificity().score(ctx)[0]["specificity"])


def test_distinctness_by_hand() -> None:
    from personaminer.quality.metrics import Distinctness, label_confusion

    x = np.eye(4)
    ctx = _ctx([[0, 1], [2, 3]], x)
    ctx.label_vectors = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=float) / np.sqrt(2)  # each points at its own
    ctx.description_vectors = np.array([[1, 0, 0, 0], [0.6, 0.8, 0, 0]], dtype=float)  # cos 0.6: a little alike
    assert label_confusion(ctx, 0, 1) == pytest.approx(0.0)
    values, per = Distinctness().score(ctx)
    assert values["max_likeness"] == pytest.approx(0.6) and values["distinctness"] == pytest.approx(0.8)
    assert per["p0"]["distinctness"] == per["p1"]["distinctness"] == pytest.approx(0.8)
    ctx.description_vectors = np.eye(2, 4)
    assert Distinctness().score(ctx)[0]["distinctness"] == pytest.approx(1.0)
    # two different words (cos 0) that fit the user's memories alike: neither tells the evidence apart
    ctx.label_vectors = np.array([[1, 1, 1, 1], [1, -1, 1, -1]], dtype=float) / 2
    assert label_confusion(ctx, 0, 1) == pytest.approx(1.0)
    assert Distinctness().score(ctx)[0]["distinctness"] == pytest.approx(0.0)
    # labels that point at each other's evidence are worse than chance: still capped at 1
    ctx.label_vectors = np.array([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=float)
    assert label_confusion(ctx, 0, 1) == pytest.approx(1.0)
    ctx.label_vectors = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=float) / np.sqrt(2)
    ctx.personas[1].evidence = ["m0", "m1"]  # the same evidence: a copy
    assert math.isnan(label_confusion(ctx, 0, 1))  # no evidence of its own to tell apart
    assert Distinctness().score(ctx)[0]["distinctness"] == pytest.approx(0.0)
    # the mean over personas: one copied pair in a set of three costs two thirds, not everything
    three = _ctx([[0], [1, 2], [1, 2]], x)
    three.label_vectors = three.description_vectors = np.eye(3, 4)
    values, per = Distinctness().score(three)
    assert values["distinctness"] == pytest.approx(1 / 3) and values["max_likeness"] == pytest.approx(1.0)
    assert per["p0"]["distinctness"] == pytest.approx(1.0) and per["p2"]["distinctness"] == pytest.approx(0.0)
    one = _ctx([[0, 1, 2, 3]], x)
    one.label_vectors = one.description_vectors = np.array([[1.0, 0.0, 0.0, 0.0]])
    assert all(math.isnan(v) for v in Distinctness().score(one)[0].values())  # no pair: not measured


def test_abstraction_flags_copied_descriptions() -> None:
    from personaminer.quality.metrics import Abstraction, copied_from

    summary = 'Centered on "golf clubs": searched 4 times, clicked 2 results.'
    assert copied_from("Centered on", [summary]) == 1.0
    assert copied_from(summary, ["something else", summary]) == 1.0
    # 4 of 5 words in order -> exactly at the threshold; a paraphrase is far below it
    assert copied_from("centered on golf clubs today", [summary]) == pytest.approx(0.8)
    assert copied_from("The user shops for golf equipment and plays often.", [summary]) < 0.3
    assert copied_from("", [summary]) == 1.0  # an empty description says nothing of its own
    text = {"m1": f"[2006-03-01] {summary}", "m2": "[2006-03-02] search: cheap flights vegas"}
    ctx = SetContext("s", "u", [PersonaView("a", "golf", "Centered on \"golf clubs\": searched 4 times.", ["m1"]),
                                PersonaView("b", "travel", "The user plans trips to Las Vegas on a budget.", ["m2"])],
                     ["m1", "m2"], np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32),
                     np.zeros((0, 2), np.float32), memory_text=text)
    values, per = Abstraction().score(ctx)
    assert values == {"abstraction": 0.5, "copied_personas": 1.0}
    assert per["a"]["copied"] == 1.0 and per["b"]["copied"] == 0.0
    # the day prefix is not part of the summary: a description made of the date is not a copy of it
    assert copied_from("2006-03-01", [summary]) == 0.0
