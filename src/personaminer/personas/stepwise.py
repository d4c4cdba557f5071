"""Stepwise decoding of the persona model: one persona per call, over the memories not yet cited.

The one-call answer of :func:`personaminer.personas.model.persona_grammar` lets a persona cite
any memory, so "each memory supports at most one persona" is checked only after the answer is
written. Small models break it most of the time: base Qwen2.5-Coder-0.5B on 6 held-out AOL users
wrote 5 sets in which every persona cited the same memories (``[1..5]`` or ``[1..24]``), and
SmolLM2-135M failed the same way. Stepwise decoding makes such an answer impossible instead:

1. the assistant's answer is prefilled with ``{"personas": [`` and the model continues it
   (the server continues a final assistant message: llama.cpp's server does, see
   :attr:`personaminer.llm.base.LLM.continues_final_message`);
2. call *k* writes persona *k* under a grammar (:func:`step_grammar`) whose evidence numbers are
   the memories no earlier persona cited, increasing, leaving out at least as many as personas
   are still required (so the set can always reach ``min_personas``), followed by ``,`` (another
   persona: required below ``min_personas``), or ``]}`` (the end: allowed from
   ``min_personas`` on, forced at ``max_personas``);
3. the continuation is appended to the prefill and the next call continues from there; when a
   persona leaves no memory uncited the set is closed (a ``,`` becomes ``]}``, noted).

The answer is the concatenated text: one JSON object in the format of the one-call answer, so it
is parsed and validated the same way, stored as the raw answer, and trained on as one
completion. Every step is an ordinary :class:`~personaminer.llm.base.ChatRequest` (its
messages include the prefill and its grammar), so steps are cached and reproducible like any
call. The prompt is shared by the steps of a set and the server reuses its KV cache, so a set of
*K* personas costs about *K* short prompt extensions more than one call.

A chain fails when a step stops at the token budget (the set's ``max_tokens`` is shared by its
steps), the backend errors, or the text does not parse; it is then redone from the start, at
the retry temperature with the seed advanced, up to ``max_retries`` times (no error is fed back:
the grammar already rules out every error a message could name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from personaminer.llm.base import LLM, ChatRequest
from personaminer.llm.validated import Usage, retry_sampling
from personaminer.personas.model import evidence_rules, persona_rules

#: The text every stepwise answer starts with (json.dumps's separators, as the training targets).
PREFIX = '{"personas": ['

Close = Literal["more", "either", "end"]

_TAILS: dict[str, str] = {"more": '","', "either": '("," | "]" sp "}")', "end": '"]" sp "}"'}
_END = re.compile(r'\s*(,|\]\s*\})\s*$')


def step_grammar(unused: Sequence[int], *, reserve: int, close: Close) -> str:
    """GBNF of one step: a persona citing increasing numbers of ``unused`` (leaving at least
    ``reserve`` out), then ``,`` (``more``), ``]}`` (``end``) or either (``either``)."""
    rules = [f"root ::= sp persona sp {_TAILS[close]}", *persona_rules(), *evidence_rules(unused, reserve)]
    return "\n".join(rules) + "\n"


def plan_step(k: int, n_unused: int, min_personas: int, max_personas: int) -> tuple[int, Close]:
    """(reserve, close) for persona ``k`` (1-based) with ``n_unused`` memories uncited."""
    reserve = max(0, min_personas - k)
    if reserve >= n_unused:
        raise ValueError(f"persona {k}: {n_unused} memories left cannot support {reserve + 1} more personas")
    close: Close = "end" if k >= max_personas else "more" if k < min_personas else "either"
    return reserve, close


@dataclass
class _Chain:
    """One stepwise answer in progress."""

    base: ChatRequest
    attempt: int = 0
    text: str = PREFIX
    unused: list[int] = field(default_factory=list)
    k: int = 1
    spent: int = 0  # completion tokens of this attempt
    done: bool = False


def stepwise_answers(llm: LLM, requests: Sequence[ChatRequest], n: int, *, min_personas: int, max_personas: int,
                     parse: Callable[[str], Any], max_retries: int, usages: Sequence[Usage],
                     retry_temperature: float | None = None) -> list[tuple[Any, str | None]]:
    """Write one persona set per request, stepwise (see the module doc); ``(value or None, raw)``
    per request like :func:`personaminer.llm.validated.ask`, ``usages`` accumulating cost and
    every failure. ``min_personas`` is already capped at ``n``. The chains advance together, one
    step each per batch, so a backend with several slots decodes them in parallel."""
    if not getattr(llm, "continues_final_message", False):
        raise ValueError(f"stepwise decoding needs a backend that continues a final assistant message "
                         f"(llama.cpp's server, the embedded default); {llm.backend_name!r} does not say it does")
    out: list[tuple[Any, str | None]] = [(None, None)] * len(requests)
    chains = [_Chain(base=r, unused=list(range(1, n + 1))) for r in requests]

    def restart(i: int, why: str) -> None:
        c = chains[i]
        usages[i].notes.append(f"attempt {c.attempt + 1}: {why}")
        out[i] = (None, c.text if c.text != PREFIX else out[i][1])
        if c.attempt >= max_retries:
            c.done = True
            return
        c.attempt += 1
        c.text, c.unused, c.k, c.spent = PREFIX, list(range(1, n + 1)), 1, 0

    while active := [i for i, c in enumerate(chains) if not c.done]:
        batch, stepping = [], []
        for i in active:
            c = chains[i]
            try:
                reserve, close = plan_step(c.k, len(c.unused), min_personas, max_personas)
            except ValueError as exc:  # only when a backend ignored the grammar
                restart(i, str(exc))
                continue
            update: dict[str, Any] = {
                "messages": [*c.base.messages, {"role": "assistant", "content": c.text}],
                "grammar": step_grammar(c.unused, reserve=reserve, close=close), "json_schema": None,
                "max_tokens": max(1, c.base.max_tokens - c.spent)}
            if c.attempt and retry_temperature is not None:
                update.update(retry_sampling(c.base, c.attempt, retry_temperature))
            batch.append(c.base.model_copy(update=update))
            stepping.append(i)
        results = llm.generate(batch) if batch else []
        for i, req, res in zip(stepping, batch, results, strict=True):
            c, u = chains[i], usages[i]
            if c.k == 1:
                u.requests += 1
            u.model_calls += 0 if res.cached else 1
            u.prompt_tokens += res.prompt_tokens
            u.completion_tokens += res.completion_tokens
            c.spent += res.completion_tokens
            if res.error is not None:
                restart(i, f"step {c.k}: backend error: {res.error}")
                continue
            piece = res.text
            u.truncated = res.completion_tokens >= req.max_tokens
            end = _END.search(piece)
            try:
                if end is None:
                    raise ValueError("no ',' or ']}' after the persona")
                persona = json.loads(piece[:end.start()])
                cited = [int(e) for e in persona["evidence"]]
            except (ValueError, KeyError, TypeError):
                restart(i, f"step {c.k}: the persona does not parse"
                        + (f" (stopped at max_tokens, {c.base.max_tokens} for the set)" if u.truncated else ""))
                continue
            taken = set(cited)
            c.unused = [e for e in c.unused if e not in taken]
            closing = end.group(1) != ","
            if not closing and not c.unused:
                piece = piece[:end.start()] + "]}"
                u.notes.append(f"persona {c.k} cited the last uncited memories: the set was closed there")
                closing = True
            c.text += piece
            if not closing:
                c.k += 1
                continue
            c.done = True
            try:
                out[i] = (parse(c.text), c.text)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                c.done = False
                restart(i, f"the set is invalid: {exc}")
    return out
