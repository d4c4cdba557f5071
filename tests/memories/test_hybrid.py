"""The hybrid ``llm`` memory mode: proposal, yes/no decisions, summaries, cost; with the fake LLM
(the real model runs in test_real_model.py)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from personaminer.llm.base import ChatResult
from personaminer.memories import MemoryConfig, build_memories
from personaminer.memories.hybrid import parse_summary, propose, step_summary, summary_grammar
from personaminer.memories.steps import make_steps
from personaminer.schema import Action
from tests.fakes import boundary_runs, hybrid_memories, user_text

T0 = dt.datetime(2006, 3, 1, 9, 0)
#: A band that asks about the hotels/flights boundary (similarity 0.4), decided by the answer alone.
ASK = {"split_below": 0.1, "same_above": 0.6, "boundary_weights": None}


def act(i: int, text: str, minutes: float, kind: str = "query", user: str = "u") -> Action:
    return Action(action_id=f"a{i:03d}", user_id=user, ts=T0 + dt.timedelta(minutes=minutes), kind=kind, text=text,
                  source="test", seq=i)


class TopicEmbedder:
    """Texts "<topic> <anything>" map to fixed directions: same topic cosine 1, 'near' topics 0.4,
    others 0 (so the proposal's classes are known)."""

    model_id = "topic-embedder"
    AXES = {"golf": 0, "flights": 1, "hotels": 2, "recipes": 3}

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for k, t in enumerate(texts):
            topic = t.split()[0]
            out[k, self.AXES[topic]] = 1.0
            if topic == "hotels":  # hotels sit near flights: an uncertain boundary
                out[k] = [0, 0.4, math.sqrt(1 - 0.16), 0]
        return out


def day_actions() -> list[Action]:
    # golf x3 | (gap 45 min) flights x2 | hotels x2 (uncertain) | recipes x1 (certain split)
    texts = ["golf clubs", "golf balls", "golf courses", "flights to orlando", "flights cheap", "hotels orlando",
             "hotels disney", "recipes pasta"]
    minutes = [0, 1, 2, 47, 48, 49, 50, 51]
    return [act(i, t, m) for i, (t, m) in enumerate(zip(texts, minutes, strict=True))]


def test_propose_classes() -> None:
    actions = day_actions()
    steps = make_steps(actions)
    p = propose(steps, TopicEmbedder().encode([s.text for s in steps]), gap_minutes=30, split_below=0.1,
                same_above=0.6)
    assert p.kinds == ["start", "same", "same", "gap", "same", "ask", "same", "split"]
    assert p.certain_starts() == [0, 3, 7]


@pytest.mark.parametrize(("same", "starts"), [(0.9, [0, 3, 7]), (0.1, [0, 3, 5, 7])])
def test_answers_decide_uncertain_boundaries(same: float, starts: list[int]) -> None:
    actions = day_actions()
    llm = hybrid_memories(same)
    [day] = build_memories(actions, MemoryConfig(**ASK), embedder=TopicEmbedder(), llm=llm)
    got = [[a.action_id for a in actions].index(m.action_ids[0]) for m in day.memories]
    assert got == starts
    assert [aid for m in day.memories for aid in m.action_ids] == [a.action_id for a in actions]
    assert day.questions == 1
    # one question, one summary per multi-step segment; the one-step segment costs no LLM call
    multi = sum(len(m.action_ids) > 1 for m in day.memories)
    assert day.summaries == multi and day.llm_requests == 1 + multi
    one = [m for m in day.memories if len(m.action_ids) == 1]
    assert one and all(m.summary_by == "action" for m in one)
    assert one[-1].summary == 'Searched "recipes pasta".'
    assert all(m.summary_by == "llm" for m in day.memories if len(m.action_ids) > 1)
    assert all(m.mode == "llm" and m.model == "fake-hybrid" for m in day.memories)
    assert "intent_boundary.v1+intent_summary.v1" == day.memories[0].prompt


def test_question_names_the_runs_and_summaries_see_only_their_segment() -> None:
    actions = day_actions()
    llm = hybrid_memories(0.9)
    build_memories(actions, MemoryConfig(**ASK), embedder=TopicEmbedder(), llm=llm)
    [q] = [r for r in llm.seen if r.prompt_name == "intent_boundary"]
    a, b = boundary_runs(q)
    assert [x.split('"')[1] for x in a] == ["flights to orlando", "flights cheap"]
    assert [x.split('"')[1] for x in b] == ["hotels orlando", "hotels disney"]
    assert q.max_tokens == 1 and q.top_logprobs >= 5
    summaries = [r for r in llm.seen if r.prompt_name == "intent_summary"]
    assert summaries and all(r.grammar for r in summaries)
    flights = next(r for r in summaries if "flights to orlando" in user_text(r))
    assert "golf" not in user_text(flights) and "recipes" not in user_text(flights)


def test_window_questions_share_a_prefix() -> None:
    # golf, then alternating near-topics: several uncertain boundaries in one window
    texts = ["golf a", "flights a", "hotels a", "flights b", "hotels b"]
    actions = [act(i, t, i) for i, t in enumerate(texts)]
    emb = TopicEmbedder()
    llm = hybrid_memories(0.9)
    build_memories(actions, MemoryConfig(split_below=0.0, same_above=0.99, boundary_weights=None), embedder=emb, llm=llm)
    qs = [r for r in llm.seen if r.prompt_name == "intent_boundary"]
    assert len(qs) == 4
    heads = {user_text(r).rsplit("</log>", 1)[0] for r in qs}
    assert len(heads) == 1, "all questions of a window must share the numbered log as their prefix"


def test_unreadable_answer_falls_back_to_the_extractive_rule() -> None:
    actions = day_actions()

    def no_logprobs(req, i):  # type: ignore[no-untyped-def]
        return ChatResult(texts=["Maybe"], top_logprobs=[{"Maybe": -0.1}])

    llm = hybrid_memories(0.9)
    llm.script["intent_boundary"] = no_logprobs
    [day] = build_memories(actions, MemoryConfig(min_similarity=0.25, **ASK), embedder=TopicEmbedder(), llm=llm)
    # hotels vs flights: similarity 0.4 >= 0.25, so the extractive rule keeps them together
    assert len(day.memories) == 3 and day.status == "repaired" and "no readable yes/no" in (day.note or "")


def test_leaking_or_failed_summary_is_replaced_by_the_extractive_one() -> None:
    actions = day_actions()
    llm = hybrid_memories(0.9, summary=lambda req: "Looked at golf gear." if "golf" in user_text(req) else
                          "Looked at flights and recipes pasta today.")  # "recipes pasta" is another segment's
    [day] = build_memories(actions, MemoryConfig(**ASK), embedder=TopicEmbedder(), llm=llm)
    golf = day.memories[0]
    assert golf.summary_by == "llm" and golf.summary == "Looked at golf gear."
    flights = day.memories[1]
    assert flights.summary_by == "extractive" and "named 1 action(s) of other segments" in (day.note or "")
    llm = hybrid_memories(0.9, summary=lambda req: "x")
    [day] = build_memories(actions, MemoryConfig(max_retries=1, **ASK), embedder=TopicEmbedder(), llm=llm)
    assert all(m.summary_by in ("extractive", "action") for m in day.memories)
    assert "failed after 2 attempt(s)" in (day.note or "")


def test_parse_summary_bounds_words() -> None:
    assert parse_summary("  Looked for   golf clubs ", 12) == "Looked for golf clubs."
    assert parse_summary(" ".join(f"w{i}" for i in range(30)), 5) == "w0 w1 w2 w3 w4."
    with pytest.raises(ValueError):
        parse_summary("Golf", 12)
    g = summary_grammar(12)
    assert "{1,11}" in g and g.startswith("root ::=")


def test_step_summary_is_the_step_without_its_time() -> None:
    a = act(0, "golf clubs", 0)
    click = Action(action_id="c", user_id="u", ts=a.ts, kind="click", text="golf.com", source="t", seq=1,
                   attrs={"query": "golf clubs"})
    [step] = make_steps([a, click])
    assert step_summary(step) == 'Searched "golf clubs" -> clicked golf.com.'


def test_config_and_fingerprints() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        MemoryConfig(mode="segment")
    with pytest.raises(ValueError, match="split_below"):
        MemoryConfig(split_below=0.7, same_above=0.6)
    # the hybrid's settings never enter the other modes' lineage (their old fingerprints hold)
    for mode in ("extractive", "llm-segment"):
        assert "split_below" not in MemoryConfig(mode=mode).output_config()  # type: ignore[arg-type]
    assert MemoryConfig().output_config()["summary_words"] == 12


def test_run_reports_cost_per_action(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from personaminer import Workspace
    from personaminer.memories import run_memories
    from tests.evaluate.eval_testkit import add_actions

    with Workspace(tmp_path / "ws") as ws:
        add_actions(ws, [("u", a.ts, a.kind, a.text) for a in day_actions()])
        s = run_memories(ws, ["u"], MemoryConfig(**ASK), embedder=TopicEmbedder(), llm=hybrid_memories(0.9),
                         progress=False)
    assert s["questions"] == 1 and s["summaries"] == 2 and s["check"]["ok"]
    assert s["actions"] == 8 and s["memories"] == 3
    assert s["completion_tokens_per_action"] == pytest.approx(s["completion_tokens"] / 8, abs=1e-3)
    assert s["questions_per_action"] == pytest.approx(1 / 8, abs=1e-3)


def test_faithfulness_cases_and_judge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from personaminer import Workspace
    from personaminer.memories import faithfulness, run_memories
    from tests.evaluate.eval_testkit import add_actions

    summaries = {"golf": "Looked at golf gear.", "flights": "Frequently bought flights to orlando."}

    def summary(req):  # type: ignore[no-untyped-def]
        return next(v for k, v in summaries.items() if k in user_text(req))

    with Workspace(tmp_path / "ws") as ws:
        add_actions(ws, [("u", a.ts, a.kind, a.text) for a in day_actions()])
        run_memories(ws, ["u"], MemoryConfig(**ASK), embedder=TopicEmbedder(), llm=hybrid_memories(0.9, summary=summary),
                     progress=False)
        items = faithfulness.cases(ws, "llm")
        assert sorted(c.claims[0] for c in items) == ["The user frequently bought flights to orlando.",
                                                      "The user looked at golf gear."]
        golf = next(c for c in items if "golf" in c.summary)
        assert "golf clubs" in golf.evidence and "flights" not in golf.evidence and not golf.leaks
        from tests.fakes import ScriptedLLM

        judge = ScriptedLLM({"claim_judge": lambda req, i: 0.9})
        verdicts = faithfulness.judge(items, judge_kind="llm", embedder=TopicEmbedder(), llm=judge)
    r = faithfulness.summarize(items, verdicts)
    # the judge says yes to both, but the guards refuse a purchase (and a frequency) no action shows
    assert r["summaries"] == 2 and r["supported_claims"] == 0.5 and r["guard_refusals"] == 1


def test_actions_mode_is_one_memory_per_step_without_a_model() -> None:
    actions = day_actions()
    [day] = build_memories(actions, MemoryConfig(mode="actions"), embedder=TopicEmbedder())
    assert [m.action_ids for m in day.memories] == [[a.action_id] for a in actions]
    assert all(m.summary_by == "action" and m.model is None for m in day.memories)
    assert day.memories[0].summary == 'Searched "golf clubs".'
    assert "summary_words" not in MemoryConfig(mode="actions").output_config()


def test_blended_decision_uses_similarity_and_answer() -> None:
    from personaminer.memories.hybrid import is_boundary

    plain = MemoryConfig(boundary_weights=None)
    assert is_boundary(0.3, 0.4, plain) and not is_boundary(0.3, 0.6, plain)
    blend = MemoryConfig(boundary_weights=(1.0, -4.0, -1.0))  # boundary when 1 - 4s - logit(p) > 0
    assert is_boundary(0.1, 0.5, blend)  # low similarity, undecided answer: boundary
    assert not is_boundary(0.4, 0.5, blend)  # higher similarity: none
    assert is_boundary(0.4, 0.1, blend)  # ... unless the model says clearly "different"
    assert "boundary_weights" in MemoryConfig().output_config()
