"""The LLM reranker: it re-orders only a base system's top k, an oracle lifts every such target
to rank 1, an undecided LLM gives the tie-aware chance level within the top k, and answers are
cached."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personaminer import Workspace
from personaminer.evaluate import EvalConfig, SplitConfig, run_evaluation, split_users
from personaminer.evaluate.rerank import LLMReranker
from personaminer.llm.base import LLM
from tests.evaluate.eval_testkit import BagOfWordsEmbedder, topic_workspace
from tests.fakes import yes_no

CANDIDATE = re.compile(r"Candidate next interaction: (.*)\n")
PROFILE = re.compile(r"^- (.*)$", re.M)


def _norm(t: str) -> str:
    return " ".join(t.split()).lower()


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, set[str]]]:
    """Users with private words; (path, history text -> user, user -> future texts)."""
    path = topic_workspace(tmp_path / "ws", n_users=16, unique=True)
    with Workspace(path) as ws:
        split_users(ws, ws.users(), SplitConfig())
        owner = {_norm(a.text): u for u in ws.users() for a in ws.user_actions(u)}
        future = {u: {_norm(a.text) for a in ws.user_future_actions(u)} for u in ws.users()}
    return path, owner, future


def _run(path: Path, llm: LLM, **kw) -> dict:  # type: ignore[no-untyped-def]
    with Workspace(path) as ws:
        return run_evaluation(ws, EvalConfig(bootstrap=50, max_targets=5, systems="random,history_embed,recent",
                                             rerank="llm", rerank_top=5, **kw),
                              embedder=BagOfWordsEmbedder(), llm=llm, progress=False)


def _m(r: dict, p: str, s: str, m: str) -> float:
    return r["results"][p]["all"][s][m]["mean"]


def test_an_oracle_lifts_every_top_k_target_to_rank_one(tmp_path: Path) -> None:
    path, owner, future = _workspace(tmp_path)

    def knows(cand: str, profile: list[str]) -> float:  # yes exactly for the profiled user's own future
        return 0.99 if _norm(cand) in future[owner[_norm(profile[0])]] else 0.01

    oracle = yes_no(knows)
    r = _run(path, oracle)
    assert set(r["results"]["sampled"]["all"]) == {"random", "history_embed", "recent", "history_embed+llm",
                                                   "recent+llm"}  # random has nothing to show the LLM
    for p in ("sampled", "hard", "full"):
        # history_embed rarely ties: every target in its top 5 goes to rank 1 (targets tied across the 5th
        # place stay where they were, pessimistically); `recent` ties often (one text, many zero scores)
        assert _m(r, p, "history_embed+llm", "hit@1") == pytest.approx(_m(r, p, "history_embed", "hit@5"), abs=0.02)
        for s in ("history_embed", "recent"):
            assert _m(r, p, f"{s}+llm", "hit@1") > _m(r, p, s, "hit@1"), (p, s)
            assert _m(r, p, f"{s}+llm", "mrr") > _m(r, p, s, "mrr"), (p, s)
            assert _m(r, p, f"{s}+llm", "hit@5") == pytest.approx(_m(r, p, s, "hit@5")), (p, s)  # none enters the top 5
            assert _m(r, p, f"{s}+llm", "hit@10") == pytest.approx(_m(r, p, s, "hit@10")), (p, s)
    assert _m(r, "sampled", "history_embed", "hit@5") > 0.5  # so the test has targets to move
    info = r["systems"]["history_embed+llm"]
    assert info["reranker"] == "llm" and info["rerank_top_k"] == 5 and info["base"] == "history_embed"
    assert info["requests"] == 5 * info["targets_reranked"] and info["failed_answers"] == 0
    assert "re-ordered by the LLM" in (path / "reports" / "evaluate.md").read_text()


def test_an_undecided_llm_ties_the_top_k(tmp_path: Path) -> None:
    path, _, _ = _workspace(tmp_path)
    r = _run(path, yes_no(lambda c, pr: 0.5), rerank_systems=["history_embed"])
    assert "recent+llm" not in r["results"]["sampled"]["all"]
    for p in ("sampled", "hard"):
        # a reranked target ties with the 4 others of the top 5: expected hit@1 = 1/5 of those in the top 5
        assert _m(r, p, "history_embed+llm", "hit@1") == pytest.approx(_m(r, p, "history_embed", "hit@5") / 5,
                                                                       abs=0.02)


def test_reranker_counts_and_refusals(tmp_path: Path) -> None:
    rr = LLMReranker(yes_no(lambda c, pr: 0.9 if c == "t" else 0.1), top_k=3)
    texts = ["t", "a", "b", "c", "d"]
    scores = np.array([0.5, 0.9, 0.8, 0.1, 0.0])
    base = (np.array([2]), np.array([0]))  # two negatives above the target: rank 3, inside the top 3
    higher, tied = rr.counts("s", scores, np.array([0]), [np.array([1, 2, 3, 4])], texts, ["a profile"], base)
    assert (higher[0], tied[0]) == (0, 0) and rr.llm.asked == ["t", "a", "b"]  # type: ignore[attr-defined]
    outside = (np.array([3]), np.array([0]))  # rank 4: outside the top 3, nothing asked, nothing moves
    higher, tied = rr.counts("s", scores, np.array([0]), [np.array([1, 2, 3, 4])], texts, [], outside)
    assert (higher[0], tied[0]) == (3, 0) and len(rr.llm.asked) == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="at least 2"):
        LLMReranker(yes_no(lambda c, pr: 0.5), top_k=1)
    with pytest.raises(ValueError, match="unknown reranker"):
        EvalConfig(rerank="bm25")
    path, _, _ = _workspace(tmp_path)
    with Workspace(path) as ws, pytest.raises(ValueError, match="needs an LLM"):
        run_evaluation(ws, EvalConfig(rerank="llm"), embedder=BagOfWordsEmbedder(), progress=False)
    with pytest.raises(ValueError, match="not in the table"):
        _run(path, yes_no(lambda c, pr: 0.5), rerank_systems=["nope"])
    with pytest.raises(ValueError, match="no user representation"):
        _run(path, yes_no(lambda c, pr: 0.5), rerank_systems=["random"])
    tied = LLMReranker(yes_no(lambda c, pr: 0.5), top_k=3)  # pessimistic ties: a tie at the 3rd place is outside
    higher, tied_n = tied.counts("s", np.zeros(5), np.array([0]), [np.array([1, 2, 3, 4])], texts, [],
                                 (np.array([0]), np.array([4])))
    assert (higher[0], tied_n[0]) == (0, 4) and tied.llm.asked == []  # type: ignore[attr-defined]


def test_evaluate_cli_rerank_needs_a_model_option(tmp_path: Path) -> None:
    from personaminer.cli import app

    path, _, _ = _workspace(tmp_path)
    r = CliRunner().invoke(app, ["evaluate", "-w", str(path), "--rerank", "bm25", "-q"])
    assert r.exit_code != 0 and "unknown reranker" in str(r.exception)
