"""The optional ``python`` engine of the embedded backend: llama-cpp-python on the CPU.

The default engine is llama.cpp's own server (:mod:`personaminer.llm.server`); this one needs
llama-cpp-python, which pip compiles (`pip install -e '.[llm-python]'`).

* JSON output is grammar-constrained: ``response_format={"type": "json_object",
  "schema": request.json_schema}``, so answers always parse (validation still happens
  in :meth:`LLM.structured`).
* Logprobs need ``Llama(logits_all=True)``, which costs ``n_ctx * n_vocab * 4`` bytes
  and slows prompts down; so a second ``Llama`` instance with ``logits_all=True`` is
  loaded lazily, the first time a request asks for ``top_logprobs``.
* Every request gets a system message (a default one is inserted if missing): the Qwen
  template otherwise injects its own.
* ``n`` samples are ``n`` sequential calls with seeds ``seed, seed+1, ..., seed+n-1``.
  At temperature 0 they are identical (greedy decoding).
* Consecutive calls on one instance reuse the KV cache of the longest common token
  prefix, so batches that share a long prompt prefix are faster in order. Reusing the
  cache changes logits in the last float bits, so for ``temperature > 0`` the state is
  reset before each call: a (request, seed) then always gives the same sample. Greedy
  (temperature 0) calls keep the prefix reuse.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personaminer.llm.base import (
    LLM,
    ChatRequest,
    ChatResult,
    ModelNotAvailable,
    first_token_top_logprobs,
    with_system_message,
)
from personaminer.llm.catalog import resolve, resolve_adapter, weights_id

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

INSTALL_HINT = ("pip install llama-cpp-python==0.3.36 (or `make install-llm-python`; it compiles llama.cpp: "
                "the default engine, engine = \"server\", needs no compiler)")


def default_threads() -> int:
    """``$PERSONAMINER_LLAMA_THREADS`` or 2. On a machine busy with other work, 1 thread per
    llama.cpp process is much faster: its threads wait for each other at every step."""
    return int(os.environ.get("PERSONAMINER_LLAMA_THREADS", "2"))


def import_llama_cpp() -> Any:
    """Import ``llama_cpp`` or raise :class:`ModelNotAvailable` naming the install command."""
    try:
        import llama_cpp
    except ImportError:
        raise ModelNotAvailable(f"llama-cpp-python is not installed: run `{INSTALL_HINT}`") from None
    return llama_cpp


class LlamaCppLLM(LLM):
    """A GGUF model run in-process by llama-cpp-python.

    Args:
        model: a catalog name or a path to any GGUF file.
        n_ctx: context window in tokens.
        n_threads: CPU threads (default: :func:`default_threads`).
        n_batch: prompt-processing batch size.
        adapter: optional LoRA adapter GGUF (passed as ``lora_path``).
        seed: the seed the instances are created with (requests carry their own seed).
        verbose: let llama.cpp log to stderr.
    """

    backend_name = "llamacpp"

    def __init__(
        self,
        model: str | os.PathLike[str] = "qwen2.5-coder-1.5b-instruct",
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        adapter: str | os.PathLike[str] | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self._llama_cpp = import_llama_cpp()
        self.model = str(model)
        self.model_path: Path = resolve(model)
        self.adapter = resolve_adapter(adapter)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_batch = n_batch
        self.seed = seed
        self.verbose = verbose
        self._plain: Llama | None = None
        self._with_logits: Llama | None = None
        self._sampled: tuple[list[dict[str, str]], Any] | None = None  #: (messages, saved state) of the last sample
        self._model_id: str | None = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """sha256 of the GGUF file (plus the adapter's sha256 when one is loaded)."""
        if self._model_id is None:
            self._model_id = weights_id(self.model_path, self.adapter)
        return self._model_id

    def _load(self, logits_all: bool) -> Llama:
        kwargs: dict[str, Any] = dict(
            model_path=str(self.model_path),
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            n_batch=self.n_batch,
            seed=self.seed,
            logits_all=logits_all,
            verbose=self.verbose,
        )
        if self.adapter is not None:
            kwargs["lora_path"] = str(self.adapter)
        log.info("loading %s (logits_all=%s)", self.model_path.name, logits_all)
        return self._llama_cpp.Llama(**kwargs)

    def _instance(self, logprobs: bool) -> Llama:
        if logprobs:
            if self._with_logits is None:
                self._with_logits = self._load(logits_all=True)
            return self._with_logits
        if self._plain is None:
            self._plain = self._load(logits_all=False)
        return self._plain

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        with self._lock:
            return [self._one(r) for r in requests]

    def _prompt_state(self, llm: Llama, messages: list[dict[str, str]]) -> None:
        """Put ``llm`` in the same state before every sample of one prompt.

        Samples of one prompt share its KV cache, so G candidates cost one prompt pass; a sample
        must still not depend on what ran before it (KV-cache cell layout changes the float
        rounding). So the prompt is evaluated once from a reset state (a 1-token warm-up call),
        that state is saved, and it is restored before each sample, the first one included.
        """
        if self._sampled is None or self._sampled[0] != messages:
            llm.reset()
            llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)
            self._sampled = (messages, llm.save_state())
        llm.load_state(self._sampled[1])

    def _one(self, req: ChatRequest) -> ChatResult:
        try:
            llm = self._instance(logprobs=req.top_logprobs > 0)
        except Exception as err:  # a model that fails to load fails every request
            return ChatResult(error=f"model load failed: {err}")
        self.model_calls += 1
        messages = with_system_message(req.messages)
        texts: list[str] = []
        top: list[dict[str, float]] = []
        prompt_tokens = completion_tokens = 0
        try:
            for i in range(req.n):
                kwargs: dict[str, Any] = dict(
                    messages=messages,
                    temperature=req.temperature,
                    seed=req.seed + i,
                    max_tokens=req.max_tokens,
                )
                if req.grammar is not None:
                    kwargs["grammar"] = self._llama_cpp.LlamaGrammar.from_string(req.grammar, verbose=False)
                elif req.json_schema is not None:
                    kwargs["response_format"] = {"type": "json_object", "schema": req.json_schema}
                if req.top_logprobs > 0:
                    kwargs["logprobs"] = True
                    kwargs["top_logprobs"] = req.top_logprobs
                if req.temperature > 0:
                    self._prompt_state(llm, messages)
                else:
                    self._sampled = None
                resp = llm.create_chat_completion(**kwargs)
                choice = resp["choices"][0]
                texts.append(choice["message"].get("content") or "")
                usage = resp.get("usage") or {}
                prompt_tokens += int(usage.get("prompt_tokens", 0))
                completion_tokens += int(usage.get("completion_tokens", 0))
                if req.top_logprobs > 0:
                    top.append(first_token_top_logprobs(choice.get("logprobs")))
        except Exception as err:  # e.g. prompt longer than n_ctx
            return ChatResult(error=f"{type(err).__name__}: {err}")
        return ChatResult(
            texts=texts,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            top_logprobs=top if req.top_logprobs > 0 else None,
        )

    def close(self) -> None:
        """Free both llama.cpp instances (avoids noisy ``Llama.__del__`` at exit)."""
        for attr in ("_plain", "_with_logits"):
            inst = getattr(self, attr)
            if inst is not None:
                inst.close()
                setattr(self, attr, None)

