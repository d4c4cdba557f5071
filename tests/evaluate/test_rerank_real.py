"""The LLM reranker with the real default model on real AOL users (marked ``real_model``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from personaminer.evaluate.rerank import LLMReranker

# Real AOL users with >= 30 queries containing the keyword (the judge examples of tests/llm).
USERS = [("3141170", "recipe"), ("271639", "jobs"), ("3327666", "golf"), ("2855040", "lyrics"), ("678360", "fishing")]


@pytest.mark.real_model
def test_real_reranker_lifts_the_users_own_next_query(tmp_path: Path) -> None:
    """Profile: a user's first 10 keyword queries. Candidates: their 11th keyword query, placed last
    of the top 5 by the base order, and the 11th query of each other user. The reranker must put
    the user's own query first for at least 4 of the 5 users."""
    from personaminer.llm import LLMConfig, ModelNotAvailable, make_llm
    from tests.aol_testkit import aol_queries

    queries = {u: aol_queries(u, kw, 11) for u, kw in USERS}
    assert all(len(q) == 11 for q in queries.values())
    try:
        llm = make_llm(LLMConfig(cache_path=tmp_path / "cache.sqlite"))
        _ = llm.model_id
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    reranker = LLMReranker(llm, top_k=5)
    firsts = []
    try:
        for u, _ in USERS:
            texts = [queries[u][10]] + [queries[v][10] for v, _ in USERS if v != u]
            scores = np.array([0.0, 1.0, 1.0, 1.0, 1.0])  # the base order puts the user's own query 5th
            higher, tied = reranker.counts("real", scores, np.array([0]), [np.arange(1, 5)], texts,
                                           queries[u][:10], (np.array([4]), np.array([0])))
            firsts.append(bool(higher[0] == 0 and tied[0] == 0))
    finally:
        llm.close()
    stats = reranker.stats["real"]
    assert stats.requests == 25 and stats.nan == 0 and stats.targets == 5
    assert sum(firsts) >= 4, firsts
