"""LLM.structured (validation, retries with feedback, failures) and LLM.p_yes math."""

from __future__ import annotations

import json
import math

from pydantic import BaseModel, Field

from personaminer.llm import ChatRequest, ChatResult, p_yes_from_logprobs
from tests.fakes import ScriptedLLM
from tests.llm.llm_testkit import user_msg


class Persona(BaseModel):
    name: str
    interests: list[str] = Field(min_length=1)


GOOD = json.dumps({"name": "runner", "interests": ["trail running"]})
BAD = json.dumps({"name": "runner"})  # misses "interests"


def _req(text: str) -> ChatRequest:
    return ChatRequest(messages=user_msg(text), prompt_name="persona", prompt_version="1")


def test_valid_first_answer_and_schema_is_sent() -> None:
    llm = ScriptedLLM(lambda r, i: ChatResult(texts=[GOOD]))
    [res] = llm.structured([_req("a")], Persona)
    assert res.ok and res.value == Persona(name="runner", interests=["trail running"]) and res.attempts == 1
    assert llm.seen[0].json_schema == Persona.model_json_schema()


def test_retry_feeds_validation_error_back() -> None:
    llm = ScriptedLLM(lambda r, i: ChatResult(texts=[BAD if len(r.messages) == 1 else GOOD]))
    [res] = llm.structured([_req("a")], Persona, max_retries=2)
    assert res.ok and res.attempts == 2 and llm.model_calls == 2
    retry = llm.seen[1].messages
    assert retry[0] == user_msg("a")[0]
    assert retry[1] == {"role": "assistant", "content": BAD}
    assert retry[2]["role"] == "user" and "interests" in retry[2]["content"] and "Field required" in retry[2]["content"]


def test_failure_is_recorded_without_raising_and_batch_continues() -> None:
    def respond(r: ChatRequest, i: int) -> ChatResult:
        content = r.messages[0]["content"]
        if content == "always bad":
            return ChatResult(texts=["not json at all"])
        if content == "backend down":
            return ChatResult(error="connection refused")
        return ChatResult(texts=[f"```json\n{GOOD}\n```"])  # fenced JSON is accepted

    llm = ScriptedLLM(respond)
    results = llm.structured([_req("always bad"), _req("ok"), _req("backend down")], Persona, max_retries=2)
    bad, ok, down = results
    assert ok.ok and ok.value is not None and ok.value.name == "runner"
    assert not bad.ok and bad.value is None and bad.raw == "not json at all" and bad.attempts == 3
    assert "invalid output" in (bad.error or "")
    assert not down.ok and "connection refused" in (down.error or "")
    # 3 attempts for the bad one, 1 for each of the others
    assert llm.model_calls == 5


def test_p_yes_math() -> None:
    lp = {"Yes": math.log(0.6), " yes": math.log(0.1), "No": math.log(0.2), "Maybe": math.log(0.1)}
    assert math.isclose(p_yes_from_logprobs(lp), 0.7 / 0.9)
    assert math.isnan(p_yes_from_logprobs({"Maybe": -0.1}))
    assert math.isnan(p_yes_from_logprobs(None))
    assert p_yes_from_logprobs({"NO": -0.01}) == 0.0


def test_p_yes_requests_logprobs_and_handles_errors() -> None:
    answers = [
        ChatResult(texts=["Yes"], top_logprobs=[{"Yes": math.log(0.3), "No": math.log(0.1)}]),
        ChatResult(error="boom"),
    ]
    llm = ScriptedLLM(lambda r, i: answers[i])
    scores = llm.p_yes([_req("q1"), _req("q2")])
    assert math.isclose(scores[0], 0.75) and math.isnan(scores[1])
    assert all(r.top_logprobs >= 20 and r.max_tokens == 1 and r.json_schema is None for r in llm.seen)


def test_ask_retries_can_sample_with_advancing_seeds() -> None:
    from personaminer.llm.validated import Usage, ask

    def parse(text: str) -> str:
        if text != GOOD:
            raise ValueError("not yet")
        return text

    llm = ScriptedLLM(lambda r, i: ChatResult(texts=[GOOD if len(r.messages) >= 5 else BAD]))
    usage = Usage()
    [(value, _)] = ask(llm, [_req("a").model_copy(update={"seed": 7})], parse, 2, [usage], retry_temperature=0.7)
    assert value == GOOD and usage.requests == 3
    assert [(r.temperature, r.seed) for r in llm.seen] == [(0.0, 7), (0.7, 8), (0.7, 9)]
    greedy = ScriptedLLM(lambda r, i: ChatResult(texts=[BAD]))
    ask(greedy, [_req("a")], parse, 1, [Usage()])
    assert [(r.temperature, r.seed) for r in greedy.seen] == [(0.0, 0), (0.0, 0)]  # default: retries stay greedy
