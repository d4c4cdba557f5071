"""The answer cache: hits, key contents, error results, env switch, two writer processes."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from personaminer.llm import CachedLLM, ChatRequest, ChatResult, LLMCache, LLMConfig, cache_key, make_llm
from personaminer.llm.openai_compat import OpenAICompatLLM
from tests.fakes import ScriptedLLM
from tests.llm.llm_testkit import user_msg


def _batch(k: int = 5) -> list[ChatRequest]:
    return [ChatRequest(messages=user_msg(f"question {i}"), prompt_name="p", prompt_version="1") for i in range(k)]


def test_second_run_makes_zero_model_calls(tmp_path: Path) -> None:
    llm = CachedLLM(ScriptedLLM(), LLMCache(tmp_path / "c.sqlite"))
    first = llm.generate(_batch())
    assert llm.model_calls == 5 and not any(r.cached for r in first)
    second = llm.generate(_batch())
    assert llm.model_calls == 5, "a re-run must be served from the cache"
    assert all(r.cached for r in second) and llm.cache_hits == 5
    assert [r.texts for r in first] == [r.texts for r in second]


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    CachedLLM(ScriptedLLM(), LLMCache(tmp_path / "c.sqlite")).generate(_batch())
    again = CachedLLM(ScriptedLLM(), LLMCache(tmp_path / "c.sqlite"))
    again.generate(_batch())
    assert again.model_calls == 0


def test_partial_hits_only_call_for_misses(tmp_path: Path) -> None:
    llm = CachedLLM(ScriptedLLM(), LLMCache(tmp_path / "c.sqlite"))
    llm.generate(_batch(3))
    res = llm.generate(_batch(5))
    assert llm.model_calls == 5
    assert [r.cached for r in res] == [True, True, True, False, False]
    assert [r.text for r in res] == [f"echo:question {i}" for i in range(5)]


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 1},
        {"prompt_version": "2"},
        {"prompt_name": "other"},
        {"temperature": 0.7},
        {"max_tokens": 10},
        {"n": 2},
        {"top_logprobs": 5},
        {"json_schema": {"type": "object"}},
        {"grammar": 'root ::= "a"'},
        {"messages": user_msg("question 0 ")},
    ],
)
def test_cache_key_changes_with_every_parameter(change: dict) -> None:
    base = ChatRequest(messages=user_msg("question 0"), prompt_name="p", prompt_version="1")
    assert cache_key("llamacpp", "m", base) != cache_key("llamacpp", "m", base.model_copy(update=change))


def test_cache_key_changes_with_model_and_backend_and_is_stable() -> None:
    req = ChatRequest(messages=user_msg("q"), json_schema={"b": 1, "a": 2})
    same = ChatRequest(messages=user_msg("q"), json_schema={"a": 2, "b": 1})
    assert cache_key("llamacpp", "m", req) == cache_key("llamacpp", "m", same)  # canonical JSON
    assert cache_key("llamacpp", "m", req) != cache_key("llamacpp", "m2", req)
    assert cache_key("llamacpp", "m", req) != cache_key("openai", "m", req)


def test_keys_made_before_the_grammar_field_still_hold() -> None:
    """A request without a grammar hashes exactly as before the field existed (stored answers stay valid)."""
    import hashlib

    from personaminer.llm.base import canonical_json

    req = ChatRequest(messages=user_msg("q"), prompt_name="p", prompt_version="1", seed=3)
    old_payload = {"backend": "llamacpp", "model_id": "m", "prompt_name": "p", "prompt_version": "1",
                   "temperature": 0.0, "seed": 3, "max_tokens": 256, "n": 1, "top_logprobs": 0,
                   "json_schema": None, "messages": user_msg("q")}
    assert cache_key("llamacpp", "m", req) == hashlib.sha256(canonical_json(old_payload).encode()).hexdigest()


def test_engine_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from personaminer.llm.config import LlamaCppConfig

    assert LLMConfig().llamacpp.engine == "server" and LLMConfig().llamacpp.n_parallel == 1
    monkeypatch.setenv("PERSONAMINER_LLAMA_ENGINE", "python")
    assert LlamaCppConfig().engine == "python"
    monkeypatch.setenv("PERSONAMINER_LLAMA_ENGINE", "gpu")
    with pytest.raises(ValueError, match="server or python"):
        LlamaCppConfig()


def test_different_model_misses_cache(tmp_path: Path) -> None:
    cache_path = tmp_path / "c.sqlite"
    CachedLLM(ScriptedLLM(model="a"), LLMCache(cache_path)).generate(_batch(2))
    other = CachedLLM(ScriptedLLM(model="b"), LLMCache(cache_path))
    other.generate(_batch(2))
    assert other.model_calls == 2


def test_errors_are_not_cached(tmp_path: Path) -> None:
    def flaky(req: ChatRequest, i: int) -> ChatResult:
        return ChatResult(error="boom") if i == 0 else ChatResult(texts=["fine"])

    llm = CachedLLM(ScriptedLLM(flaky), LLMCache(tmp_path / "c.sqlite"))
    assert llm.generate(_batch(1))[0].error == "boom"
    res = llm.generate(_batch(1))[0]
    assert res.text == "fine" and not res.cached and llm.model_calls == 2
    assert llm.generate(_batch(1))[0].cached


def test_env_switches_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = LLMConfig(backend="openai", cache_path=tmp_path / "c.sqlite")
    with make_llm(cfg) as llm:
        assert isinstance(llm, CachedLLM)
    monkeypatch.setenv("PERSONAMINER_NO_CACHE", "1")
    with make_llm(cfg) as llm:
        assert isinstance(llm, OpenAICompatLLM)
    monkeypatch.delenv("PERSONAMINER_NO_CACHE")
    with make_llm(cfg.model_copy(update={"cache": False})) as llm:
        assert isinstance(llm, OpenAICompatLLM)


def test_config_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "llm.toml"
    toml.write_text(
        'backend = "openai"\ncache = false\n[llamacpp]\nmodel = "/x/y.gguf"\nn_ctx = 2048\n'
        '[openai]\nbase_url = "http://h:1/v1"\nmodel = "m"\nstructured_output_style = "json_object"\n'
    )
    cfg = LLMConfig.from_file(toml)
    assert cfg.backend == "openai" and not cfg.cache and cfg.llamacpp.n_ctx == 2048
    assert cfg.openai.structured_output_style == "json_object" and cfg.openai.concurrency == 4
    js = tmp_path / "llm.json"
    js.write_text(cfg.model_dump_json())
    assert LLMConfig.from_file(js) == cfg
    bad = tmp_path / "bad.toml"
    bad.write_text('backend = "gpt"\n')
    with pytest.raises(ValueError):
        LLMConfig.from_file(bad)


# ------------------------------------------------------------- two processes
def _writer(path: str, worker: int, n: int) -> None:
    llm = CachedLLM(ScriptedLLM(), LLMCache(path))
    shared = [ChatRequest(messages=user_msg(f"shared {i}")) for i in range(n)]
    own = [ChatRequest(messages=user_msg(f"worker {worker} item {i}")) for i in range(n)]
    for a, b in zip(shared, own, strict=False):  # one request at a time: many small transactions interleave
        llm.generate([a])
        llm.generate([b])
    llm.close()


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    LLMCache(path).close()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    cache = LLMCache(path)
    assert len(cache) == 150 + 2 * 150
    llm = CachedLLM(ScriptedLLM(), cache)
    res = llm.generate([ChatRequest(messages=user_msg(f"worker 1 item {i}")) for i in range(150)])
    assert llm.model_calls == 0 and res[7].text == "echo:worker 1 item 7"
