"""Ask an LLM for answers that must pass a validator, feeding each error back, and count the cost.

:meth:`personaminer.llm.base.LLM.structured` checks a JSON schema; :func:`ask` takes any
``parse`` function, so a stage can also check meaning (segments cover every step, evidence
numbers exist) and have the model correct itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from personaminer.llm.base import LLM, ChatRequest, format_validation_error


@dataclass
class Usage:
    """LLM cost of one unit of work (a window, a persona set), and every error it met."""

    requests: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: list[str] = field(default_factory=list)
    truncated: bool = False  # the last answer stopped at the request's max_tokens

    COUNTS = ("requests", "model_calls", "prompt_tokens", "completion_tokens")

    def add_counts(self, other: Usage) -> None:
        """Add ``other``'s request, call and token counts to this one (notes are the caller's)."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def retry_sampling(base: ChatRequest, attempt: int, retry_temperature: float) -> dict[str, Any]:
    """The sampling of retry ``attempt`` (1 for the first retry) of ``base``: at least
    ``retry_temperature``, the seed advanced by the attempt number (reproducible, and part of the
    cache key)."""
    return {"temperature": max(base.temperature, retry_temperature), "seed": base.seed + attempt}


def ask(llm: LLM, requests: list[ChatRequest], parse: Callable[[str], Any] | Sequence[Callable[[str], Any]],
        max_retries: int,
        usages: list[Usage], hints: list[str] | None = None,
        retry_temperature: float | None = None, retry_truncated: bool = True) -> list[tuple[Any, str | None]]:
    """Send requests; ``parse`` (one for all, or one per request) validates each answer, raising
    ``ValueError`` to ask again.

    The error (and the request's ``hints`` entry, if any) is fed back as a user message, up to
    ``max_retries`` times. With ``retry_temperature``, a retry samples at (at least) that
    temperature with the seed advanced by the attempt number: greedy decoding of a small model
    often repeats a wrong answer word for word despite the feedback. Retries stay
    reproducible, and their sampling parameters are part of the cache key. With
    ``retry_truncated=False`` an invalid answer that stopped at ``max_tokens`` is not retried
    (asking again with the same budget gets the same cut); its usage is marked ``truncated`` so
    the caller can salvage it or continue in a new request. Returns ``(value or None, last raw text)`` per request; ``usages``
    accumulate cost and every error, so nothing fails silently.
    """
    parsers = list(parse) if isinstance(parse, Sequence) else [parse] * len(requests)
    current = list(requests)
    out: list[tuple[Any, str | None]] = [(None, None)] * len(requests)
    pending = list(range(len(requests)))
    for attempt in range(max_retries + 1):
        if not pending:
            break
        results = llm.generate([current[i] for i in pending])
        again = []
        for i, res in zip(pending, results, strict=True):
            u = usages[i]
            u.requests += 1
            u.model_calls += 0 if res.cached else 1
            u.prompt_tokens += res.prompt_tokens
            u.completion_tokens += res.completion_tokens
            if res.error is not None:
                u.notes.append(f"attempt {attempt + 1}: backend error: {res.error}")
                again.append(i)
                continue
            u.truncated = bool(current[i].max_tokens) and res.completion_tokens >= current[i].max_tokens
            try:
                out[i] = (parsers[i](res.text), res.text)
            except (ValueError, ValidationError) as exc:
                msg = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
                u.notes.append(f"attempt {attempt + 1}: {msg}")
                out[i] = (None, res.text)
                if u.truncated and not retry_truncated:
                    u.notes.append(f"attempt {attempt + 1} stopped at max_tokens ({current[i].max_tokens}): not retried")
                    continue
                update: dict[str, Any] = {"messages": [
                    *current[i].messages, {"role": "assistant", "content": res.text},
                    {"role": "user", "content": f"That answer is invalid: {msg}. {hints[i] + ' ' if hints else ''}"
                                                "Reply with corrected JSON only."}]}
                if retry_temperature is not None:
                    update.update(retry_sampling(requests[i], attempt + 1, retry_temperature))
                current[i] = current[i].model_copy(update=update)
                again.append(i)
        pending = again
    return out
