"""Each loss against values computed by hand, its gradient sign, and its two-candidate case."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")

from personaminer.train.losses import (  # noqa: E402
    best_nll,
    dpo_loss,
    get_loss,
    group_stats,
    pairwise_dpo_loss,
    plackett_luce_loss,
    softmax_dpo_loss,
)

BETA = 0.5
POLICY = [[-10.0, -12.0, -11.0]]
REF = [[-10.5, -11.0, -11.0]]
SCORES = [[0.2, 0.9, 0.5]]  # best: candidate 1, then 2, then 0


def t(x: list[list[float]], grad: bool = False) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def hand_rewards() -> list[float]:
    return [BETA * (p - r) for p, r in zip(POLICY[0], REF[0], strict=True)]  # [0.25, -0.5, 0.0]


def test_listwise_matches_hand_computation() -> None:
    r = hand_rewards()
    ranked = [r[1], r[2], r[0]]
    expected = -sum(ranked[k] - math.log(sum(math.exp(x) for x in ranked[k:])) for k in range(3))
    got = plackett_luce_loss(t(POLICY), t(REF), t(SCORES), beta=BETA).item()
    assert got == pytest.approx(expected, abs=1e-10)


def test_softmax_dpo_matches_hand_computation() -> None:
    r = hand_rewards()
    best = r[1]
    expected = -log_sigmoid(-math.log(math.exp(r[0] - best) + math.exp(r[2] - best)))
    got = softmax_dpo_loss(t(POLICY), t(REF), t(SCORES), beta=BETA).item()
    assert got == pytest.approx(expected, abs=1e-10)


def test_pairwise_matches_hand_computation() -> None:
    r = hand_rewards()
    s = SCORES[0]
    pairs = [(i, j) for i in range(3) for j in range(3) if s[i] > s[j]]
    plain = sum(-log_sigmoid(r[i] - r[j]) for i, j in pairs) / len(pairs)
    weighted = sum((s[i] - s[j]) * -log_sigmoid(r[i] - r[j]) for i, j in pairs) / sum(s[i] - s[j] for i, j in pairs)
    assert pairwise_dpo_loss(t(POLICY), t(REF), t(SCORES), beta=BETA).item() == pytest.approx(plain, abs=1e-10)
    assert pairwise_dpo_loss(t(POLICY), t(REF), t(SCORES), beta=BETA, margin_weighted=True).item() == pytest.approx(
        weighted, abs=1e-10)


@pytest.mark.parametrize("name", ["listwise", "softmax", "pairwise", "pairwise_margin"])
def test_two_candidates_equal_standard_dpo(name: str) -> None:
    policy, ref, scores = [[-3.0, -2.0], [-5.0, -7.5]], [[-2.5, -2.5], [-6.0, -6.0]], [[0.8, 0.1], [0.3, 0.6]]
    chosen = torch.tensor([-3.0, -7.5], dtype=torch.float64)
    rejected = torch.tensor([-2.0, -5.0], dtype=torch.float64)
    chosen_ref = torch.tensor([-2.5, -6.0], dtype=torch.float64)
    rejected_ref = torch.tensor([-2.5, -6.0], dtype=torch.float64)
    expected = dpo_loss(chosen, rejected, chosen_ref, rejected_ref, BETA).item()
    got = get_loss(name)(t(policy), t(ref), t(scores), beta=BETA).item()
    assert got == pytest.approx(expected, abs=1e-10)  # pairwise_margin: one pair per group, its weight cancels


@pytest.mark.parametrize("name", ["listwise", "softmax", "pairwise", "pairwise_margin"])
def test_gradient_raises_the_best_and_lowers_the_worst(name: str) -> None:
    policy = t(POLICY, grad=True)
    get_loss(name)(policy, t(REF), t(SCORES), beta=BETA).backward()
    g = policy.grad[0]
    assert g[1] < 0  # best candidate: descending the loss raises its log-probability
    assert g[0] > 0  # worst candidate: its log-probability goes down


def test_padding_is_ignored() -> None:
    base = plackett_luce_loss(t(POLICY), t(REF), t(SCORES), beta=BETA)
    padded = plackett_luce_loss(t([POLICY[0] + [-1.0]]), t([REF[0] + [-9.0]]), t([SCORES[0] + [5.0]]),
                                mask=torch.tensor([[True, True, True, False]]), beta=BETA)
    assert padded.item() == pytest.approx(base.item(), abs=1e-9)
    for fn in (softmax_dpo_loss, pairwise_dpo_loss):
        a = fn(t(POLICY), t(REF), t(SCORES), beta=BETA)
        b = fn(t([POLICY[0] + [-1.0]]), t([REF[0] + [-9.0]]), t([SCORES[0] + [5.0]]),
               mask=torch.tensor([[True, True, True, False]]), beta=BETA)
        assert b.item() == pytest.approx(a.item(), abs=1e-9)


def test_listwise_tied_tail_has_no_terms_and_no_order() -> None:
    # two valid candidates (0.9, 0.6) above two failed samples sharing the failure score 0.0
    policy, ref = [[-4.0, -6.0, -5.0, -7.0]], [[-5.0, -5.0, -5.0, -5.0]]
    r = [BETA * (p - q) for p, q in zip(policy[0], ref[0], strict=True)]
    scores = [[0.0, 0.9, 0.0, 0.6]]
    ranked = [r[1], r[3], r[0], r[2]]  # the failed pair only enters the denominators
    expected = -sum(ranked[k] - math.log(sum(math.exp(x) for x in ranked[k:])) for k in range(2))
    got = plackett_luce_loss(t(policy), t(ref), t(scores), beta=BETA).item()
    assert got == pytest.approx(expected, abs=1e-10)
    # swapping the two failed samples changes nothing; a strict order between them would
    swapped = plackett_luce_loss(t([[-5.0, -6.0, -4.0, -7.0]]), t(ref), t(scores), beta=BETA).item()
    assert swapped == pytest.approx(got, abs=1e-10)
    strict = plackett_luce_loss(t(policy), t(ref), t([[0.01, 0.9, 0.0, 0.6]]), beta=BETA).item()
    assert strict != pytest.approx(got, abs=1e-6)
    # both failed samples are pushed down, the best valid one up
    p = t(policy, grad=True)
    plackett_luce_loss(p, t(ref), t(scores), beta=BETA).backward()
    assert p.grad[0][1] < 0 and p.grad[0][0] > 0 and p.grad[0][2] > 0
    # a fully tied group carries no preference: zero loss
    assert plackett_luce_loss(t(policy), t(ref), t([[0.5] * 4]), beta=BETA).item() == 0.0


def test_listwise_loss_is_lower_when_rewards_follow_the_ranking() -> None:
    scores = t([[3.0, 2.0, 1.0, 0.0]])
    ref = t([[0.0, 0.0, 0.0, 0.0]])
    agree = plackett_luce_loss(t([[3.0, 2.0, 1.0, 0.0]]), ref, scores, beta=1.0)
    disagree = plackett_luce_loss(t([[0.0, 1.0, 2.0, 3.0]]), ref, scores, beta=1.0)
    assert agree < disagree


def test_group_stats() -> None:
    stats = group_stats(t(POLICY), t(POLICY), t(SCORES), torch.ones(1, 3, dtype=torch.bool), BETA)
    assert stats["reward_margin"] == 0.0 and stats["drift"] == 0.0
    assert stats["top1_acc"] == 0.0  # all rewards tie: the best candidate is not ranked first
    stats = group_stats(t([[-10.0, -9.0, -11.0]]), t(REF), t(SCORES), torch.ones(1, 3, dtype=torch.bool), BETA)
    # rewards [0.25, 1.0, 0.0]: the best-scored candidate 1 has the top reward
    assert stats["top1_acc"] == 1.0
    assert stats["reward_margin"] == pytest.approx(1.0 - 0.125)


def test_best_nll_is_the_best_candidates_per_token_nll() -> None:
    ntok = torch.tensor([[5, 4, 8], [2, 2, 1]])
    policy = t([[-10.0, -12.0, -11.0], [-3.0, -1.0, 0.0]])
    scores = t([[0.2, 0.9, 0.5], [0.7, 0.1, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])  # group 2 has two candidates
    # group 1: best is candidate 1 (12 nats over 4 tokens); group 2: best is candidate 0 (3 over 2)
    assert float(best_nll(policy, scores, mask, ntok)) == pytest.approx((12 / 4 + 3 / 2) / 2)
    p = t([[-10.0, -12.0, -11.0]], grad=True)
    best_nll(p, t(SCORES), torch.ones(1, 3, dtype=torch.bool), torch.tensor([[5, 4, 8]])).backward()
    assert p.grad is not None and p.grad[0].tolist() == [0.0, pytest.approx(-0.25), 0.0]  # only the best moves


def test_unknown_loss() -> None:
    with pytest.raises(ValueError, match="listwise"):
        get_loss("nope")
