"""The embedded backend: llama.cpp's own C++ server, run in-process by ``xllamacpp`` (the default).

``xllamacpp`` ships a prebuilt wheel (no compiler on install). Its ``Server`` runs llama.cpp's
``llama-server`` on threads of this process and listens on loopback; this backend starts it on
a free port and talks to it with :class:`~personaminer.llm.openai_compat.OpenAICompatLLM`, the
same client as for any remote vLLM / Ollama / llama.cpp server. So schemas, logprobs, seeds,
retries and sample fan-out are one code path for the local default and a remote pool.

* **Start**: lazily, on the first request (a fully cached run never loads the model); the
  server binds ``127.0.0.1`` on a free port, with ``n_threads`` for prompt and decode,
  ``n_parallel`` slots of ``n_ctx`` tokens each, and the LoRA adapter (if any) at ``lora_scale``.
* **Stop**: :meth:`close` (also at interpreter exit) first cuts the requests in flight (they are
  streamed, so shutting their sockets makes the server drop them at its next step; a non-streamed
  one would run to ``max_tokens`` first), then destroys the server, which stops its threads and
  closes the port: within one prompt batch or decode step (measured 0.06-3.2 s with SmolLM2). So
  Ctrl-C (``KeyboardInterrupt``) stops a run promptly and leaves nothing behind (tested). In case
  a llama.cpp build installs its own SIGINT/SIGTERM handlers at start (llama-server does), the
  backend puts Python's back right after the start.
* **Cache key**: ``backend_name`` is ``llamacpp-server`` and :attr:`model_id` the GGUF file's
  sha256 (plus the adapter's and its scale), so answers of another engine or model never mix.
* **Structured output**: ``response_format`` json_schema, compiled by llama.cpp (LLGuidance in
  this build): an integer ``enum`` and array ``minItems``/``maxItems`` constrain decoding (tested),
  integer ``minimum``/``maximum`` held in a probe; ``uniqueItems`` does not (use a GBNF ``grammar``).
* **Prompt cache**: the server reuses the KV cache of the longest common prompt prefix across
  requests (``cache_prompt``), so yes/no questions over one evidence block pay for it once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from personaminer.llm.base import LLM, ChatRequest, ChatResult, ModelNotAvailable
from personaminer.llm.catalog import resolve, resolve_adapter, weights_id

log = logging.getLogger(__name__)

#: Pinned in pyproject.toml; the error message of a missing install names it.
XLLAMACPP_REQUIREMENT = "xllamacpp==2026.10.11549"
INSTALL_HINT = f"pip install {XLLAMACPP_REQUIREMENT} (or `make install`)"

_live: weakref.WeakSet[EmbeddedServer] = weakref.WeakSet()


def import_xllamacpp() -> Any:
    """Import ``xllamacpp`` or raise :class:`ModelNotAvailable` naming the install command."""
    try:
        import xllamacpp
    except ImportError:
        raise ModelNotAvailable(f"xllamacpp is not installed: run `{INSTALL_HINT}`") from None
    return xllamacpp


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """One in-process llama.cpp server on loopback; :attr:`base_url` ends in ``/v1``.

    Args:
        model_path: the GGUF file.
        n_ctx: context tokens per slot (the server gets ``n_ctx * n_parallel`` in all).
        n_threads: CPU threads for prompt processing and decoding.
        n_batch: prompt-processing batch size.
        n_parallel: slots (requests decoded together by continuous batching).
        adapter: a LoRA adapter GGUF, applied at ``lora_scale``.
        cache_prompt: reuse the KV cache of a shared prompt prefix across requests.
        verbose: let llama.cpp log to stderr.
        port: the port to listen on (default: a free one).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int = 2,
        n_batch: int = 512,
        n_parallel: int = 1,
        adapter: Path | None = None,
        lora_scale: float = 1.0,
        cache_prompt: bool = True,
        seed: int = 0,
        verbose: bool = False,
        port: int | None = None,
    ) -> None:
        xl = import_xllamacpp()
        p = xl.CommonParams()
        p.model.path = str(model_path)
        p.n_parallel = n_parallel
        p.n_ctx = n_ctx * n_parallel
        p.n_batch = n_batch
        p.n_ubatch = min(n_batch, 512)
        p.cpuparams.n_threads = n_threads
        p.cpuparams_batch.n_threads = n_threads
        p.n_threads_http = max(2, n_parallel + 1)
        p.cache_prompt = cache_prompt
        p.sampling.seed = seed
        p.hostnames = ["127.0.0.1"]
        p.verbosity = 3 if verbose else -1
        p.warmup = False  # the first request warms up; a start costs one model load only
        if adapter is not None:
            p.lora_adapters = [xl.CommonAdapterLoraInfo(str(adapter), float(lora_scale))]
        self.model_path = model_path
        self.n_parallel = n_parallel
        self._server: Any = None
        last: Exception | None = None
        for _attempt in range(1 if port else 3):  # a port taken between free_port() and the bind: try another
            p.port = port or free_port()
            try:
                self._server = self._start(xl, p)
                break
            except RuntimeError as err:
                last = err
        if self._server is None:
            raise ModelNotAvailable(
                f"llama.cpp could not load {model_path} (is it a GGUF model file? a LoRA adapter made for "
                f"another base?): {last}. Run with --verbose to see llama.cpp's log."
            )
        self.port = int(p.port)
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        _live.add(self)
        log.info("llama.cpp server for %s on %s (%d slot(s))", model_path.name, self.base_url, n_parallel)

    @staticmethod
    def _start(xl: Any, params: Any) -> Any:
        """Start the server; then give SIGINT/SIGTERM back to Python, should the build have taken them
        (llama-server's main does; xllamacpp 2026.10.11549 does not, checked at the OS level)."""
        main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            return xl.Server(params)
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        """Stop the server: its threads end and its port closes (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            t0 = time.perf_counter()
            del server  # the C++ destructor terminates the loop and joins its threads
            log.info("llama.cpp server on port %d stopped in %.2fs", self.port, time.perf_counter() - t0)
        _live.discard(self)


@atexit.register
def _close_all() -> None:
    for server in list(_live):
        server.close()


class LlamaServerLLM(LLM):
    """A GGUF model served in-process by llama.cpp's server, reached over loopback HTTP.

    Args:
        model: a catalog name or a path to any GGUF file.
        n_ctx: context window per slot, in tokens.
        n_threads: CPU threads (default ``$PERSONAMINER_LLAMA_THREADS`` or 2).
        n_batch: prompt-processing batch size.
        n_parallel: server slots; also the client's requests in flight (and samples of one
            request fan out over them).
        adapter: optional LoRA adapter GGUF; ``lora_scale`` its strength.
        cache_prompt: reuse a shared prompt prefix's KV cache across requests.
        seed: the server's default seed (requests carry their own).
        timeout_s: per-request HTTP timeout.
        verbose: let llama.cpp log to stderr.
    """

    backend_name = "llamacpp-server"
    continues_final_message = True  # prefill (tested in tests/llm/test_embedded_real.py)

    def __init__(
        self,
        model: str | os.PathLike[str] = "qwen2.5-coder-1.5b-instruct",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_parallel: int = 1,
        adapter: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
        cache_prompt: bool = True,
        seed: int = 0,
        timeout_s: float = 600.0,
        verbose: bool = False,
    ) -> None:
        from personaminer.llm.llamacpp import default_threads

        super().__init__()
        import_xllamacpp()  # fail now, with the install command, not at the first request
        self.model = str(model)
        self.model_path: Path = resolve(model)
        self.adapter = resolve_adapter(adapter)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_batch = n_batch
        self.n_parallel = n_parallel
        self.lora_scale = lora_scale
        self.cache_prompt = cache_prompt
        self.seed = seed
        self.timeout_s = timeout_s
        self.verbose = verbose
        self.max_batch = n_parallel
        self._server: EmbeddedServer | None = None
        self._client: Any = None
        self._model_id: str | None = None
        self._lock = threading.Lock()
        self._load_error: str | None = None

    @property
    def model_id(self) -> str:
        """sha256 of the GGUF file (plus the adapter's sha256 and scale when one is loaded)."""
        if self._model_id is None:
            self._model_id = weights_id(self.model_path, self.adapter, self.lora_scale)
        return self._model_id

    @property
    def base_url(self) -> str | None:
        """The running server's API root (``None`` before the first request or after :meth:`close`)."""
        return self._server.base_url if self._server is not None else None

    def start(self) -> None:
        """Start the server now (otherwise the first request does)."""
        from personaminer.llm.config import OpenAIConfig
        from personaminer.llm.openai_compat import OpenAICompatLLM

        with self._lock:
            if self._client is not None:
                return
            self._server = EmbeddedServer(
                self.model_path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_batch=self.n_batch,
                n_parallel=self.n_parallel,
                adapter=self.adapter,
                lora_scale=self.lora_scale,
                cache_prompt=self.cache_prompt,
                seed=self.seed,
                verbose=self.verbose,
            )
            self._client = OpenAICompatLLM(
                OpenAIConfig(
                    base_url=self._server.base_url,
                    model=self.model_path.stem,
                    api_key_env="PERSONAMINER_EMBEDDED_SERVER_KEY",  # never send a real key to loopback
                    concurrency=self.n_parallel,
                    timeout_s=self.timeout_s,
                    max_retries=2,
                    structured_output_style="json_schema",
                    stream=True,  # so close() during a request cancels it (see OpenAIConfig.stream)
                )
            )

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        if self._client is None:
            if self._load_error is not None:
                return [ChatResult(error=self._load_error) for _ in requests]
            try:
                self.start()
            except ModelNotAvailable as err:  # a model that fails to load fails every request
                self._load_error = f"model load failed: {err}"
                return [ChatResult(error=self._load_error) for _ in requests]
        results = self._client.generate(requests)
        self.model_calls += len(requests)
        return results

    def close(self) -> None:
        """Stop the server and the client (idempotent)."""
        with self._lock:
            client, self._client = self._client, None
            server, self._server = self._server, None
        if client is not None:  # cut the requests in flight first: the server's destructor waits for them
            client.abort()
        if server is not None:
            server.close()
        if client is not None:
            client.close()
