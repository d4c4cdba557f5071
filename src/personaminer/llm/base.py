"""The LLM interface every backend implements.

A backend turns a batch of :class:`ChatRequest` into a batch of :class:`ChatResult`
(one result per request, same order). A backend never raises for a single failed
request: the failure is recorded in :attr:`ChatResult.error`.

Two helpers are built on :meth:`LLM.generate` and so work for every backend:

* :meth:`LLM.structured` asks for JSON that must validate against a pydantic model,
  feeds validation errors back to the model and retries;
* :meth:`LLM.p_yes` reads a yes/no judgement from the first token's top logprobs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from personaminer.errors import UserError

log = logging.getLogger(__name__)

#: The system message inserted when a request has none. Some chat templates (Qwen)
#: otherwise inject their own identity prompt.
DEFAULT_SYSTEM_MESSAGE = "You are a careful assistant. Follow the instructions exactly."

#: How many top logprobs :meth:`LLM.p_yes` asks for when a request asks for fewer.
P_YES_TOP_LOGPROBS = 20


class ModelNotAvailable(UserError, RuntimeError):
    """A model or runtime package is not installed; the message says how to install it."""


class ChatRequest(BaseModel):
    """One chat completion request.

    ``prompt_name``/``prompt_version`` identify the prompt template for auditing and are
    part of the cache key, so bumping a prompt's version invalidates its cached answers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: list[dict[str, Any]]
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    max_tokens: int = Field(256, ge=1)
    n: int = Field(1, ge=1)
    json_schema: dict[str, Any] | None = None
    #: A GBNF grammar for what a JSON schema cannot say (e.g. numbers unique within a list);
    #: it replaces ``json_schema`` when both are set. Honoured by the llama.cpp engines and
    #: llama.cpp servers (the ``grammar`` field); other servers ignore it.
    grammar: str | None = None
    top_logprobs: int = Field(0, ge=0, le=20)
    prompt_name: str = "adhoc"
    prompt_version: str = "0"


class ChatResult(BaseModel):
    """The answer to one :class:`ChatRequest`.

    ``texts`` holds ``n`` samples. ``top_logprobs`` holds, per sample, the natural-log
    probabilities of the first generated token's top alternatives (token text -> logprob),
    or ``None`` when they were not requested. ``error`` is set (and ``texts`` may be empty)
    when the request failed.
    """

    texts: list[str] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    top_logprobs: list[dict[str, float]] | None = None
    cached: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.error is None

    @property
    def text(self) -> str:
        """The first sample (empty string if there is none)."""
        return self.texts[0] if self.texts else ""


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class StructuredResult(Generic[M]):
    """Per-request outcome of :meth:`LLM.structured`.

    Exactly one of ``value`` / ``error`` is set. ``raw`` is the last raw model text
    (kept for audit, also on failure); ``attempts`` counts model answers used.
    """

    value: M | None
    raw: str | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None


def with_system_message(
    messages: list[dict[str, Any]], default: str = DEFAULT_SYSTEM_MESSAGE
) -> list[dict[str, Any]]:
    """Return ``messages`` with a system message first (``default`` if none was given)."""
    if messages and messages[0].get("role") == "system":
        return list(messages)
    return [{"role": "system", "content": default}, *messages]


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def extract_json_text(text: str) -> str:
    """Strip a Markdown code fence around JSON, if a model added one."""
    m = _FENCE.match(text)
    return m.group(1) if m else text.strip()


def format_validation_error(err: ValidationError) -> str:
    """A compact, model-readable description of a pydantic validation error."""
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)


def yes_no_mass(top_logprobs: dict[str, float]) -> tuple[float, float]:
    """Sum the probability of tokens reading "yes" and "no" (stripped, lowercase)."""
    yes = no = 0.0
    for token, logprob in top_logprobs.items():
        word = token.strip().lower()
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    return yes, no


def p_yes_from_logprobs(top_logprobs: dict[str, float] | None) -> float:
    """P(yes) normalised over the yes+no mass; NaN when neither appears in the top-k."""
    if not top_logprobs:
        return math.nan
    yes, no = yes_no_mass(top_logprobs)
    if yes + no <= 0.0:
        return math.nan
    return yes / (yes + no)


def first_token_top_logprobs(logprobs: dict[str, Any] | None) -> dict[str, float]:
    """Token -> logprob of the first generated token's alternatives, from an OpenAI-style
    ``choice["logprobs"]`` (``{"content": [{"top_logprobs": [{"token", "logprob"}, ...]}]}``)."""
    if not logprobs or not logprobs.get("content"):
        return {}
    first = logprobs["content"][0]
    out: dict[str, float] = {}
    for alt in first.get("top_logprobs") or []:
        tok, lp = alt["token"], float(alt["logprob"])
        # keep the highest logprob if a token text appears twice
        if tok not in out or lp > out[tok]:
            out[tok] = lp
    return out


class LLM(ABC):
    """A chat model backend.

    Subclasses implement :meth:`generate`, :attr:`backend_name`, :attr:`model_id` and
    (if they hold resources) :meth:`close`. They add 1 to :attr:`model_calls` for every
    request they actually send to a model (a request with ``n`` samples counts once;
    cached answers do not count).
    """

    backend_name: str = "abstract"
    #: How many requests the backend usefully works on at once (e.g. an HTTP backend's
    #: concurrency). The cache wrapper sends and stores answers in slices of this size.
    max_batch: int = 1
    #: Whether a request whose last message is the assistant's is answered by continuing that
    #: message (prefill: the text returned is only the continuation). llama.cpp's server does;
    #: stepwise persona decoding (:mod:`personaminer.personas.stepwise`) needs it.
    continues_final_message: bool = False

    def __init__(self) -> None:
        self.model_calls = 0

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Identifies the weights: a model file's sha256, or a server's model name."""

    @abstractmethod
    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Answer a batch of requests; one result per request, in order; never raises per request."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release model memory, threads or connections."""

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def structured(
        self,
        requests: list[ChatRequest],
        schema_model: type[M],
        max_retries: int = 2,
    ) -> list[StructuredResult[M]]:
        """Generate JSON validated against ``schema_model``, retrying invalid answers.

        Each request is sent with ``json_schema`` set to the model's JSON schema (unless
        the request already has one) and ``n=1``. An answer that fails validation is
        retried up to ``max_retries`` times: the invalid answer is appended as an
        assistant message, followed by a user message quoting the validation error.
        A request whose answers all fail (or whose backend call errors) gets a
        :class:`StructuredResult` with ``error`` and the last ``raw`` text; nothing is
        raised out of the batch.
        """
        schema = schema_model.model_json_schema()
        current: list[ChatRequest] = [
            r.model_copy(update={"n": 1, "json_schema": r.json_schema or schema}) for r in requests
        ]
        out: list[StructuredResult[M] | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        attempts = [0] * len(requests)
        last_error: dict[int, str] = {}
        for _round in range(max_retries + 1):
            if not pending:
                break
            results = self.generate([current[i] for i in pending])
            still: list[int] = []
            for i, res in zip(pending, results, strict=True):
                if res.error is not None:
                    prev = out[i]
                    raw_prev = prev.raw if prev is not None else None
                    out[i] = StructuredResult(None, raw_prev, f"backend error: {res.error}", attempts[i])
                    continue
                attempts[i] += 1
                raw = res.text
                try:
                    value = schema_model.model_validate_json(extract_json_text(raw))
                except ValidationError as err:
                    msg = format_validation_error(err)
                    last_error[i] = msg
                    out[i] = StructuredResult(None, raw, f"invalid output: {msg}", attempts[i])
                    feedback = (
                        "Your previous answer did not match the required JSON schema: "
                        f"{msg}. Reply again with only a corrected JSON object."
                    )
                    current[i] = current[i].model_copy(
                        update={
                            "messages": [
                                *current[i].messages,
                                {"role": "assistant", "content": raw},
                                {"role": "user", "content": feedback},
                            ]
                        }
                    )
                    still.append(i)
                    continue
                out[i] = StructuredResult(value, raw, None, attempts[i])
            pending = still
        for i in pending:
            log.info("structured output failed after %d attempts: %s", attempts[i], last_error.get(i))
        return [r if r is not None else StructuredResult(None, None, "not attempted", 0) for r in out]

    def p_yes(self, requests: list[ChatRequest]) -> list[float]:
        """Probability that the answer to each yes/no question is "yes".

        Reads the first generated token's top logprobs (at least
        ``P_YES_TOP_LOGPROBS`` alternatives, one token generated). The yes mass is the
        sum of ``exp(logprob)`` over tokens whose stripped, lowercased text is ``"yes"``
        (so ``"Yes"``, ``" yes"`` and ``"YES"`` all count), the no mass likewise for
        ``"no"``. The score is ``yes / (yes + no)``: it ignores probability spent on other
        tokens, so 0.5 means "undecided between yes and no". The result is NaN when the
        request failed or neither word is among the top alternatives.
        """
        return [p for p, _ in self.p_yes_results(requests)]

    def p_yes_results(self, requests: list[ChatRequest]) -> list[tuple[float, ChatResult]]:
        """:meth:`p_yes` with each answer's :class:`ChatResult` (for its token counts and ``cached``)."""
        reqs = [
            r.model_copy(
                update={
                    "top_logprobs": max(r.top_logprobs, P_YES_TOP_LOGPROBS),
                    "max_tokens": 1,
                    "n": 1,
                    "json_schema": None,
                    "grammar": None,
                }
            )
            for r in requests
        ]
        out = []
        for res in self.generate(reqs):
            if res.error is not None or not res.top_logprobs:
                out.append((math.nan, res))
            else:
                out.append((p_yes_from_logprobs(res.top_logprobs[0]), res))
        return out


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no spaces) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
