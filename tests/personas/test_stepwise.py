"""Stepwise decoding of the persona model: the grammars, the chaining of prefills, retries, config.

The stand-in model reads each step's grammar (a small reader of the GBNF subset the grammars use,
below) and writes what a small model does when unconstrained: it cites every number it may."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable

import numpy as np
import pytest

from personaminer.llm.base import ChatRequest, ChatResult
from personaminer.personas.base import MemoryItem, PersonaConfig
from personaminer.personas.model import ModelBuilder, evidence_rules, persona_grammar
from personaminer.personas.stepwise import PREFIX, plan_step, step_grammar
from tests.fakes import ScriptedLLM

_RULE = re.compile(r'^(\S+) ::= "(\d+)"(?: \("," " "\? \((.*)\)\)\?)?$')


def evidence_language(grammar: str) -> set[tuple[int, ...]]:
    """Every evidence list the ``ev`` rules of ``grammar`` allow (the e-rules are a DAG)."""
    lines = dict(line.split(" ::= ", 1) for line in grammar.strip().splitlines())
    rules = {}
    for name, body in lines.items():
        if m := _RULE.match(f"{name} ::= {body}"):
            rules[name] = (int(m.group(2)), m.group(3).split(" | ") if m.group(3) else [])

    def seqs(name: str) -> list[tuple[int, ...]]:
        k, later = rules[name]
        return [(k,), *((k, *rest) for alt in later for rest in seqs(alt))]

    return {s for alt in lines["ev"].split(" | ") for s in seqs(alt)}


def tails(grammar: str) -> list[str]:
    root = grammar.splitlines()[0]
    return [t for t, pat in ((",", '","'), ("]}", '"]" sp "}"')) if pat in root]


def test_evidence_rules_allow_exactly_the_increasing_lists_that_leave_enough_out() -> None:
    nums = [2, 3, 5, 7, 8]
    subsets = [c for r in range(1, 6) for c in itertools.combinations(nums, r)]
    for reserve in range(5):
        got = evidence_language("\n".join(evidence_rules(nums, reserve)))
        assert got == {c for c in subsets if len(c) <= len(nums) - reserve}, reserve
    with pytest.raises(ValueError, match="leave 2 out"):
        evidence_rules([1, 2], 2)
    # the one-call grammar is unchanged: numbers 1..n, any increasing list
    assert evidence_language(persona_grammar(4, 3, 2)) == {c for r in range(1, 5)
                                                          for c in itertools.combinations(range(1, 5), r)}


def test_plan_and_step_grammar_tails() -> None:
    assert plan_step(1, 6, 2, 3) == (1, "more")
    assert plan_step(2, 3, 2, 3) == (0, "either")
    assert plan_step(3, 2, 2, 3) == (0, "end")
    assert plan_step(1, 4, 1, 1) == (0, "end")
    with pytest.raises(ValueError):
        plan_step(1, 2, 3, 5)
    assert tails(step_grammar([1, 2], reserve=1, close="more")) == [","]
    assert tails(step_grammar([1, 2], reserve=0, close="either")) == [",", "]}"]
    assert tails(step_grammar([1, 2], reserve=0, close="end")) == ["]}"]
    assert step_grammar([4, 6], reserve=0, close="end").splitlines()[0].startswith("root ::= sp persona")


def greedy_citer(prefer: str = ",", fail: Callable[[ChatRequest, int], ChatResult | None] | None = None
                 ) -> ScriptedLLM:
    """Continues the prefill with one persona citing the longest list the step's grammar allows,
    then ``prefer`` when the grammar allows it."""

    def answer(req: ChatRequest, calls: int) -> str | ChatResult:
        if fail is not None and (bad := fail(req, calls)) is not None:
            return bad
        assert req.messages[-1]["role"] == "assistant" and req.messages[-1]["content"].startswith(PREFIX)
        assert req.grammar and req.json_schema is None
        ev = max(evidence_language(req.grammar), key=lambda s: (len(s), [-x for x in s]))
        k = req.messages[-1]["content"].count('"evidence"') + 1
        allowed = tails(req.grammar)
        tail = prefer if prefer in allowed else allowed[0]
        return json.dumps({"evidence": list(ev), "label": f"Topic {k}",
                           "description": f"Memories {ev[0]} to {ev[-1]} of this user."}) + tail

    llm = ScriptedLLM({"persona_model": answer}, model="greedy-citer")
    llm.continues_final_message = True
    return llm


def _memories(n: int) -> list[MemoryItem]:
    return [MemoryItem(f"m{i}", dt.date(2024, 1, 1 + i), f"Searched topic number {i}.") for i in range(n)]


def test_a_model_that_cites_everything_still_writes_a_valid_set(embedder) -> None:  # type: ignore[no-untyped-def]
    mems = _memories(6)
    config = PersonaConfig(memory_set="extractive", decoding="stepwise", min_personas=2, max_personas=3)
    llm = greedy_citer(prefer=",")
    [ps] = ModelBuilder().build("u1", mems, config, embedder=embedder, llm=llm)
    assert ps.status == "ok" and len(ps.personas) == 2
    first, second = (set(p.evidence) for p in ps.personas)
    assert len(first) == 5 and len(second) == 1 and not first & second  # 1 memory was left for persona 2
    assert "closed there" in (ps.note or "")  # persona 2 wrote ',' with nothing left to cite
    steps = llm.seen
    assert len(steps) == 2 and steps[0].messages[-1]["content"] == PREFIX
    assert steps[1].messages[-1]["content"].startswith(PREFIX + '{"evidence": [1, 2, 3, 4, 5]')
    assert steps[1].messages[:-1] == steps[0].messages[:-1]  # the prompt is shared by the steps
    raw = json.loads(ps.raw or "")  # the stored answer is the one JSON object the steps wrote
    assert [p["evidence"] for p in raw["personas"]] == [[1, 2, 3, 4, 5], [6]]
    # the evidence of step 2's grammar is what step 1 left
    assert evidence_language(steps[1].grammar or "") == {(6,)}


def test_stepwise_ends_at_max_personas_and_may_end_from_min(embedder) -> None:  # type: ignore[no-untyped-def]
    mems = _memories(8)
    config = PersonaConfig(memory_set="extractive", decoding="stepwise", min_personas=1, max_personas=2)
    [ps] = ModelBuilder().build("u1", mems, config, embedder=embedder, llm=greedy_citer(prefer="]}"))
    assert len(ps.personas) == 1 and len(ps.personas[0].evidence) == 8
    # limited to 2: persona 1 leaves nothing out (min 1) ... but a ',' lets persona 2 take the rest
    llm = ScriptedLLM()
    calls: list[str] = []

    def answer(req: ChatRequest, i: int) -> str:
        calls.append(req.grammar or "")
        allowed = tails(req.grammar or "")
        ev = [1, 2, 3] if len(calls) == 1 else [4, 5]
        return json.dumps({"evidence": ev, "label": f"Topic {len(calls)}",
                           "description": "Some memories of this user."}) + ("," if "," in allowed else "]}")

    llm = ScriptedLLM({"persona_model": answer})
    llm.continues_final_message = True
    [ps] = ModelBuilder().build("u1", mems, config, embedder=embedder, llm=llm)
    assert [len(p.evidence) for p in ps.personas] == [3, 2] and len(calls) == 2
    assert tails(calls[1]) == ["]}"] and len(ps.unassigned) == 3


def test_a_cut_step_redoes_the_chain_at_the_retry_temperature(embedder) -> None:  # type: ignore[no-untyped-def]
    mems = _memories(5)

    def cut_first_two(req: ChatRequest, calls: int) -> ChatResult | None:
        if req.seed < 2:  # attempts 1 and 2 (seeds 0, 1): the second step is cut by max_tokens
            if req.messages[-1]["content"] != PREFIX:
                return ChatResult(texts=['{"evidence": [5], "label": "Top'], completion_tokens=req.max_tokens)
        return None

    config = PersonaConfig(memory_set="extractive", decoding="stepwise", max_retries=2)
    llm = greedy_citer(fail=cut_first_two)
    [ps] = ModelBuilder().build("u1", mems, config, embedder=embedder, llm=llm)
    assert ps.status == "repaired" and len(ps.personas) == 2
    assert [(r.temperature, r.seed) for r in llm.seen] == [(0.0, 0), (0.0, 0), (0.7, 1), (0.7, 1), (0.7, 2),
                                                          (0.7, 2)]
    # the steps of a set share its token budget
    step1 = json.dumps({"evidence": [1, 2, 3, 4], "label": "Topic 1", "description": "Memories 1 to 4 of this user."})
    assert llm.seen[0].max_tokens == config.max_tokens
    assert llm.seen[1].max_tokens == config.max_tokens - len(step1 + ",") // 4
    assert "does not parse (stopped at max_tokens" in (ps.note or "")
    failed = ModelBuilder().build("u1", mems, PersonaConfig(memory_set="extractive", decoding="stepwise",
                                                            max_retries=1), embedder=embedder,
                                  llm=greedy_citer(fail=cut_first_two))[0]
    assert failed.status == "failed" and not failed.personas and (failed.raw or "").startswith(PREFIX)


def test_stepwise_needs_a_backend_that_continues_and_a_config_without_sharing(embedder) -> None:  # type: ignore[no-untyped-def]
    config = PersonaConfig(memory_set="extractive", decoding="stepwise")
    with pytest.raises(ValueError, match="continues a final assistant message"):
        ModelBuilder().build("u1", _memories(4), config, embedder=embedder, llm=ScriptedLLM())
    with pytest.raises(ValueError, match="shared evidence"):
        PersonaConfig(decoding="stepwise", allow_shared_evidence=True)
    with pytest.raises(ValueError, match="decoding"):
        PersonaConfig(decoding="beam")  # type: ignore[arg-type]
    # the lineage: oneshot collections keep the fingerprint they had before the field existed
    assert "decoding" not in PersonaConfig().output_config()
    assert config.output_config()["decoding"] == "stepwise"
    assert "decoding" not in PersonaConfig(builder="cluster", decoding="stepwise").output_config()


def test_similarity_order_puts_alike_memories_next_to_each_other(embedder) -> None:  # type: ignore[no-untyped-def]
    """``memory_order="similarity"``: the prompt numbers memories so that similar ones are adjacent
    (the 1.5B model cited runs 1..23 of time-ordered memories); the set of shown memories is the same."""
    from personaminer.personas.model import prepare, similarity_order

    topics = ["Searched 'cheap flights to rome'.", "Rated 'Toy Story' 5/5.", "Searched 'rome hotel deals'.",
              "Rated 'Aladdin' 4/5.", "Searched 'flights paris rome'.", "Rated 'The Lion King' 5/5."]
    mems = [MemoryItem(f"m{i}", dt.date(2024, 1, 1 + i), t) for i, t in enumerate(topics)]
    by_time = prepare(mems, PersonaConfig(memory_set="extractive"), embedder)
    by_sim = prepare(mems, PersonaConfig(memory_set="extractive", memory_order="similarity"), embedder)
    assert [m.memory_id for m in by_time.shown] == [f"m{i}" for i in range(6)]
    order = [m.memory_id for m in by_sim.shown]
    assert sorted(order) == sorted(m.memory_id for m in by_time.shown)
    travel = {"m0", "m2", "m4"}
    kinds = [m in travel for m in order]
    assert kinds in ([True] * 3 + [False] * 3, [False] * 3 + [True] * 3), order  # two runs, not interleaved
    assert similarity_order(np.eye(2)) == [0, 1]
    assert "memory_order" not in PersonaConfig().output_config()
    assert PersonaConfig(memory_order="similarity").output_config()["memory_order"] == "similarity"
    with pytest.raises(ValueError, match="memory_order"):
        PersonaConfig(memory_order="random")  # type: ignore[arg-type]
