"""OpenAI-compatible backend: retries, structured-output styles, logprobs, concurrency (mocked
HTTP), then the real-model tests against a loopback `personaminer models serve` (llama.cpp's server)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from personaminer.llm import CachedLLM, ChatRequest, LLMCache, OpenAIConfig
from personaminer.llm.openai_compat import OpenAICompatLLM
from tests.llm.llm_testkit import (
    JudgeModel,
    LlamaServer,
    PersonaAnswer,
    aol_queries,
    assert_judge_separates,
    judge_batch,
    persona_request,
    user_msg,
)


def completion(content: str, top: dict[str, float] | None = None) -> dict:
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if top is not None:
        choice["logprobs"] = {
            "content": [{"token": "x", "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}]
        }
    return {"choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}


def mock_llm(handler: Callable[[httpx.Request], httpx.Response], **cfg: object) -> OpenAICompatLLM:
    config = OpenAIConfig(base_url="http://mock/v1", model="m", backoff_s=0.0, **cfg)  # type: ignore[arg-type]
    return OpenAICompatLLM(config, transport=httpx.MockTransport(handler))


def test_retries_429_and_5xx_then_succeeds() -> None:
    statuses = iter([429, 503, 200])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status = next(statuses)
        return httpx.Response(status, json=completion("hi") if status == 200 else {"error": "busy"})

    with mock_llm(handler) as llm:
        [res] = llm.generate([ChatRequest(messages=user_msg("q"), seed=3)])
    assert res.ok and res.text == "hi" and res.prompt_tokens == 11 and res.completion_tokens == 3
    assert len(seen) == 3 and llm.model_calls == 1
    assert seen[0]["messages"][0]["role"] == "system" and seen[0]["seed"] == 3 and seen[0]["model"] == "m"


def test_gives_up_after_max_retries_and_on_4xx() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        body = json.loads(request.content)
        return httpx.Response(500 if body["messages"][-1]["content"] == "a" else 401, text="nope")

    with mock_llm(handler, max_retries=2) as llm:
        a, b = llm.generate([ChatRequest(messages=user_msg("a")), ChatRequest(messages=user_msg("b"))])
    assert a.error and "HTTP 500" in a.error and "after 2 retries" in a.error
    assert b.error and "HTTP 401" in b.error
    assert calls["n"] == 3 + 1


def test_connection_errors_are_retried() -> None:
    attempts = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=completion("ok"))

    with mock_llm(handler) as llm:
        assert llm.generate([ChatRequest(messages=user_msg("q"))])[0].text == "ok"
    assert attempts["n"] == 3


def test_auto_style_falls_back_to_json_object() -> None:
    formats = []

    def handler(request: httpx.Request) -> httpx.Response:
        fmt = json.loads(request.content).get("response_format")
        formats.append(fmt["type"])
        if fmt["type"] == "json_schema":
            return httpx.Response(422, json={"detail": "type must be json_object"})
        assert fmt["schema"] == {"type": "object"}
        return httpx.Response(200, json=completion("{}"))

    with mock_llm(handler) as llm:
        req = ChatRequest(messages=user_msg("q"), json_schema={"type": "object"})
        assert llm.generate([req])[0].text == "{}"
        assert llm.generate([req])[0].text == "{}"
    assert formats == ["json_schema", "json_object", "json_object"]


def test_json_schema_style_body_and_logprobs_and_n() -> None:
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion("Yes", {"Yes": math.log(0.8), "No": math.log(0.2)}))

    with mock_llm(handler, structured_output_style="json_schema") as llm:
        req = ChatRequest(messages=user_msg("q"), json_schema={"type": "object"}, top_logprobs=5, n=2, seed=10)
        [res] = llm.generate([req])
        assert math.isclose(llm.p_yes([ChatRequest(messages=user_msg("q"))])[0], 0.8)
    assert bodies[0]["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert bodies[0]["logprobs"] is True and bodies[0]["top_logprobs"] == 5
    assert [b["seed"] for b in bodies[:2]] == [10, 11]
    assert res.texts == ["Yes", "Yes"] and res.top_logprobs and len(res.top_logprobs) == 2


def test_concurrency_is_bounded() -> None:
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=completion("ok"))

    with mock_llm(handler, concurrency=3) as llm:
        res = llm.generate([ChatRequest(messages=user_msg(str(i))) for i in range(12)])
    assert all(r.ok for r in res) and state["max"] == 3


def test_samples_of_one_request_fan_out_over_the_pool() -> None:
    """n samples are n seeded requests sent in parallel (a server's slots), regrouped in seed order."""
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=completion(f"seed {body['seed']}"))

    with mock_llm(handler, concurrency=4) as llm:
        [a, b] = llm.generate([ChatRequest(messages=user_msg("x"), n=4, seed=10),
                               ChatRequest(messages=user_msg("y"), n=2, seed=0)])
    assert a.texts == ["seed 10", "seed 11", "seed 12", "seed 13"] and b.texts == ["seed 0", "seed 1"]
    assert a.prompt_tokens == 44 and state["max"] == 4 and llm.model_calls == 2


def test_one_failed_sample_fails_its_request_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["seed"] == 2:
            return httpx.Response(400, json={"error": "bad"})
        return httpx.Response(200, json=completion("ok"))

    with mock_llm(handler, max_retries=0) as llm:
        [a, b] = llm.generate([ChatRequest(messages=user_msg("x"), n=3, seed=0),
                               ChatRequest(messages=user_msg("y"), seed=5)])
    assert a.error is not None and "400" in a.error and b.ok


def test_grammar_is_sent_instead_of_the_schema() -> None:
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion("[2]"))

    with mock_llm(handler, structured_output_style="json_schema") as llm:
        llm.generate([ChatRequest(messages=user_msg("x"), grammar='root ::= "[2]"', json_schema={"type": "array"}),
                      ChatRequest(messages=user_msg("y"), json_schema={"type": "array"})])
    assert bodies[0]["grammar"] == 'root ::= "[2]"' and "response_format" not in bodies[0]
    assert "grammar" not in bodies[1] and bodies[1]["response_format"]["type"] == "json_schema"


def test_streamed_answers_are_put_back_together() -> None:
    """stream=True (the embedded server's mode): content deltas, first-token logprobs and usage from
    server-sent events give the same ChatResult as a plain response would."""
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Ye"},
                          "logprobs": {"content": [{"token": "Ye", "logprob": -0.1,
                                                    "top_logprobs": [{"token": "Yes", "logprob": -0.2},
                                                                     {"token": "No", "logprob": -1.8}]}]}}]},
            {"choices": [{"index": 0, "delta": {"content": "s"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
        ]
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    with mock_llm(handler, stream=True) as llm:
        [res] = llm.generate([ChatRequest(messages=user_msg("q"), top_logprobs=5)])
    assert res.ok and res.text == "Yes" and res.prompt_tokens == 7 and res.completion_tokens == 2
    assert res.top_logprobs == [{"Yes": -0.2, "No": -1.8}]
    assert bodies[0]["stream"] is True and bodies[0]["stream_options"] == {"include_usage": True}


def test_a_streamed_error_event_is_a_failed_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text='data: {"error": {"message": "grammar parse failed"}}\n\n')

    with mock_llm(handler, stream=True, max_retries=0) as llm:
        [res] = llm.generate([ChatRequest(messages=user_msg("q"))])
    assert res.error is not None and "grammar parse failed" in res.error


def test_api_key_from_configured_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sekret")
    auth = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers.get("authorization"))
        return httpx.Response(200, json=completion("ok"))

    with mock_llm(handler, api_key_env="MY_KEY") as llm:
        llm.generate([ChatRequest(messages=user_msg("q"))])
    assert auth == ["Bearer sekret"]


# ------------------------------------------------------------------ real server
@pytest.fixture(scope="module")
def small_server_llm(small_model_path: Path, llama_server_factory: Callable[[Path, str], LlamaServer]) -> Iterator[OpenAICompatLLM]:
    server = llama_server_factory(small_model_path, "small")
    # No retries against the local server: a timed-out request keeps the (serial) server busy,
    # so a retry would queue behind it; fail loudly instead.
    llm = OpenAICompatLLM(
        OpenAIConfig(base_url=server.base_url, model="small", concurrency=2, timeout_s=300, max_retries=0)
    )
    yield llm
    llm.close()


@pytest.mark.real_model
def test_server_persona_json_validates(small_server_llm: OpenAICompatLLM) -> None:
    [res] = small_server_llm.structured([persona_request(aol_queries("678360", None, 15))], PersonaAnswer)
    assert res.ok, (res.error, res.raw)
    assert res.value is not None and res.value.interests


@pytest.mark.real_model
def test_server_cached_rerun_and_usage(small_server_llm: OpenAICompatLLM, tmp_path: Path) -> None:
    llm = CachedLLM(small_server_llm, LLMCache(tmp_path / "c.sqlite"))
    reqs = [ChatRequest(messages=user_msg(f"Say the word {w}."), max_tokens=8) for w in ("apple", "pear")]
    before = small_server_llm.model_calls
    first = llm.generate(reqs)
    assert all(r.ok and r.prompt_tokens > 0 for r in first), first
    second = llm.generate(reqs)
    assert small_server_llm.model_calls == before + 2 and all(r.cached for r in second)
    llm.cache.close()


@pytest.mark.real_model
def test_server_judge_prefers_supported_claims(
    judge_model: JudgeModel, llama_server_factory: Callable[[Path, str], LlamaServer]
) -> None:
    server = llama_server_factory(judge_model.path, "judge")
    cfg = OpenAIConfig(base_url=server.base_url, model="judge", concurrency=1, timeout_s=300, max_retries=0)
    with OpenAICompatLLM(cfg) as llm:
        scores = llm.p_yes(judge_batch())
    assert_judge_separates(scores, judge_model.strict)
