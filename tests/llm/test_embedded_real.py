"""Real-model tests of the embedded llama.cpp engines (select with ``-m real_model``).

Every test runs on both engines: ``server`` (llama.cpp's server in-process via xllamacpp, the
default) and ``python`` (llama-cpp-python, optional; skipped with a reason when absent). The small
model (``PERSONAMINER_TEST_MODEL``, default smollm2-135m-instruct) answers a persona prompt as
schema-valid JSON; the yes/no judge test needs a model that can judge (``llm_testkit.judge_model``)
and real AOL queries as evidence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from personaminer.llm import LLM, CachedLLM, ChatRequest, LLMCache
from tests.llm.llm_testkit import (
    ENGINES,
    JudgeModel,
    PersonaAnswer,
    aol_queries,
    assert_judge_separates,
    judge_batch,
    make_engine_llm,
    persona_request,
)

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module", params=ENGINES)
def small_llm(request: pytest.FixtureRequest, small_model_path: Path) -> Iterator[LLM]:
    llm = make_engine_llm(request.param, small_model_path, n_ctx=2048)
    yield llm
    llm.close()


def test_persona_json_validates(small_llm: LLM) -> None:
    queries = aol_queries("678360", None, 15)
    [res] = small_llm.structured([persona_request(queries)], PersonaAnswer, max_retries=2)
    assert res.ok, (res.error, res.raw)
    assert res.value is not None and res.value.interests


def test_model_id_usage_and_seeded_samples(small_llm: LLM) -> None:
    assert len(small_llm.model_id) == 64
    req = ChatRequest(messages=[{"role": "user", "content": "Name a fruit."}], temperature=1.0, n=3, seed=7, max_tokens=8)
    [a] = small_llm.generate([req])
    [b] = small_llm.generate([req])
    assert a.ok and len(a.texts) == 3 and a.prompt_tokens > 0 and a.completion_tokens > 0
    assert a.texts == b.texts, "same seeds must give the same samples"
    assert len(set(a.texts)) > 1, "different seeds should give different samples"


def test_samples_do_not_depend_on_earlier_calls(small_llm: LLM) -> None:
    """Samples of one prompt may share its KV cache, yet equal the samples after unrelated calls."""
    p = ChatRequest(messages=[{"role": "user", "content": "Name a fruit."}], temperature=1.0, n=3, seed=11,
                    max_tokens=8)
    q = ChatRequest(messages=[{"role": "user", "content": "Name a colour."}], temperature=1.0, n=2, seed=3,
                    max_tokens=8)
    [a] = small_llm.generate([p])
    small_llm.generate([q, ChatRequest(messages=q.messages, max_tokens=4)])
    [b] = small_llm.generate([p])
    assert a.texts == b.texts


def test_context_overflow_is_an_error_result_not_an_exception(small_llm: LLM) -> None:
    huge = ChatRequest(messages=[{"role": "user", "content": "word " * 5000}], max_tokens=4)
    [res] = small_llm.generate([huge])
    assert res.error is not None


def test_cached_rerun_makes_no_model_calls(small_llm: LLM, tmp_path: Path) -> None:
    llm = CachedLLM(small_llm, LLMCache(tmp_path / "c.sqlite"))
    reqs = [persona_request(aol_queries("2855040", "lyrics", 5))]
    before = small_llm.model_calls
    first = llm.generate(reqs)
    second = llm.generate(reqs)
    assert small_llm.model_calls == before + 1
    assert second[0].cached and second[0].texts == first[0].texts
    llm.cache.close()


def test_schema_bounds_and_enum_constrain_decoding(small_llm: LLM) -> None:
    """Integer enum and bounded array length in the schema hold even when the prompt asks otherwise."""
    schema = {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer", "enum": [2, 5, 7]},
                                                       "minItems": 1, "maxItems": 3}},
              "required": ["ids"], "additionalProperties": False}
    ask = ChatRequest(messages=[{"role": "user", "content": "Reply with JSON: ids 1, 9, 11, 13 and 40."}],
                      json_schema=schema, max_tokens=96, temperature=1.0)
    finished = 0
    for seed in range(4):
        [res] = small_llm.generate([ask.model_copy(update={"seed": seed})])
        if res.completion_tokens >= ask.max_tokens:  # cut in its whitespace: a schema cannot bound that
            continue
        finished += 1
        ids = json.loads(res.text)["ids"]
        assert 1 <= len(ids) <= 3 and set(ids) <= {2, 5, 7}, res.text
    assert finished >= 2, "the samples ran to max_tokens"


def test_gbnf_grammar_constrains_decoding(small_llm: LLM) -> None:
    """A GBNF grammar (what a schema cannot say: no number twice) constrains the answer."""
    grammar = 'root ::= "[" ( "2" | "5" | "7" | "2,5" | "2,7" | "5,2" | "5,7" | "7,2" | "7,5" ) "]"'
    ask = ChatRequest(messages=[{"role": "user", "content": "Write a long essay about cats."}], grammar=grammar,
                      max_tokens=12, temperature=1.0)
    for seed in range(4):
        [res] = small_llm.generate([ask.model_copy(update={"seed": seed})])
        ids = json.loads(res.text)
        assert len(ids) == len(set(ids)) and set(ids) <= {2, 5, 7}, res.text


@pytest.mark.parametrize("engine", ENGINES)
def test_judge_prefers_supported_claims(engine: str, judge_model: JudgeModel) -> None:
    llm = make_engine_llm(engine, judge_model.path, n_ctx=2048)
    try:
        scores = llm.p_yes(judge_batch())
    finally:
        llm.close()
    assert_judge_separates(scores, judge_model.strict)


def test_persona_grammar_holds_on_real_memories(small_llm: LLM) -> None:
    """The persona model's grammar (prompt v3): evidence numbers in 1..n, increasing, hence unique; the
    persona count within bounds; labels of 1 to 6 words. The small model at temperature 1 is the
    hardest case (without the grammar it copied placeholders and cited memories that do not exist)."""
    import datetime as dt

    from personaminer.personas.base import MemoryItem, PersonaConfig, numbered
    from personaminer.personas.model import model_schema, persona_grammar
    from personaminer.prompts import load_prompt

    queries = aol_queries("678360", None, 9)
    items = [MemoryItem(f"m{i}", dt.date(2006, 3, 1 + i), f"Searched {q!r}.") for i, q in enumerate(queries)]
    n, cfg = len(items), PersonaConfig(min_personas=2, max_personas=3)
    prompt = load_prompt("persona_model", "3")
    ask = ChatRequest(messages=prompt.messages(n=n, memories=numbered(items), min_personas=2, max_personas=3,
                                               overlap_rule="each memory supports at most one persona"),
                      json_schema=model_schema(n, 3, 2), grammar=persona_grammar(n, 3, 2), max_tokens=700,
                      temperature=1.0)
    finished = 0
    for seed in range(3):
        [res] = small_llm.generate([ask.model_copy(update={"seed": seed})])
        assert res.ok, res.error
        if res.completion_tokens >= ask.max_tokens:  # cut by max_tokens: the grammar cannot stop a long text
            continue
        finished += 1
        personas = json.loads(res.text)["personas"]
        assert 2 <= len(personas) <= cfg.max_personas, res.text
        for p in personas:
            assert p["evidence"] == sorted(set(p["evidence"])) and set(p["evidence"]) <= set(range(1, n + 1)), res.text
            assert 1 <= len(p["label"].split()) <= 6 and not p["label"][0].isdigit(), res.text
        assert res.text.lstrip().startswith('{') and res.text.index('"evidence"') < res.text.index('"label"')
    assert finished >= 1, "every sample ran to max_tokens"


def test_final_assistant_message_is_continued(small_llm: LLM) -> None:
    """Prefill: a last assistant message is continued and only the continuation comes back (what
    stepwise persona decoding builds on); backends that do not say so are refused there."""
    if not small_llm.continues_final_message:
        pytest.skip(f"{small_llm.backend_name} does not continue a final assistant message (stepwise decoding "
                    "refuses it)")
    prefix = '{"a": 5, "b":'
    ask = ChatRequest(messages=[{"role": "user", "content": "Write a JSON object with keys a and b."},
                                {"role": "assistant", "content": prefix}],
                      grammar='root ::= " "? [0-9] [0-9]? "}"', max_tokens=8)
    [res] = small_llm.generate([ask])
    assert res.ok and not res.text.lstrip().startswith("{"), res.text
    assert json.loads(prefix + res.text)["a"] == 5


def test_stepwise_persona_sets_never_share_evidence(small_llm: LLM, embedder) -> None:  # type: ignore[no-untyped-def]
    """Stepwise decoding with the small model at temperature 1 on real AOL memories: every set that
    is not cut by max_tokens is valid (the small model's one-call answers mostly cited the same
    memories in every persona)."""
    if not small_llm.continues_final_message:
        pytest.skip(f"{small_llm.backend_name} does not continue a final assistant message")
    import datetime as dt

    from personaminer.personas.base import MemoryItem, PersonaConfig
    from personaminer.personas.model import ModelBuilder

    queries = aol_queries("678360", None, 9)
    items = [MemoryItem(f"m{i}", dt.date(2006, 3, 1 + i), f"Searched {q!r}.") for i, q in enumerate(queries)]
    config = PersonaConfig(min_personas=2, max_personas=3, samples=3, temperature=1.0, decoding="stepwise",
                           max_tokens=768, max_retries=0)
    sets = ModelBuilder().build("678360", items, config, embedder=embedder, llm=small_llm)
    valid = [s for s in sets if s.status != "failed"]
    for s in sets:
        if s.status == "failed":
            assert "max_tokens" in (s.note or ""), s.note
            continue
        cited = [e for p in s.personas for e in p.evidence]
        assert s.personas and len(cited) == len(set(cited)), s
        # the answer (one JSON object) has 2 or 3 personas; duplicate labels are merged when stored
        assert 2 <= len(json.loads(s.raw or "")["personas"]) <= 3, s.raw
    assert valid, [s.note for s in sets]
