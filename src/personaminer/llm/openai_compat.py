"""OpenAI-compatible HTTP backend (OpenAI, vLLM, llama.cpp server, llama-cpp-python server).

* Requests of a batch run concurrently on a bounded thread pool (``concurrency``).
* 429, 5xx and connection/timeouts are retried with exponential backoff
  (``backoff_s * 2**attempt``, or the server's ``Retry-After``), up to ``max_retries``.
* Structured output is requested through ``response_format`` in the configured style
  (see :class:`~personaminer.llm.config.OpenAIConfig`); answers are always validated
  afterwards by :meth:`LLM.structured`. With style ``auto`` the first rejected
  ``json_schema`` request switches the backend to ``json_object`` (llama-cpp-python's
  server), and a rejected ``json_object`` to plain prompting (``none``).
* ``n`` samples are ``n`` requests with seeds ``seed .. seed+n-1`` (as in the llama-cpp-python
  backend, so every backend means the same thing by a request); they share the thread pool
  with the other requests of the batch, so they run in parallel up to ``concurrency``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from personaminer.llm.base import (
    LLM,
    ChatRequest,
    ChatResult,
    first_token_top_logprobs,
    with_system_message,
)

if TYPE_CHECKING:
    from personaminer.llm.config import OpenAIConfig

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_FALLBACK = {"json_schema": "json_object", "json_object": "none"}


def _socket_of(resp: httpx.Response) -> Any:
    """The socket under a response (httpcore's ``network_stream`` extension), or None."""
    stream = resp.extensions.get("network_stream")
    try:
        return stream.get_extra_info("socket") if stream is not None else None
    except Exception:  # a transport without sockets (tests' MockTransport)
        return None


class RequestFailed(RuntimeError):
    """A request that cannot succeed (after retries, or a non-retryable status)."""

    def __init__(self, message: str, status: int | None = None, format_rejected: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.format_rejected = format_rejected


def _rejects_response_format(body: dict[str, Any], status: int, text: str) -> bool:
    """Did the server refuse the request's ``response_format``?

    OpenAI-style servers answer 400/422; llama-cpp-python's server answers 500 with a
    pydantic "literal_error" naming the allowed types ('text' or 'json_object').
    """
    if "response_format" not in body:
        return False
    if status in (400, 422):
        return True
    lowered = text.lower()
    return status >= 500 and any(w in lowered for w in ("response_format", "json_schema", "json_object"))


class OpenAICompatLLM(LLM):
    """Chat completions over HTTP from any OpenAI-compatible server."""

    backend_name = "openai"

    def __init__(self, config: OpenAIConfig | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
        from personaminer.llm.config import OpenAIConfig

        super().__init__()
        self.config = config or OpenAIConfig()
        self.max_batch = self.config.concurrency
        self.continues_final_message = self.config.continues_final_message
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=self.config.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=self.config.timeout_s,
            transport=transport,
            limits=httpx.Limits(max_connections=self.config.concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="llm-http")
        self._style = self.config.structured_output_style
        self._lock = threading.Lock()
        self._aborted = False
        self._streams: set[Any] = set()  #: sockets of the streamed requests in flight

    @property
    def model_id(self) -> str:
        return self.config.model

    # ------------------------------------------------------------------ requests
    def _response_format(self, schema: dict[str, Any], style: str) -> dict[str, Any] | None:
        if style in ("json_schema", "auto"):
            return {
                "type": "json_schema",
                "json_schema": {"name": str(schema.get("title") or "answer"), "schema": schema, "strict": False},
            }
        if style == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _body(self, req: ChatRequest, seed: int, style: str) -> dict[str, Any]:
        messages = with_system_message(req.messages)
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": req.temperature,
            "seed": seed,
            "max_tokens": req.max_tokens,
        }
        if req.grammar is not None:  # llama.cpp's server field; a GBNF grammar replaces the schema
            body["grammar"] = req.grammar
        elif req.json_schema is not None:
            fmt = self._response_format(req.json_schema, style)
            if fmt is not None:
                body["response_format"] = fmt
            else:
                body["messages"] = [
                    *messages[:-1],
                    {
                        **messages[-1],
                        "content": f"{messages[-1].get('content', '')}\n\nReply with only a JSON object "
                        f"matching this JSON schema: {req.json_schema}",
                    },
                ]
        if req.top_logprobs > 0:
            body["logprobs"] = True
            body["top_logprobs"] = req.top_logprobs
        return body

    def _send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None, str, httpx.Headers]:
        """One HTTP exchange: (status, the response JSON when status < 400, the body text, headers).

        With ``stream`` on, the answer comes as server-sent events and is put back together into
        the shape of a non-streamed response (content, first-token logprobs, usage). A streamed
        request can be cancelled: when :meth:`abort` closes the connection, llama.cpp's server stops
        generating at the next token (a non-streamed one runs to the end first).
        """
        if not self.config.stream:
            resp = self._client.post("chat/completions", json=body)
            if resp.status_code < 400:
                return resp.status_code, resp.json(), "", resp.headers
            return resp.status_code, None, resp.text, resp.headers
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with self._client.stream("POST", "chat/completions", json=body) as resp:
            sock = _socket_of(resp)
            with self._lock:
                self._streams.add(sock)
            try:
                return self._read_stream(resp)
            finally:
                with self._lock:
                    self._streams.discard(sock)

    @staticmethod
    def _read_stream(resp: httpx.Response) -> tuple[int, dict[str, Any] | None, str, httpx.Headers]:
        """Server-sent events back into the shape of one non-streamed response."""
        if resp.status_code >= 400:
            resp.read()
            return resp.status_code, None, resp.text, resp.headers
        content: list[str] = []
        logprobs: list[dict[str, Any]] = []
        usage: dict[str, Any] = {}
        finish = None
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                return 500, None, json.dumps(chunk["error"])[:300], resp.headers
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    content.append(delta["content"])
                lp = choice.get("logprobs") or {}
                logprobs += lp.get("content") or []
                finish = choice.get("finish_reason") or finish
        message = {"role": "assistant", "content": "".join(content)}
        choice_out: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
        if logprobs:
            choice_out["logprobs"] = {"content": logprobs}
        return resp.status_code, {"choices": [choice_out], "usage": usage}, "", resp.headers

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions with retries; returns the JSON response."""
        attempt = 0
        while True:
            delay: float | None = None
            if self._aborted:
                raise RequestFailed("aborted: the client was closed")
            try:
                status, data, text, headers = self._send(body)
            except RuntimeError as err:  # httpx: "the client has been closed" (abort() from another thread)
                raise RequestFailed(f"aborted: {err}") from None
            except httpx.TransportError as err:
                if self._aborted:
                    raise RequestFailed("aborted: the client was closed") from None
                problem = f"{type(err).__name__}: {err}"
                status = None
            else:
                if data is not None:
                    return data
                problem = f"HTTP {status}: {text[:300]}"
                if _rejects_response_format(body, status, text):
                    raise RequestFailed(problem, status, format_rejected=True)
                if status not in _RETRY_STATUS:
                    raise RequestFailed(problem, status)
                retry_after = headers.get("retry-after")
                if retry_after:
                    try:
                        delay = float(retry_after)
                    except ValueError:
                        delay = None
            if attempt >= self.config.max_retries:
                raise RequestFailed(f"{problem} (after {attempt} retries)", status)
            if delay is None:
                delay = self.config.backoff_s * (2**attempt) * (1 + 0.1 * random.random())
            log.warning("retrying in %.2fs: %s", delay, problem)
            time.sleep(delay)
            attempt += 1

    def _complete(self, req: ChatRequest, seed: int) -> dict[str, Any]:
        """One completion, degrading the structured-output style if the server rejects it."""
        while True:
            style = self._style
            try:
                return self._post(self._body(req, seed, style))
            except RequestFailed as err:
                if not err.format_rejected or self.config.structured_output_style != "auto":
                    raise
                nxt = _FALLBACK.get("json_schema" if style == "auto" else style)
                if nxt is None:
                    raise
                with self._lock:
                    if self._style == style:
                        log.warning("server rejected response_format %s; switching to %s", style, nxt)
                        self._style = nxt

    def _sample(self, req: ChatRequest, seed: int) -> dict[str, Any] | str:
        """One sample's response JSON, or the error text (never raises)."""
        try:
            data = self._complete(req, seed)
            data["choices"][0]  # noqa: B018 - a response without choices is an error
            return data
        except (RequestFailed, httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
            return f"{type(err).__name__}: {err}"

    @staticmethod
    def _result(req: ChatRequest, samples: list[dict[str, Any] | str]) -> ChatResult:
        """One :class:`ChatResult` from a request's samples (an error if any sample failed)."""
        texts: list[str] = []
        top: list[dict[str, float]] = []
        prompt_tokens = completion_tokens = 0
        for data in samples:
            if isinstance(data, str):
                return ChatResult(error=data)
            try:
                choice = data["choices"][0]
                texts.append((choice.get("message") or {}).get("content") or "")
                usage = data.get("usage") or {}
                prompt_tokens += int(usage.get("prompt_tokens") or 0)
                completion_tokens += int(usage.get("completion_tokens") or 0)
                if req.top_logprobs > 0:
                    top.append(first_token_top_logprobs(choice.get("logprobs")))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
                return ChatResult(error=f"{type(err).__name__}: {err}")
        return ChatResult(
            texts=texts,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            top_logprobs=top if req.top_logprobs > 0 else None,
        )

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Every sample of every request is one HTTP request; all of them share the pool, so the
        ``n`` samples of one request run in parallel (a server's slots) like separate requests."""
        tasks = [(i, k) for i, r in enumerate(requests) for k in range(r.n)]
        outs = list(self._pool.map(lambda t: self._sample(requests[t[0]], requests[t[0]].seed + t[1]), tasks))
        with self._lock:
            self.model_calls += len(requests)
        per: list[list[dict[str, Any] | str]] = [[] for _ in requests]
        for (i, _k), out in zip(tasks, outs, strict=True):
            per[i].append(out)
        return [self._result(r, s) for r, s in zip(requests, per, strict=True)]

    def abort(self) -> None:
        """Stop now (e.g. on Ctrl-C): drop the requests not yet sent and close the connections of
        the ones in flight, which then fail at once (a llama.cpp server cancels their work when it
        sees the connection close). Call :meth:`close` afterwards."""
        self._aborted = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            streams = list(self._streams)
        for sock in streams:  # a blocked read returns at once, and the server sees the disconnect
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._client.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
