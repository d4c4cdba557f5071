"""The optional ``llm`` reranker: an LLM re-orders the top candidates of an embedding system.

For each target, the candidates (the target and its negatives; the allowed pool for ``full``)
are ranked by the base system's score. The first ``top_k`` of that order are scored by a
yes/no question to the LLM, "is this user likely to do this next?", given the user's profile:
the base system's own representation (its personas, memories or history texts, at most
``max_profile_texts``). Their new order is by P(yes) (``LLM.p_yes``: first-token log-probabilities),
and they stay above every other candidate, whose order is unchanged. So the reranker only
moves a target that the base system already put in its top ``top_k``, and a reranked row
differs from its base row only in hit@k for k < ``top_k`` and in NDCG/MRR. The base order is
pessimistic on ties: a negative whose base score ties the target's comes first, so a system
that gives every candidate the same score cannot reach the top ``top_k`` by luck.

Over a persona-routed base (``routed`` systems), each candidate's profile is the persona that
routed it: its ``label: description`` and its evidence's interaction texts (``profile_of``), so
the question reads "this user, with this interest, likely to do this next?".

A reranked row is named ``<base>+llm``. Every LLM answer is cached like any other (backend,
model, prompt version, request), so re-running an evaluation costs no new calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personaminer.evaluate.metrics import TIE_TOL
from personaminer.llm.base import LLM, ChatRequest
from personaminer.prompts import load_prompt

PROMPT = "rerank"


@dataclass
class RerankStats:
    """What the reranker cost: yes/no requests asked (cache hits included), seconds, failures."""

    requests: int = 0
    nan: int = 0
    seconds: float = 0.0
    targets: int = 0
    moved: int = 0  #: targets whose rank changed

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "failed_answers": self.nan, "seconds": round(self.seconds, 2),
                "targets_reranked": self.targets, "targets_moved": self.moved}


@dataclass
class LLMReranker:
    """Re-score the top ``top_k`` candidates of a base ranking with an LLM yes/no question."""

    llm: LLM
    top_k: int = 10
    max_profile_texts: int = 20
    max_chars: int = 300
    stats: dict[str, RerankStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.top_k < 2:
            raise ValueError("rerank top_k must be at least 2 (one candidate has nothing to re-order)")
        self.prompt = load_prompt(PROMPT)

    def profile(self, texts: list[str]) -> str:
        """The profile shown to the LLM: the representation's texts as bullets (the last ones if
        there are more than ``max_profile_texts``; history texts are in time order)."""
        shown = texts[-self.max_profile_texts:] if texts else []
        return "\n".join(f"- {' '.join(t.split())[: self.max_chars]}" for t in shown) or "- (nothing)"

    def _ask(self, system: str, profiles: list[str], candidates: list[str]) -> np.ndarray:
        reqs = [ChatRequest(messages=self.prompt.messages(profile=pr, candidate=" ".join(c.split())[: self.max_chars]),
                            max_tokens=1, top_logprobs=20, prompt_name=self.prompt.name,
                            prompt_version=self.prompt.version) for pr, c in zip(profiles, candidates, strict=True)]
        st = self.stats.setdefault(system, RerankStats())
        t0 = time.perf_counter()
        p = np.array(self.llm.p_yes(reqs), dtype=np.float64)
        st.seconds += time.perf_counter() - t0
        st.requests += len(reqs)
        st.nan += int(np.isnan(p).sum())
        return np.where(np.isnan(p), -1.0, p)  # a failed answer ranks last among the top k

    def counts(self, system: str, scores: np.ndarray, targets: np.ndarray, candidates: list[np.ndarray],
               texts: list[str], profile_texts: list[str], base: tuple[np.ndarray, np.ndarray],
               profile_of: Callable[[int], list[str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(higher, tied) per target after reranking, in the form of ``run._counts``.

        ``candidates[i]``: the pool positions the target ``targets[i]`` competes with (without
        it); ``texts``: the pool's texts; ``base``: the base system's (higher, tied);
        ``profile_of``: a candidate's own profile texts by pool position (routed systems), instead
        of ``profile_texts`` for all.
        """
        higher, tied = base[0].copy(), base[1].copy()
        profile = self.profile(profile_texts)
        st = self.stats.setdefault(system, RerankStats())
        for i, (t, neg) in enumerate(zip(targets, candidates, strict=True)):
            t = int(t)
            if higher[i] + tied[i] >= self.top_k:  # pessimistic on ties: not in the top k, order unchanged
                continue
            ns = scores[neg]
            order = np.argsort(-ns, kind="stable")[: self.top_k - 1]  # the target takes the k-th place
            top = [int(neg[j]) for j in order]
            shown = [t] + top
            profiles = [self.profile(profile_of(c)) for c in shown] if profile_of else [profile] * len(shown)
            p = self._ask(system, profiles, [texts[c] for c in shown])
            new_higher = int((p[1:] > p[0] + TIE_TOL).sum())
            new_tied = int((np.abs(p[1:] - p[0]) <= TIE_TOL).sum())
            st.targets += 1
            st.moved += int(new_higher != higher[i] or new_tied != tied[i])
            higher[i], tied[i] = new_higher, new_tied
        return higher, tied


def describe(reranker: LLMReranker, system: str) -> dict[str, Any]:
    st = reranker.stats.get(system, RerankStats())
    return {"reranker": "llm", "rerank_model": reranker.llm.model_id, "rerank_top_k": reranker.top_k,
            "rerank_prompt": f"{reranker.prompt.name}.v{reranker.prompt.version}", **st.to_dict(),
            "requests_per_target": round(st.requests / st.targets, 2) if st.targets else math.nan}
