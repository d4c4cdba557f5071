"""Preference losses over groups of candidates, for training the persona model.

Every loss takes, for a batch of ``B`` groups of up to ``G`` candidates:

- ``policy_logps``, ``ref_logps``: ``[B, G]`` summed log-probabilities of each candidate
  completion under the policy and under the frozen reference model;
- ``scores``: ``[B, G]`` quality scores (higher is better);
- ``mask``: ``[B, G]`` booleans, ``False`` for padding (groups may be smaller than ``G``).

The implicit reward of candidate *i* is ``r_i = beta * (log pi(y_i|x) - log pi_ref(y_i|x))``
(Rafailov et al., 2023, "Direct Preference Optimization: Your Language Model is Secretly a
Reward Model"). Each loss returns the mean over groups. Tied candidates are never ranked
against each other at the bottom of a group (e.g. the failed samples, which all get the same
score): pairwise losses skip tied pairs, and the listwise loss gives the tied tail no terms of
its own. Other ties are ordered by index (a stable sort), so no loss depends on chance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

NEG = -1e9  # stands for -inf in masked log-sum-exp (finite, so gradients stay finite)


def rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """``r = beta * (log pi - log pi_ref)``, the DPO implicit reward."""
    return beta * (policy_logps - ref_logps)


def _order(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Indices sorting each group best first; padding goes last."""
    keyed = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    return torch.sort(keyed, dim=1, descending=True, stable=True).indices


def dpo_loss(chosen_policy: torch.Tensor, rejected_policy: torch.Tensor, chosen_ref: torch.Tensor,
             rejected_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Standard (pairwise) DPO, Rafailov et al. (2023), eq. 7:

    ``L = -log sigmoid(r_w - r_l)``, with ``r = beta * (log pi - log pi_ref)``; mean over pairs.
    """
    margin = rewards(chosen_policy, chosen_ref, beta) - rewards(rejected_policy, rejected_ref, beta)
    return -F.logsigmoid(margin).mean()


def plackett_luce_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, scores: torch.Tensor,
                       mask: torch.Tensor | None = None, beta: float = 0.1) -> torch.Tensor:
    """Listwise DPO under the Plackett-Luce model (the default; "groupwise DPO").

    With the candidates sorted by quality, ``y_(1)`` best, and ``r_i`` the DPO reward::

        L = - sum_{k=1}^{K-1} log( exp(r_(k)) / sum_{j >= k} exp(r_(j)) )

    the negative log-likelihood of the observed ranking under a Plackett-Luce model whose
    utilities are the implicit rewards (Plackett 1975, Luce 1959; used for DPO as "DPO with
    Plackett-Luce" in Rafailov et al. 2023, Appendix A.3, and as LiPO-style listwise
    preference optimisation). The last term (k = K) is log 1 = 0 and is left out. With two
    candidates it equals :func:`dpo_loss`.

    **Tied tail.** A candidate whose score equals the lowest score of its group (all the
    candidates below it tie with it) has no term: the sum runs only over ``k`` with
    ``s_(k) > s_(K)``. The loss is then the Plackett-Luce likelihood of the top of the ranking
    with the unordered bottom block in the denominators only (a top-m partial ranking, as in
    Xia et al. 2009, "Statistical Consistency of Top-k Ranking"), so it does not depend on the
    order of, say, several failed samples that share the failure score. Without ties it is the
    full formula above.
    """
    mask = torch.ones_like(policy_logps, dtype=torch.bool) if mask is None else mask
    order = _order(scores, mask)
    r = rewards(policy_logps, ref_logps, beta).gather(1, order)
    m = mask.gather(1, order)
    s = scores.gather(1, order)
    lowest = torch.where(m, s, torch.full_like(s, float("inf"))).min(1, keepdim=True).values
    r = torch.where(m, r, torch.full_like(r, NEG))
    # log sum_{j >= k} exp(r_j): a reversed cumulative log-sum-exp
    tail = torch.logcumsumexp(r.flip(1), dim=1).flip(1)
    # the last valid position contributes log 1 = 0; tied-tail positions contribute nothing
    terms = (r - tail) * (m & (s > lowest))
    return -(terms.sum(1)).mean()


def softmax_dpo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, scores: torch.Tensor,
                     mask: torch.Tensor | None = None, beta: float = 0.1) -> torch.Tensor:
    """S-DPO / softmax DPO: the best candidate against all worse ones at once.

    ``L = -log sigmoid( -log sum_{j != best} exp(r_j - r_best) )``, Chen et al. (2024),
    "On Softmax Direct Preference Optimization for Recommendation" (S-DPO), eq. 10. With two
    candidates it equals :func:`dpo_loss`.
    """
    mask = torch.ones_like(policy_logps, dtype=torch.bool) if mask is None else mask
    order = _order(scores, mask)
    r = rewards(policy_logps, ref_logps, beta).gather(1, order)
    m = mask.gather(1, order)
    diffs = torch.where(m[:, 1:], r[:, 1:] - r[:, :1], torch.full_like(r[:, 1:], NEG))
    return -F.logsigmoid(-torch.logsumexp(diffs, dim=1)).mean()


def pairwise_dpo_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, scores: torch.Tensor,
                      mask: torch.Tensor | None = None, beta: float = 0.1, margin_weighted: bool = False,
                      ) -> torch.Tensor:
    """DPO over all ordered pairs of a group (the pairwise baseline).

    ``L = sum_{s_i > s_j} w_ij * -log sigmoid(r_i - r_j) / sum w_ij`` per group, with
    ``w_ij = 1`` or, when ``margin_weighted``, ``w_ij = s_i - s_j`` (the score margin). Tied
    pairs are left out. Mean over groups that have at least one untied pair.
    """
    mask = torch.ones_like(policy_logps, dtype=torch.bool) if mask is None else mask
    r = rewards(policy_logps, ref_logps, beta)
    better = (scores[:, :, None] > scores[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    w = (scores[:, :, None] - scores[:, None, :]).clamp(min=0) if margin_weighted else torch.ones_like(
        r[:, :, None] - r[:, None, :])
    w = w * better
    pair_loss = -F.logsigmoid(r[:, :, None] - r[:, None, :])
    per_group = (pair_loss * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1e-12)
    has = better.any(2).any(1)
    return per_group[has].mean() if has.any() else per_group.sum() * 0


LossFn = Callable[..., torch.Tensor]

LOSSES: dict[str, LossFn] = {
    "listwise": plackett_luce_loss,
    "softmax": softmax_dpo_loss,
    "pairwise": pairwise_dpo_loss,
    "pairwise_margin": lambda *a, **k: pairwise_dpo_loss(*a, **k, margin_weighted=True),
}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}") from None


def best_nll(policy_logps: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor, n_tokens: torch.Tensor
             ) -> torch.Tensor:
    """Negative log-likelihood per token of each group's best-scored candidate, averaged over groups.

    Added to a preference loss with weight ``sft_weight`` it anchors the policy to text it
    should write: preference losses only move *relative* log-probabilities, and a small model
    can raise the margin by lowering every candidate's likelihood (the drift we measured
    collapsing SmolLM2 into repetition). This is the NLL term of RPO (Pang et al., 2024,
    "Iterative Reasoning Preference Optimization", eq. 1), applied to the top of the ranking.
    """
    best = _order(scores, mask)[:, 0]
    lp = policy_logps.gather(1, best[:, None])[:, 0]
    nt = n_tokens.float().gather(1, best[:, None])[:, 0].clamp(min=1)
    return (-lp / nt).mean()


@torch.no_grad()
def group_stats(policy_logps: torch.Tensor, ref_logps: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
                beta: float, n_tokens: torch.Tensor | None = None) -> dict[str, float]:
    """What the trainer logs per step.

    - ``reward_margin``: reward of the best candidate minus the mean reward of the others;
    - ``top1_acc``: share of groups whose best candidate has a strictly higher policy reward
      than every other candidate (ties count as misses, so it is 0 before training);
    - ``drift``: mean of ``log pi - log pi_ref`` per completion token (a KL-like drift; 0 at
      the start, grows as the policy leaves the reference).
    """
    r = rewards(policy_logps, ref_logps, beta)
    order = _order(scores, mask)
    best = order[:, 0]
    rm = torch.where(mask, r, torch.full_like(r, NEG))
    r_best = r.gather(1, best[:, None])[:, 0]
    others_mask = mask & (torch.arange(r.shape[1], device=r.device)[None, :] != best[:, None])
    n_other = (mask.sum(1) - 1).clamp(min=1)
    others = ((r * mask).sum(1) - r_best) / n_other
    delta = (policy_logps - ref_logps) * mask
    tokens = n_tokens.float().clamp(min=1) if n_tokens is not None else torch.ones_like(delta)
    return {
        "reward_margin": float((r_best - others).mean()),
        "top1_acc": float((torch.where(others_mask, rm, torch.full_like(rm, NEG)).max(1).values < r_best).float().mean()),
        "drift": float((delta / tokens).sum() / mask.sum()),
    }
