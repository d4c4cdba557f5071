"""Typed configuration for the LLM backends, and :func:`make_llm`.

A config file (TOML or JSON) mirrors :class:`LLMConfig`::

    backend = "llamacpp"          # embedded (default), or "openai" for any server
    cache = true
    # cache_path = "/path/llm_cache.sqlite"   # default: <cache dir>/llm_cache.sqlite

    [llamacpp]
    model = "qwen2.5-coder-1.5b-instruct"     # a catalog name or a GGUF path
    engine = "server"             # llama.cpp's server in-process (xllamacpp); "python": llama-cpp-python
    n_ctx = 4096                  # per slot
    n_threads = 2
    n_parallel = 1                # server slots
    # adapter = "/path/lora.gguf"

    [openai]
    base_url = "http://127.0.0.1:8080/v1"
    model = "qwen2.5-coder-1.5b-instruct"
    api_key_env = "OPENAI_API_KEY"
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from personaminer.llm.base import LLM
from personaminer.llm.cache import CachedLLM, LLMCache, cache_disabled_by_env
from personaminer.llm.catalog import DEFAULT_MODEL, cache_dir
from personaminer.llm.llamacpp import default_threads

Engine = Literal["server", "python"]


def default_engine() -> Engine:
    """``$PERSONAMINER_LLAMA_ENGINE`` (``server`` or ``python``), else ``server``."""
    value = os.environ.get("PERSONAMINER_LLAMA_ENGINE", "server").strip().lower() or "server"
    if value not in ("server", "python"):
        raise ValueError(f"PERSONAMINER_LLAMA_ENGINE must be server or python, not {value!r}")
    return value  # type: ignore[return-value]


class LlamaCppConfig(BaseModel):
    """Settings of the embedded llama.cpp backend."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="catalog model name or path to a GGUF file")
    n_ctx: int = Field(4096, ge=256, description="context window in tokens")
    n_threads: int = Field(default_factory=default_threads, ge=1,
                           description="CPU threads (default: $PERSONAMINER_LLAMA_THREADS or 2). On a busy machine "
                           "1 thread per process is far faster: llama.cpp's threads wait on each other")
    n_batch: int = Field(512, ge=1, description="prompt-processing batch size")
    adapter: Path | None = Field(None, description="LoRA adapter GGUF file")
    lora_scale: float = Field(1.0, ge=0.0, description="LoRA adapter strength (server engine)")
    seed: int = Field(0, description="seed the model instance is created with")
    verbose: bool = Field(False, description="let llama.cpp log to stderr")
    engine: Engine = Field(
        default_factory=default_engine,
        description="server: llama.cpp's own server run in-process by xllamacpp (prebuilt wheel), reached "
        "through the OpenAI-compatible client; python: llama-cpp-python (`pip install personaminer[llm-python]`, "
        "compiles llama.cpp)",
    )
    n_parallel: int = Field(1, ge=1, le=64, description="server slots decoded together (server engine)")
    cache_prompt: bool = Field(True, description="reuse a shared prompt prefix's KV cache (server engine)")


StructuredOutputStyle = Literal["auto", "json_schema", "json_object", "none"]


class OpenAIConfig(BaseModel):
    """Settings of the OpenAI-compatible HTTP backend."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field("http://127.0.0.1:8080/v1", description="API root, ending in /v1")
    model: str = Field("default", description="model name the server expects")
    api_key_env: str = Field("OPENAI_API_KEY", description="env var holding the API key (optional)")
    concurrency: int = Field(4, ge=1, description="requests in flight at once")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/connection errors")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry")
    stream: bool = Field(False, description="receive answers as server-sent events (the embedded server uses it: "
                         "closing the connection then cancels the generation, so Ctrl-C stops at once)")
    continues_final_message: bool = Field(
        False, description="the server continues a final assistant message (prefill) and returns only the "
        "continuation: llama.cpp's server does; needed by `personas --decoding stepwise`")
    structured_output_style: StructuredOutputStyle = Field(
        "auto",
        description=(
            "json_schema: OpenAI/vLLM/llama.cpp-server `response_format` json_schema; "
            "json_object: llama-cpp-python server {'type':'json_object','schema':...}; "
            "none: prompt only; auto: json_schema, falling back to json_object then none "
            "if the server rejects it"
        ),
    )


class LLMConfig(BaseModel):
    """Which backend to use, its settings, and the answer cache."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["llamacpp", "openai"] = "llamacpp"
    llamacpp: LlamaCppConfig = Field(default_factory=LlamaCppConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    cache: bool = Field(True, description="cache answers (off also with PERSONAMINER_NO_CACHE=1)")
    cache_path: Path | None = Field(None, description="SQLite file; default <cache dir>/llm_cache.sqlite")

    @classmethod
    def from_file(cls, path: str | Path) -> LLMConfig:
        """Read a ``.toml`` or ``.json`` config file."""
        path = Path(path)
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ValueError(f"config file must end in .toml or .json: {path}")
        return cls.model_validate(data)

    def resolved_cache_path(self) -> Path:
        return self.cache_path or (cache_dir() / "llm_cache.sqlite")


def make_backend(config: LLMConfig) -> LLM:
    """The bare backend described by ``config`` (no cache)."""
    if config.backend == "llamacpp" and config.llamacpp.engine == "server":
        from personaminer.llm.server import LlamaServerLLM

        c = config.llamacpp
        return LlamaServerLLM(
            c.model,
            n_ctx=c.n_ctx,
            n_threads=c.n_threads,
            n_batch=c.n_batch,
            n_parallel=c.n_parallel,
            adapter=c.adapter,
            lora_scale=c.lora_scale,
            cache_prompt=c.cache_prompt,
            seed=c.seed,
            verbose=c.verbose,
        )
    if config.backend == "llamacpp":
        from personaminer.llm.llamacpp import LlamaCppLLM

        c = config.llamacpp
        return LlamaCppLLM(
            c.model,
            n_ctx=c.n_ctx,
            n_threads=c.n_threads,
            n_batch=c.n_batch,
            adapter=c.adapter,
            seed=c.seed,
            verbose=c.verbose,
        )
    from personaminer.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(config.openai)


def make_llm(config: LLMConfig | None = None) -> LLM:
    """Build the configured backend, wrapped in the answer cache unless caching is off."""
    config = config or LLMConfig()
    backend = make_backend(config)
    if not config.cache or cache_disabled_by_env():
        return backend
    return CachedLLM(backend, LLMCache(config.resolved_cache_path()))
