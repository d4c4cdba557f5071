"""The hybrid ``llm`` mode: the embedder proposes boundaries, the LLM decides the uncertain ones
and writes one short summary per multi-step segment.

Per user-day, in three steps (docs/memories.md, "The hybrid mode"):

1. **Propose.** Between consecutive steps *i-1* and *i* (:mod:`personaminer.memories.steps`) a
   pause longer than ``gap_minutes`` is a *certain* boundary, as in the extractive mode. Otherwise
   the cosine similarity *s* of step *i*'s embedding to the mean of the previous ``context`` steps
   (never reaching back across a certain boundary) classifies it: ``s < split_below`` is a certain
   boundary, ``s >= same_above`` certainly the same intent, anything between is *uncertain*.
2. **Decide.** Each uncertain boundary becomes one yes/no question, read from the first token's
   logprobs: "do steps a-b and steps c-d serve the same intent?", where a-b and c-d are the runs
   on either side up to the neighbouring candidate boundaries. The questions of a window share its
   prompt prefix (the numbered steps), so the server's prompt cache processes the log once per
   window and each question adds only its own line. P(yes) < ``same_intent_threshold`` keeps
   the boundary; an unreadable answer (neither token among the top logprobs) falls back to the
   extractive rule (``s < min_similarity``) and the day's note says so.
3. **Summarize.** A one-step segment (one action, or a query with its clicks) gets a
   deterministic summary made of its own step, with no LLM. A longer segment gets one sentence of at
   most ``summary_words`` words, from that segment's steps only, constrained by a GBNF grammar
   (backends that ignore grammars are cut to the same bound). A summary that names actions of
   other segments (:func:`personaminer.memories.build.leaked_texts`) or cannot be read after the
   retries is replaced by the segment's extractive summary, and the note says so.

Every action lands in exactly one memory: segments are runs of whole steps that cover the day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from personaminer.llm.base import LLM, ChatRequest
from personaminer.llm.validated import Usage, ask
from personaminer.memories.segment import extractive_summary, pack_windows, spans
from personaminer.memories.steps import Step, render_step
from personaminer.prompts import load_prompt

if TYPE_CHECKING:
    import datetime as dt

    from personaminer.memories.build import MemoryConfig

BOUNDARY_PROMPT = "intent_boundary"
SUMMARY_PROMPT = "intent_summary"
#: At most this many steps of one segment are shown to the summary prompt (evenly spaced, in time order).
MAX_SUMMARY_STEPS = 30


def prompt_tag() -> str:
    """The prompts of the hybrid mode, as recorded on its memories and in its lineage."""
    b, s = load_prompt(BOUNDARY_PROMPT), load_prompt(SUMMARY_PROMPT)
    return f"{b.name}.v{b.version}+{s.name}.v{s.version}"


@dataclass
class Proposal:
    """The embedder's view of one day: per boundary (index *i* = between steps *i-1* and *i*, for
    ``1 <= i < n``) its class (``gap``, ``split``, ``same`` or ``ask``) and similarity."""

    kinds: list[str]
    sims: list[float]

    def certain_starts(self) -> list[int]:
        return [0] + [i for i, k in enumerate(self.kinds) if k in ("gap", "split")]


def propose(steps: Sequence[Step], vectors: np.ndarray, *, gap_minutes: float, split_below: float,
            same_above: float, context: int = 3) -> Proposal:
    """Classify every boundary of a day (pure; see the module docstring). Index 0 is unused."""
    kinds, sims = ["start"], [math.nan]
    last_certain = 0
    for i in range(1, len(steps)):
        gap = (steps[i].first.ts - steps[i - 1].actions[-1].ts).total_seconds() / 60
        recent = vectors[max(last_certain, i - context):i].mean(axis=0)
        norm = float(np.linalg.norm(recent))
        sim = float(vectors[i] @ recent / norm) if norm > 0 else 0.0
        sims.append(sim)
        if gap > gap_minutes:
            kind = "gap"
        elif sim < split_below:
            kind = "split"
        elif sim >= same_above:
            kind = "same"
        else:
            kind = "ask"
        kinds.append(kind)
        if kind in ("gap", "split"):
            last_certain = i
    return Proposal(kinds, sims)


def _steps_block(steps: Sequence[Step], redact: bool) -> str:
    return "\n".join(f"{k}. {render_step(s, redact_text=redact)}" for k, s in enumerate(steps, start=1))


def _range(a: int, b: int) -> str:
    """Steps ``a..b`` (1-based, inclusive) in words."""
    return f"step {a}" if a == b else f"steps {a} to {b}"


def question_text(a: tuple[int, int], b: tuple[int, int], last: str, first: str) -> str:
    """The yes/no question about two runs (1-based inclusive step numbers), naming the two steps that
    meet at the boundary (``last`` of run A, ``first`` of run B): the 1.5B model barely tells the
    runs apart by number alone (docs/memories.md, "Choosing the question")."""
    return (f"Run A is {_range(*a)}, ending with step {a[1]} ({last}); run B is {_range(*b)}, starting with "
            f"step {b[0]} ({first}). Do run A and run B serve the same intent (the same need, task or topic)? "
            "Answer Yes or No.")


def _plain(step: Step, redact: bool) -> str:
    """A step as its prompt line without the time, for naming it inside a question."""
    return render_step(step, redact_text=redact).rsplit(" (at ", 1)[0]


@dataclass
class Question:
    boundary: int  #: the boundary's index in the day (between steps boundary-1 and boundary)
    request: ChatRequest


@dataclass
class DayPlan:
    """One day through the hybrid mode: the questions, their answers, the segments, the cost."""

    day: dt.date
    steps: list[Step]
    vectors: np.ndarray
    proposal: Proposal
    questions: list[Question] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    spans: list[tuple[int, int, str, list[str], str]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    n_questions: int = 0
    n_summaries: int = 0
    undecided: int = 0  #: questions whose answer could not be read (extractive rule used)


def plan_questions(plan: DayPlan, config: MemoryConfig, redact: bool) -> None:
    """Build the day's yes/no requests, window by window (a window's questions share its prefix)."""
    prompt = load_prompt(BOUNDARY_PROMPT)
    kinds = plan.proposal.kinds
    n = len(plan.steps)
    candidates = [0] + [i for i in range(1, n) if kinds[i] != "same"] + [n]
    for ws, we in pack_windows(spans(plan.proposal.certain_starts(), n), config.window_steps):
        asks = [i for i in range(ws + 1, we) if kinds[i] == "ask"]
        if we < n and kinds[we] == "ask":  # a long certain segment cut at a window edge: asked below
            asks.append(we)
        for i in asks:
            lo, hi = ws, we
            if i == we:  # the boundary sits on the edge: a window of its own, centred on it
                half = config.window_steps // 2
                lo, hi = max(0, i - half), min(n, i + half)
            k = candidates.index(i)
            a0, b1 = max(candidates[k - 1], lo), min(candidates[k + 1], hi)
            text = question_text((a0 - lo + 1, i - lo), (i - lo + 1, b1 - lo), _plain(plan.steps[i - 1], redact),
                                 _plain(plan.steps[i], redact))
            plan.questions.append(Question(i, ChatRequest(
                messages=prompt.messages(n=hi - lo, day=plan.day.isoformat(),
                                         steps=_steps_block(plan.steps[lo:hi], redact), question=text),
                max_tokens=1, top_logprobs=20, seed=config.seed, prompt_name=prompt.name,
                prompt_version=prompt.version)))
    plan.n_questions = len(plan.questions)


def decide(plan: DayPlan, answers: Sequence[float], config: MemoryConfig) -> None:
    """Segment starts from the proposal and the answers (P(yes) per question, NaN if unreadable)."""
    p_of = {q.boundary: p for q, p in zip(plan.questions, answers, strict=True)}
    starts = [0]
    for i in range(1, len(plan.steps)):
        kind = plan.proposal.kinds[i]
        if kind in ("gap", "split"):
            starts.append(i)
        elif kind == "ask":
            p = p_of[i]
            if math.isnan(p):
                plan.undecided += 1
                if plan.proposal.sims[i] < config.min_similarity:
                    starts.append(i)
            elif is_boundary(plan.proposal.sims[i], p, config):
                starts.append(i)
    plan.starts = starts
    if plan.undecided:
        plan.usage.notes.append(f"{plan.undecided} boundary question(s) had no readable yes/no answer: "
                                "decided by the extractive rule")


def is_boundary(sim: float, p_yes: float, config: MemoryConfig) -> bool:
    """The decision on one asked boundary (``p_yes``: P(same intent) read from the answer)."""
    if config.boundary_weights is None:
        return p_yes < config.same_intent_threshold
    b0, b1, b2 = config.boundary_weights
    p = min(max(p_yes, 1e-4), 1 - 1e-4)
    return b0 + b1 * sim + b2 * math.log(p / (1 - p)) > 0


def step_summary(step: Step) -> str:
    """The deterministic summary of a one-step segment: the step as the prompts render it, without
    its time ("Searched "golf clubs" -> clicked golf.com.", "Rated 4/5: Heat (1995).")."""
    line = render_step(step)
    line = line.rsplit(" (at ", 1)[0]
    return line[:1].upper() + line[1:] + ("" if line.endswith((".", "!", "?")) else ".")


def summary_grammar(words: int) -> str:
    """GBNF: one line of 2 to ``words`` words (no quotes, no newline); the answer may stop after any."""
    return (f'root ::= w (" " w){{1,{words - 1}}}\n'
            'w ::= [^ \\t\\n\\r"]{1,40}\n')


def parse_summary(text: str, words: int) -> str:
    """The model's summary, checked: one line of 2 to ``words`` words (longer answers, from backends
    that ignore the grammar, are cut there); raises ``ValueError`` for anything shorter."""
    parts = " ".join(text.replace('"', " ").split()).split(" ")
    parts = [p for p in parts if p]
    if len(parts) < 2:
        raise ValueError("the summary must have at least two words")
    out = " ".join(parts[:words])
    return out if out.endswith((".", "!", "?")) else out.rstrip(",;:") + "."


def summary_requests(plan: DayPlan, config: MemoryConfig, redact: bool) -> list[tuple[int, ChatRequest]]:
    """One request per segment of two or more steps: (segment index, request)."""
    prompt = load_prompt(SUMMARY_PROMPT)
    out = []
    for k, (s, e) in enumerate(spans(plan.starts, len(plan.steps))):
        if e - s < 2:
            continue
        idx = list(range(s, e))
        if len(idx) > MAX_SUMMARY_STEPS:
            idx = sorted({s + round(j * (e - s - 1) / (MAX_SUMMARY_STEPS - 1)) for j in range(MAX_SUMMARY_STEPS)})
        block = _steps_block([plan.steps[j] for j in idx], redact)
        if len(idx) < e - s:
            block += f"\n({e - s - len(idx)} more steps of this run are not shown)"
        out.append((k, ChatRequest(
            messages=prompt.messages(day=plan.day.isoformat(), steps=block, words=config.summary_words),
            max_tokens=3 * config.summary_words + 8, temperature=config.temperature, seed=config.seed,
            grammar=summary_grammar(config.summary_words), prompt_name=prompt.name,
            prompt_version=prompt.version)))
    return out


def run_hybrid(plans: list[DayPlan], config: MemoryConfig, llm: LLM, redact: bool) -> None:
    """Questions, decisions and summaries for a user's days (two batched rounds of requests)."""
    from personaminer.memories.build import leaked_texts

    for plan in plans:
        plan_questions(plan, config, redact)
    questions = [q for plan in plans for q in plan.questions]
    answers = llm.p_yes_results([q.request for q in questions]) if questions else []
    it = iter(answers)
    for plan in plans:
        mine = [next(it) for _ in plan.questions]
        for _, res in mine:
            plan.usage.requests += 1
            plan.usage.model_calls += 0 if res.cached else 1
            plan.usage.prompt_tokens += res.prompt_tokens
            plan.usage.completion_tokens += res.completion_tokens
        decide(plan, [p for p, _ in mine], config)
    jobs = [(plan, k, req) for plan in plans for k, req in summary_requests(plan, config, redact)]
    usages = [Usage() for _ in jobs]
    words = config.summary_words
    texts = ask(llm, [r for _, _, r in jobs], lambda t: parse_summary(t, words), config.max_retries, usages,
                retry_temperature=config.retry_temperature) if jobs else []
    summary_of: dict[tuple[int, int], tuple[str, str]] = {}
    for (plan, k, _), u, (value, _) in zip(jobs, usages, texts, strict=True):
        plan.usage.add_counts(u)
        plan.n_summaries += 1
        if value is None:
            plan.usage.notes.append(f"the summary of segment {k + 1} failed after {u.requests} attempt(s): "
                                    "extractive summary")
            continue
        summary_of[(id(plan), k)] = (value, "llm")
    for plan in plans:
        out = []
        for k, (s, e) in enumerate(spans(plan.starts, len(plan.steps))):
            inside = plan.steps[s:e]
            if e - s == 1:
                out.append((s, e, step_summary(inside[0]), [], "action"))
                continue
            got = summary_of.get((id(plan), k))
            if got is not None:
                leaks = leaked_texts(got[0], inside, plan.steps[:s] + plan.steps[e:])
                if leaks:
                    plan.usage.notes.append(f"summary of steps {s + 1}-{e} named {len(leaks)} action(s) of other "
                                            f"segments (e.g. {leaks[0][:40]!r}): replaced by an extractive summary")
                    got = None
            if got is None:
                out.append((s, e, extractive_summary(inside, plan.vectors[s:e]), [], "extractive"))
            else:
                out.append((s, e, got[0], [], got[1]))
        plan.spans = out
