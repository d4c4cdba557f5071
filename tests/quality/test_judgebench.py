"""The judge benchmark's generator on real AOL memories: every type, known labels, guards that fire."""

from __future__ import annotations

from personaminer import Workspace
from personaminer.quality.judgebench import HABITS, NEGATIVE, make_cases, run_judges, summarize


def test_cases_have_known_labels_and_the_guards_catch_their_types(aol_memory_copy, embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = aol_memory_copy(4, 5, 10)
    with Workspace(path) as ws:
        cases = make_cases(ws, "aol", users, "extractive", per_type=6, seed=1)
        again = make_cases(ws, "aol", users, "extractive", per_type=6, seed=1)
        rows = run_judges(ws, cases, "extractive", embedder=embedder, llm=None)
    assert [c.claim for c in cases] == [c.claim for c in again]  # seeded
    types = {c.type for c in cases}
    # AOL has no ratings: every other type is there, six each
    assert types == {"supported", "supported, one memory", *NEGATIVE} - {"liking, low rating"}
    assert all(sum(c.type == t for c in cases) == 6 for t in types)
    own = {c.user_id: c for c in cases}
    for c in cases:
        assert c.label == (c.type in ("supported", "supported, one memory"))
        assert c.evidence and (c.type not in ("supported, one memory", "inflated frequency") or len(c.evidence) == 1)
    assert set(own) <= set(users)
    assert all(c.claim in HABITS for c in cases if c.type == "invented habit")  # drawn last, so the others are as before
    s = summarize(rows, ["embedding", "embedding+guards"])
    guarded = s["embedding+guards"]["types"]
    for t in ("swapped action", "invented demographic", "inflated frequency"):
        assert guarded[t]["accuracy"] == 1.0, (t, guarded[t])  # the guards refuse every such claim
    assert all(r["guard"] is None for r in rows if r["label"] == 1)  # and never a true one
    # the embedding judge alone accepts claims in the evidence's own words, whatever the action
    assert s["embedding"]["types"]["swapped action"]["accuracy"] < guarded["swapped action"]["accuracy"]
    assert s["embedding"]["types"]["inflated frequency"]["accuracy"] < 0.5
    assert s["embedding+guards"]["auc"] > s["embedding"]["auc"]
