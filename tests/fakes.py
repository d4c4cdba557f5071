"""The one fake LLM of the test suite, and the scripts that make it play each stage's model.

:class:`ScriptedLLM` answers every request with the responder its prompt name selects in a
*script* (``{prompt_name: responder, None: fallback}``), or with one responder for all. A responder
gets ``(request, call_index)`` and returns the answer text, a :class:`ChatResult`, or a float: the
P(yes) of a yes/no judge, returned as first-token log-probabilities. The fake counts model calls,
keeps every request it saw, and can sleep per request or log each request's day (so a test can
kill a run mid-way and count what reached "the model").

The scripts below stand in for the segmenter (:func:`segmenter`), the persona model
(:func:`persona_model`, :func:`sampling_persona_model`), the cluster labeller
(:func:`grounded_labeller`), the claim splitter and judge (:func:`claim_splitter`) and the
reranker (:func:`yes_no`). Fakes live only in tests; every stage also has a real-model test.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from personaminer.llm.base import LLM, ChatRequest, ChatResult

Answer = str | ChatResult | float
Responder = Callable[[ChatRequest, int], Answer]
Script = dict[str | None, Responder]

_STEP = re.compile(r"^(\d+)\. ", re.MULTILINE)
_DAY = re.compile(r"steps one user took on (\d{4}-\d{2}-\d{2})")
_QUOTED = re.compile(r'"([^"]{3,80})"')
_CANDIDATE = re.compile(r"Candidate next interaction: (.*)\n")
_PROFILE = re.compile(r"^- (.*)$", re.M)


class ScriptedLLM(LLM):
    """A backend whose answers come from a script (see the module doc)."""

    backend_name = "scripted"

    def __init__(self, script: Script | Responder | None = None, *, model: str = "scripted",
                 delay: float = 0.0, log_path: Path | None = None) -> None:
        super().__init__()
        self.script: Script = script if isinstance(script, dict) else {None: script or _echo}
        self._model = model
        self.delay, self.log_path = delay, log_path
        self.seen: list[ChatRequest] = []

    @property
    def model_id(self) -> str:
        return self._model

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        out = []
        for req in requests:
            time.sleep(self.delay)
            self.seen.append(req)
            responder = self.script.get(req.prompt_name) or self.script.get(None)
            if responder is None:
                raise AssertionError(f"the script has no answer for prompt {req.prompt_name!r}")
            answer = responder(req, self.model_calls)
            self.model_calls += 1
            if self.log_path is not None:
                day = _DAY.search(req.messages[1]["content"] if len(req.messages) > 1 else "")
                with self.log_path.open("a") as fh:
                    fh.write(f"{day.group(1) if day else '?'}\n")
            out.append(_result(answer, req))
        return out


def _result(answer: Answer, req: ChatRequest) -> ChatResult:
    if isinstance(answer, ChatResult):
        return answer
    if isinstance(answer, float):
        p = min(max(answer, 1e-9), 1 - 1e-9)
        return ChatResult(texts=["Yes" if p >= 0.5 else "No"],
                          top_logprobs=[{"Yes": math.log(p), "No": math.log(1 - p)}])
    return ChatResult(texts=[answer], prompt_tokens=sum(len(m["content"]) for m in req.messages) // 4,
                      completion_tokens=max(1, len(answer) // 4))


def _echo(req: ChatRequest, i: int) -> str:
    return f"echo:{req.messages[-1]['content']}"


def user_text(req: ChatRequest) -> str:
    return req.messages[1]["content"]


def numbered_in(req: ChatRequest, tag: str) -> int:
    """How many numbered lines the prompt's ``<tag>`` block holds."""
    return len(_STEP.findall(user_text(req).split(f"<{tag}>")[1].split(f"</{tag}>")[0]))


# -- stage 1: the segmenter -------------------------------------------------------------------
def segmenter(size: int = 2, *, invalid_first: int = 0, always_invalid: bool = False, always_cut_off: bool = False,
              run_out_over: int | None = None, delay: float = 0.0, log_path: Path | None = None) -> ScriptedLLM:
    """Segments of ``size`` steps each; or invented numbers (the first ``invalid_first`` calls, or
    always), an answer cut off by the token limit, or one that runs out of tokens after
    ``run_out_over`` steps."""

    def answer(req: ChatRequest, calls: int) -> ChatResult:
        n = numbered_in(req, "log")
        retried = len(req.messages) > 2
        ran_out = False
        if always_invalid:  # nothing salvageable: every number is invented
            text = json.dumps({"segments": [{"start": n + 1, "end": n + 5, "summary": "invented", "topics": []}]})
        elif always_cut_off:  # a sound segment, an over-long summary, then cut off by the token limit
            text = json.dumps({"segments": [
                {"start": 1, "end": 1, "summary": "the first step", "topics": []},
                {"start": 2, "end": 2, "summary": "Second. " + "long " * 100, "topics": []}]})[:-2] + ', {"start": 3, "su'
        elif calls < invalid_first and not retried:
            text = json.dumps({"segments": [{"start": 1, "end": n + 5, "summary": "invented", "topics": []}]})
        elif run_out_over is not None and n > run_out_over:  # one-step segments, then the token budget ends
            ran_out = True
            text = json.dumps({"segments": [{"start": k, "end": k, "summary": f"step {k} alone", "topics": []}
                                            for k in range(1, run_out_over + 1)]})[:-2] + ', {"start": '
        else:
            text = json.dumps({"segments": [
                {"start": s, "end": min(s + size - 1, n), "summary": f"steps {s} to {min(s + size - 1, n)}",
                 "topics": ["test"]} for s in range(1, n + 1, size)]})
        return ChatResult(texts=[text], prompt_tokens=len(user_text(req)) // 4,
                          completion_tokens=req.max_tokens if ran_out else len(text) // 4)

    return ScriptedLLM({"intent_memories": answer}, model=f"fake-segmenter-{size}", delay=delay, log_path=log_path)


_RUNS = re.compile(r"Run A is steps? (\d+)(?: to (\d+))?, ending .*; run B is steps? (\d+)(?: to (\d+))?, starting")
_LOG_LINE = re.compile(r"^\d+\. (.*)$", re.MULTILINE)


def boundary_runs(req: ChatRequest) -> tuple[list[str], list[str]]:
    """The two runs' step lines a boundary question asks about."""
    text = user_text(req)
    m = _RUNS.search(text)
    assert m, "not a boundary question"
    a0, a1, b0, b1 = (int(g) if g else None for g in m.groups())
    lines = _LOG_LINE.findall(text.split("<log>")[1].split("</log>")[0])
    return lines[a0 - 1:(a1 or a0)], lines[b0 - 1:(b1 or b0)]  # type: ignore[operator]


def hybrid_memories(same: float | Callable[[ChatRequest], float] = 0.9, *,
                    summary: str | Callable[[ChatRequest], str] | None = None, model: str = "fake-hybrid"
                    ) -> ScriptedLLM:
    """The hybrid memory mode's two prompts: every boundary question answered with P(yes) ``same``
    (or ``same(request)``), every summary with ``summary`` (default: "Did N things." for the
    N steps shown)."""

    def ask(req: ChatRequest, i: int) -> float:
        return same(req) if callable(same) else same

    def summarize(req: ChatRequest, i: int) -> str:
        if callable(summary):
            return summary(req)
        return summary or f"Did {numbered_in(req, 'log')} things in a row."

    return ScriptedLLM({"intent_boundary": ask, "intent_summary": summarize}, model=model)


# -- stage 2: the persona model and the labellers ---------------------------------------------
def _label_echo(req: ChatRequest, i: int) -> str:
    """A cluster or single label that echoes the first memory it was shown."""
    block = user_text(req).split("<memories>")[1].split("</memories>")[0]
    first = block.strip().splitlines()[0].split("] ", 1)[-1]
    return json.dumps({"label": f"About {first[:30]}", "description": f"This group covers {numbered_in(req, 'memories')} "
                                                                     "memories."})


def persona_model(*, bad_numbers: int = 0, share: bool = False, model: str = "fake-persona") -> ScriptedLLM:
    """The persona model splits the memories in halves (``share``: the second persona also cites
    memory 1; ``bad_numbers``: the first calls, or all when negative, cite a memory that is not
    there); label prompts echo their first memory."""

    def answer(req: ChatRequest, calls: int) -> str:
        n = numbered_in(req, "memories")
        if calls < bad_numbers or bad_numbers < 0:
            return json.dumps({"personas": [{"label": "Ghost", "description": "Cites a memory that is not there.",
                                             "evidence": [n + 3]}]})
        half = max(1, n // 2)
        a, b = list(range(1, half + 1)), list(range(half + 1, n + 1)) or [1]
        if share:
            b = [1, *b]
        return json.dumps({"personas": [
            {"label": "First half", "description": f"Memories 1 to {half} of this user.", "evidence": a},
            {"label": "Second half", "description": "The other memories of this user.", "evidence": b}]})

    return ScriptedLLM({"persona_model": answer, None: _label_echo}, model=model)


def sampling_persona_model(vary: bool = True, fail_seeds: frozenset[int] = frozenset()) -> ScriptedLLM:
    """Two personas split at a point chosen by the request's seed (``vary=False``: the same split for
    every seed); samples whose seed is in ``fail_seeds`` answer with placeholders, every time."""

    def answer(req: ChatRequest, calls: int) -> str:
        n = numbered_in(req, "memories")
        if req.seed in fail_seeds:
            return json.dumps({"personas": [{"label": "...", "description": "...", "evidence": [1, 2]}]})
        cut = 1 + (int(req.seed or 0) % max(1, n - 1) if vary else 0)
        a, b = list(range(1, cut + 1)), list(range(cut + 1, n + 1))
        personas = [{"label": f"Part one {cut}", "description": "The first memories of this user.", "evidence": a}]
        if b:
            personas.append({"label": f"Part two {cut}", "description": "The later memories.", "evidence": b})
        return json.dumps({"personas": personas})

    return ScriptedLLM({"persona_model": answer}, model=f"fake-sampler-{vary}-{sorted(fail_seeds)}")


def grounded_labeller() -> ScriptedLLM:
    """Writes each description from its own cluster's real memory texts ("The user searched for X.
    The user also searched for Y."), so every original claim is grounded."""

    def answer(req: ChatRequest, calls: int) -> str:
        block = user_text(req).split("<memories>")[1].split("</memories>")[0]
        texts = list(dict.fromkeys(_QUOTED.findall(block)))
        first, second = texts[0], texts[1] if len(texts) > 1 else texts[0]
        return json.dumps({"label": first[:40], "description": f"The user searched for {first}. The user also "
                                                               f"searched for {second}."})

    return ScriptedLLM(answer, model="grounded-labeller")


# -- quality: the claim splitter and judge ----------------------------------------------------
def claim_splitter(answers: dict[str, list[str]], yes_word: str = "golf") -> ScriptedLLM:
    """Claim-split requests answered from ``answers`` (keyed by a word of the description); the judge
    says Yes (P = 0.95) to claims holding ``yes_word`` and No (P(yes) = 0.05) to the rest."""

    def split(req: ChatRequest, calls: int) -> str:
        text = user_text(req).split("<description>")[1]
        return json.dumps({"claims": answers[next(k for k in answers if k in text)]})

    def judge(req: ChatRequest, calls: int) -> float:
        return 0.95 if yes_word in user_text(req).split("Claim: ")[1] else 0.05

    return ScriptedLLM({"claim_split": split, "claim_judge": judge}, model="splitter")


# -- evaluation: the reranker -----------------------------------------------------------------
def yes_no(p: Callable[[str, list[str]], float]) -> ScriptedLLM:
    """The reranker's question answered with P(yes) = ``p(candidate, profile lines)``; ``asked`` lists
    the candidates in the order they were asked."""
    llm: Any = None

    def answer(req: ChatRequest, calls: int) -> float:
        assert req.max_tokens == 1 and req.top_logprobs >= 20
        text = req.messages[-1]["content"]
        cand = _CANDIDATE.search(text).group(1)  # type: ignore[union-attr]
        llm.asked.append(cand)
        return float(p(cand, _PROFILE.findall(text)))

    llm = ScriptedLLM({"rerank": answer}, model="fake-yes-no")
    llm.asked = []
    return llm
