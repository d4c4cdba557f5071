"""Content-addressed SQLite cache for LLM answers.

The key is the sha256 of the canonical JSON of everything that determines an answer:
backend, model id, prompt name and version, all sampling parameters (temperature,
seed, max_tokens, n, top_logprobs), the JSON schema, the grammar (when set) and the full message list.

The database runs in WAL mode, so several processes can read while one writes; each
entry is written in its own committed transaction, so a crash leaves either the whole
entry or none of it. Failed results are never stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time

from personaminer.llm.base import LLM, ChatRequest, ChatResult, canonical_json
from personaminer.tables.sqlite import SqliteStore

log = logging.getLogger(__name__)

#: Set to "1" to switch caching off regardless of configuration.
NO_CACHE_ENV = "PERSONAMINER_NO_CACHE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt_name TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    created_at REAL NOT NULL,
    result_json TEXT NOT NULL
)
"""


def cache_disabled_by_env() -> bool:
    """True when ``PERSONAMINER_NO_CACHE`` is set to a true value."""
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_key(backend: str, model_id: str, request: ChatRequest) -> str:
    """sha256 hex of the canonical JSON of (backend, model_id, the whole request)."""
    payload = {
        "backend": backend,
        "model_id": model_id,
        "prompt_name": request.prompt_name,
        "prompt_version": request.prompt_version,
        "temperature": request.temperature,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
        "n": request.n,
        "top_logprobs": request.top_logprobs,
        "json_schema": request.json_schema,
        "messages": request.messages,
    }
    if request.grammar is not None:  # only then, so every key made before the field existed still holds
        payload["grammar"] = request.grammar
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class LLMCache(SqliteStore):
    """A key -> :class:`ChatResult` store in one SQLite file (safe across processes)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path, _SCHEMA)

    def get(self, key: str) -> ChatResult | None:
        """The stored result for ``key`` (marked ``cached=True``), or None."""
        rows = self.query("SELECT result_json FROM llm_cache WHERE key = ?", (key,))
        if not rows:
            return None
        return ChatResult.model_validate_json(rows[0][0]).model_copy(update={"cached": True})

    def put(self, key: str, backend: str, model_id: str, request: ChatRequest, result: ChatResult) -> None:
        """Store a successful result in one transaction; error results are ignored."""
        if result.error is not None:
            return
        data = result.model_copy(update={"cached": False}).model_dump_json()
        self.write("INSERT OR REPLACE INTO llm_cache VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(key, backend, model_id, request.prompt_name, request.prompt_version, time.time(), data)])

    def __len__(self) -> int:
        return self.count("llm_cache")


class CachedLLM(LLM):
    """Wraps any :class:`LLM` so repeated requests are answered from an :class:`LLMCache`.

    ``model_calls`` reports the wrapped backend's real calls; ``cache_hits`` counts
    answers served from the cache.
    """

    def __init__(self, inner: LLM, cache: LLMCache) -> None:
        super().__init__()
        self.inner = inner
        self.cache = cache
        self.cache_hits = 0
        self.backend_name = inner.backend_name
        self.continues_final_message = inner.continues_final_message

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property  # type: ignore[override]
    def model_calls(self) -> int:
        return self.inner.model_calls

    @model_calls.setter
    def model_calls(self, value: int) -> None:  # set by LLM.__init__; the inner backend counts
        pass

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        backend, model_id = self.inner.backend_name, self.inner.model_id
        keys = [cache_key(backend, model_id, r) for r in requests]
        results: list[ChatResult | None] = [self.cache.get(k) for k in keys]
        self.cache_hits += sum(r is not None for r in results)
        missing = [i for i, r in enumerate(results) if r is None]
        # Slices of the backend's useful batch size, each cached before the next is sent:
        # a crash mid-batch loses at most one slice of answers.
        step = max(1, int(getattr(self.inner, "max_batch", 1)))
        for lo in range(0, len(missing), step):
            part = missing[lo : lo + step]
            fresh = self.inner.generate([requests[i] for i in part])
            for i, res in zip(part, fresh, strict=True):
                self.cache.put(keys[i], backend, model_id, requests[i], res)
                results[i] = res
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
