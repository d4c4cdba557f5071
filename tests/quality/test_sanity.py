"""The metric sanity suite: degrade real persona sets and check each term drops where it should.

Real AOL users (24, each with >= 2 personas), real memories, grounded descriptions. Every
assertion is per user, not on averages. The embedding judge runs on all users; the LLM judge
(the default Qwen-1.5B) on a few, marked ``real_model``; ``benchmarks/quality_sanity.py`` runs
the LLM judge on a full sample and prints the per-term means.
"""

from __future__ import annotations

import pytest

from personaminer.quality import QualityConfig, score_set
from personaminer.quality.sanity import degrade


def _scores(data, set_id, kind, other, config, llm=None):  # type: ignore[no-untyped-def]
    ctx, text, _ = data.context(set_id)
    if kind != "original":
        ctx = degrade(ctx, kind, other, data.embedder)
    values, _, _ = score_set(ctx, config, embedder=data.embedder, llm=llm, memory_text=text,
                             facts=data.set_facts(set_id))
    return values


def _other_description(data, set_id: str, sets: list[str]) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    me = data.context(set_id)[0].user_id
    for other in sets:
        ctx = data.context(other)[0]
        if ctx.user_id != me:
            return ctx.personas[0].label, ctx.personas[0].description
    raise AssertionError("need a second user")


def test_sample_is_large_enough(real_sets) -> None:  # type: ignore[no-untyped-def]
    assert len(real_sets[1]) >= 20


@pytest.mark.parametrize(("kind", "drops", "same"), [
    ("shuffle", ["alignment", "truthfulness"], ["cohesion"]),
    ("other_user", ["alignment", "truthfulness"], ["cohesion"]),
    ("invented_fact", ["truthfulness"], ["cohesion"]),
    ("merged", ["cohesion"], []),
    ("generic_labels", ["specificity"], ["cohesion"]),
    ("duplicated", ["distinctness"], []),
    ("overclaim", ["truthfulness"], ["cohesion"]),
    ("demographic", ["truthfulness"], ["cohesion"]),
])
def test_each_degradation_lowers_its_terms_embedding_judge(real_sets, kind, drops, same) -> None:  # type: ignore[no-untyped-def]
    """The first four degradations must lower their terms and final for every user; the four added with
    specificity, distinctness and the guards for at least 95% of users, the rule of docs/quality.md
    (a set may already share the fault: two personas labelled "yahoo" gain distinctness from
    generic labels)."""
    ws, sets, data = real_sets
    config = QualityConfig(judge="embedding")
    misses: dict[str, list[str]] = {"final": [], **{t: [] for t in drops}}
    for set_id in sets:
        other = _other_description(data, set_id, sets)
        base = _scores(data, set_id, "original", other, config)
        bad = _scores(data, set_id, kind, other, config)
        for term in drops:
            if not (bad[term] < base[term] or (term == "truthfulness" and base[term] == bad[term] == 0)):
                misses[term].append(set_id)
        for term in same:
            assert bad[term] == pytest.approx(base[term]), (set_id, kind, term)
        if kind != "merged" and not bad["final"] < base["final"]:
            misses["final"].append(set_id)
    allowed = 0 if kind in ("shuffle", "other_user", "invented_fact", "merged") else int(0.05 * len(sets))
    assert all(len(m) <= allowed for m in misses.values()), (kind, misses)


@pytest.mark.real_model
def test_llm_judge_catches_invented_facts_and_other_users(real_sets, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from personaminer.llm import LLMConfig, ModelNotAvailable, make_llm

    ws, sets, data = real_sets
    cfg = LLMConfig(cache_path=tmp_path / "cache.sqlite")
    try:
        llm = make_llm(cfg)
        _ = llm.model_id
    except ModelNotAvailable as exc:
        pytest.skip(str(exc))
    config = QualityConfig(judge="llm")
    try:
        for set_id in sets[:3]:
            other = _other_description(data, set_id, sets)
            base = _scores(data, set_id, "original", other, config, llm)
            for kind in ("invented_fact", "other_user"):
                bad = _scores(data, set_id, kind, other, config, llm)
                assert bad["truthfulness"] < base["truthfulness"], (set_id, kind, base, bad)
    finally:
        llm.close()


def test_degenerate_sets_score_below_the_real_one_embedding_judge(real_sets) -> None:  # type: ignore[no-untyped-def]
    """Reward hacking: dates as labels, copied summaries, one persona for everything."""
    from personaminer.quality.sanity import HACKS, hacks

    ws, sets, data = real_sets
    config = QualityConfig(judge="embedding")
    for set_id in sets:
        ctx, text, _ = data.context(set_id)
        facts = data.set_facts(set_id)
        base = score_set(ctx, config, embedder=data.embedder, llm=None, memory_text=text, facts=facts)[0]
        bad = hacks(ctx, text, data.embedder)
        assert set(bad) == set(HACKS)
        for kind, hacked in bad.items():
            got = score_set(hacked, config, embedder=data.embedder, llm=None, memory_text=text, facts=facts)[0]
            assert got["final"] < base["final"], (set_id, kind, got["final"], base["final"])
