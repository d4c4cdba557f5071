"""Stage 1, the pure part: one user's actions in, that user's intent memories out.

:func:`build_memories` takes a user's time-ordered actions and returns one
:class:`DayResult` per processed day. It holds no database handle and no global state, so a
distributed engine can map it over users; :mod:`personaminer.memories.run` is the local driver.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from personaminer.embed import Embedder
from personaminer.llm.base import LLM, ChatRequest, extract_json_text
from personaminer.llm.validated import Usage, ask
from personaminer.memories import hybrid
from personaminer.memories.segment import boundaries, extractive_summary, pack_windows, spans
from personaminer.memories.steps import Step, make_steps, render_step
from personaminer.prompts import load_prompt
from personaminer.schema import Action, IntentMemory, memory_id

log = logging.getLogger(__name__)

PROMPT_NAME = "intent_memories"


@dataclass
class MemoryConfig:
    """Settings of the intent-memory stage (recorded with every run).

    Attributes
    ----------
    mode: ``llm`` (the method, hybrid: the embedder proposes boundaries, the LLM decides the
        uncertain ones with yes/no questions and writes one short summary per multi-step
        segment; :mod:`personaminer.memories.hybrid`), ``llm-segment`` (the LLM segments and
        summarizes the whole day in one JSON answer: the first version of the method, kept for
        comparison), ``extractive`` (time gaps and embedding shifts, summaries made of the
        segment's own texts; no LLM) or ``actions`` (no hierarchy: one memory per step, summarized
        by the step itself; the ablation's "raw actions").
    memory_set: name under which the memories are stored (default: the mode), so several
        segmentations can live in one workspace.
    max_days: process at most this many of each user's days, the most recent first.
    gap_minutes: a pause longer than this always starts a new segment (pre-segmentation).
    min_similarity: an embedding shift below this cosine similarity starts a new segment.
    window_steps: at most this many steps in one LLM request; longer days are cut into
        windows at pre-segment boundaries.
    split_below, same_above: (``llm`` mode) a boundary whose embedding similarity is below
        ``split_below`` is certain, one at or above ``same_above`` certainly not a boundary; the
        LLM is asked about those between.
    same_intent_threshold: (``llm`` mode, without ``boundary_weights``) an asked boundary stays
        when P(yes, same intent) is below this.
    boundary_weights: (``llm`` mode) ``(b0, b1, b2)``: an asked boundary stays when
        ``b0 + b1 * s + b2 * logit(P(yes))`` is positive (the log-odds of a boundary, from the
        similarity *s* and the model's answer; fitted on development splices, docs/memories.md).
        ``None`` decides by the answer alone (``same_intent_threshold``).
    summary_words: (``llm`` mode) at most this many words in an LLM summary.
    max_retries: re-asks (with the error fed back) before a window falls back to extractive.
    retry_temperature: retries sample at this temperature (seed advanced per attempt), since a
        greedy small model tends to repeat its invalid answer; ``None`` keeps retries greedy.
    redact: strip personal identifiers before prompting; ``None`` means on exactly when the
        backend is a remote server.
    view: which of a user's actions the memories are built from: ``all`` (default), or
        ``history`` (only actions before the user's split cutoff; what evaluation requires, so
        the future it predicts was never read). Recorded in the set's lineage.
    """

    mode: Literal["llm", "llm-segment", "extractive", "actions"] = "llm"
    memory_set: str | None = None
    max_days: int | None = None
    gap_minutes: float = 30.0
    min_similarity: float = 0.25
    window_steps: int = 30
    split_below: float = 0.2
    same_above: float = 0.32
    same_intent_threshold: float = 0.5
    boundary_weights: tuple[float, float, float] | None = (0.771, -2.529, -0.554)
    summary_words: int = 12
    max_retries: int = 2
    retry_temperature: float | None = 0.7
    max_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    redact: bool | None = None
    prompt_version: str | None = None
    view: Literal["all", "history"] = "all"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not self.split_below <= self.same_above:
            raise ValueError("split_below must not exceed same_above")
        if self.summary_words < 2:
            raise ValueError("summary_words must be at least 2")
        if self.view not in ("all", "history"):
            raise ValueError(f"view must be 'all' or 'history', not {self.view!r}")
        if self.max_days is not None and self.max_days < 1:
            raise ValueError("max_days must be at least 1 (or None for all days)")
        if self.window_steps < 2:
            raise ValueError("window_steps must be at least 2")
        if self.memory_set is None:
            self.memory_set = self.mode

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def output_config(self) -> dict[str, Any]:
        """What changes the memories (the lineage config): everything but the set's name, and in
        ``extractive`` mode nothing that only the LLM reads, and in the other modes nothing that only
        the hybrid mode reads (so the fingerprints of sets built before it existed still hold)."""
        d = self.to_dict()
        d.pop("memory_set")
        if self.mode != "llm":
            for k in HYBRID_ONLY:
                d.pop(k)
        else:
            d.pop("prompt_version")  # the hybrid's prompts are recorded in the lineage's prompt field
        if self.mode in ("extractive", "actions"):
            for k in ("window_steps", "max_retries", "retry_temperature", "max_tokens", "temperature", "seed",
                      "redact", "prompt_version"):
                d.pop(k)
        return d

    @property
    def uses_llm(self) -> bool:
        return self.mode in ("llm", "llm-segment")


MODES = ("llm", "llm-segment", "extractive", "actions")
HYBRID_ONLY = ("split_below", "same_above", "same_intent_threshold", "boundary_weights", "summary_words")


class Segment(BaseModel):
    """One intent as the model reports it (1-based, inclusive step numbers)."""

    start: int = Field(ge=1)
    end: int = Field(ge=1)
    summary: str = Field(min_length=3, max_length=400)
    topics: list[str] = Field(default_factory=list, max_length=3)


class Segmentation(BaseModel):
    """The model's whole answer for one window."""

    segments: list[Segment] = Field(min_length=1)


@dataclass
class DayResult:
    """What processing one user-day produced and cost."""

    user_id: str
    day: dt.date
    n_actions: int
    memories: list[IntentMemory]
    status: str = "ok"  # ok | repaired | fallback
    note: str | None = None
    llm_requests: int = 0
    llm_model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    questions: int = 0  #: yes/no boundary questions asked (hybrid mode)
    summaries: int = 0  #: LLM summaries requested (hybrid mode)


@dataclass
class _Window:
    day: dt.date
    steps: list[Step]
    vectors: np.ndarray
    request: ChatRequest | None = None
    spans: list[tuple[int, int, str, list[str], str]] = field(default_factory=list)  # start, end, summary, topics, by
    usage: Usage = field(default_factory=Usage)
    failed: bool = False


def days_of(actions: Sequence[Action]) -> dict[dt.date, list[Action]]:
    """A user's actions by UTC calendar day, in time order."""
    out: dict[dt.date, list[Action]] = {}
    for a in actions:
        out.setdefault(a.ts.date(), []).append(a)
    return out


def select_days(days: Sequence[dt.date], max_days: int | None) -> list[dt.date]:
    """The days to process: the ``max_days`` most recent ones (all when None), in time order."""
    chosen = sorted(days, reverse=True)[:max_days] if max_days else list(days)
    return sorted(chosen)


def build_memories(actions: Sequence[Action], config: MemoryConfig, *, embedder: Embedder, llm: LLM | None = None,
                   skip_days: set[dt.date] | frozenset[dt.date] = frozenset(), redact: bool = False
                   ) -> list[DayResult]:
    """Intent memories of one user: a pure function of the user's actions and the models.

    ``skip_days`` are days already done (resuming); they still count towards ``max_days``.
    """
    if not actions:
        return []
    user_id = actions[0].user_id
    by_day = days_of(actions)
    todo = [d for d in select_days(list(by_day), config.max_days) if d not in skip_days]
    windows: list[_Window] = []
    if config.mode == "llm":
        if llm is None:
            raise ValueError("mode 'llm' needs an llm")
        return _hybrid(user_id, todo, by_day, config, embedder, llm, redact)
    for day in todo:
        steps = make_steps(by_day[day])
        vectors = embedder.encode([s.text for s in steps])
        starts = boundaries(steps, vectors, gap_minutes=config.gap_minutes, min_similarity=config.min_similarity)
        if config.mode == "actions":
            w = _Window(day, steps, vectors)
            w.spans = [(i, i + 1, hybrid.step_summary(st), [], "action") for i, st in enumerate(steps)]
            windows.append(w)
        elif config.mode == "extractive":
            w = _Window(day, steps, vectors)
            w.spans = [(s, e, extractive_summary(steps[s:e], vectors[s:e]), [], "extractive")
                       for s, e in spans(starts, len(steps))]
            windows.append(w)
        else:
            for s, e in pack_windows(spans(starts, len(steps)), config.window_steps):
                windows.append(_Window(day, steps[s:e], vectors[s:e]))
    if config.mode == "llm-segment":
        if llm is None:
            raise ValueError("mode 'llm-segment' needs an llm")
        _segment_with_llm(windows, config, llm, redact)
    return _assemble(user_id, todo, by_day, windows, config, llm, redact)


def model_schema(n: int) -> dict[str, Any]:
    """The JSON schema sent to the model for ``n`` steps.

    Kept free of string-length limits: llama.cpp turns ``maxLength`` into a long grammar
    repetition that makes sampling orders of magnitude slower. Step numbers carry their
    bounds (backends that honour them cannot invent a number); :class:`Segmentation` and
    :func:`check_segmentation` validate everything afterwards either way.
    """
    number = {"type": "integer", "minimum": 1, "maximum": n}
    segment = {"type": "object", "properties": {
        "start": number, "end": number, "summary": {"type": "string"},
        "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
        "required": ["start", "end", "summary", "topics"]}
    return {"type": "object", "properties": {"segments": {"type": "array", "items": segment, "minItems": 1}},
            "required": ["segments"]}


MAX_CONTINUATIONS = 3


def _extractive_spans(steps: list[Step], vectors: np.ndarray, config: MemoryConfig, offset: int = 0
                      ) -> list[tuple[int, int, str, list[str], str]]:
    """Extractive segmentation of ``steps`` (time gap, embedding shift), spans shifted by ``offset``."""
    starts = boundaries(steps, vectors, gap_minutes=config.gap_minutes, min_similarity=config.min_similarity)
    return [(offset + s, offset + e, extractive_summary(steps[s:e], vectors[s:e]), [], "extractive")
            for s, e in spans(starts, len(steps))]


def _segment_with_llm(windows: list[_Window], config: MemoryConfig, llm: LLM, redact: bool, depth: int = 0) -> None:
    prompt = load_prompt(PROMPT_NAME, config.prompt_version)
    for w in windows:
        schema = model_schema(len(w.steps))
        lines = "\n".join(f"{i}. {render_step(s, redact_text=redact)}" for i, s in enumerate(w.steps, start=1))
        w.request = ChatRequest(
            messages=prompt.messages(n=len(w.steps), day=w.day.isoformat(), steps=lines),
            temperature=config.temperature, seed=config.seed, max_tokens=config.max_tokens, json_schema=schema,
            prompt_name=prompt.name, prompt_version=prompt.version)
    answers = ask(llm, [w.request for w in windows],  # type: ignore[misc]
                  [_parser(len(w.steps)) for w in windows], config.max_retries, [w.usage for w in windows],
                  hints=[f"The segments must cover steps 1 to {len(w.steps)} exactly once, in order." for w in windows],
                  retry_temperature=config.retry_temperature, retry_truncated=False)
    pending = []
    tails: list[tuple[_Window, int, _Window]] = []
    for w, (value, last_text) in zip(windows, answers, strict=True):
        if value is None and last_text is not None:
            value = salvage_segmentation(last_text, len(w.steps))
        if value is None:
            pending.append(w)
            continue
        w.spans, repairs = value
        w.usage.notes.extend(repairs)
        last = w.spans[-1]
        if w.usage.truncated and depth < MAX_CONTINUATIONS and last[4] == "gap" and last[0] > 0:
            # the answer ran out of tokens: the steps it never reached go to a new request
            tails.append((w, last[0], _Window(w.day, w.steps[last[0]:], w.vectors[last[0]:])))
    if tails:
        _segment_with_llm([t for _, _, t in tails], config, llm, redact, depth + 1)
        for w, start, tail in tails:
            w.spans = w.spans[:-1] + [(s + start, e + start, summ, topics, by) for s, e, summ, topics, by in tail.spans]
            w.usage.notes.append(f"steps {start + 1}-{len(w.steps)} were continued in a new request")
            w.usage.notes.extend(f"(continuation) {n}" for n in tail.usage.notes)
            w.usage.add_counts(tail.usage)
            w.failed = w.failed or tail.failed
    for w in pending:  # still failing: keep coverage with extractive memories and say so
        w.failed = True
        w.spans = _extractive_spans(w.steps, w.vectors, config)
        log.warning("LLM segmentation failed for %s after %d attempts; extractive fallback", w.day, w.usage.requests)


def _parser(n: int) -> Callable[[str], tuple[list[tuple[int, int, str, list[str], str]], list[str]]]:
    def parse(text: str) -> tuple[list[tuple[int, int, str, list[str], str]], list[str]]:
        return check_segmentation(Segmentation.model_validate_json(extract_json_text(text)), n)

    return parse


class SegmentationError(ValueError):
    """A segmentation that cannot be repaired deterministically (the model is asked again)."""


def check_segmentation(answer: Segmentation, n: int) -> tuple[list[tuple[int, int, str, list[str], str]], list[str]]:
    """Validate a model's segmentation of ``n`` steps; repair what is safe to repair.

    Returns 0-based ``[start, end)`` spans with summary, topics and who wrote the summary, and
    the repairs made. Raises :class:`SegmentationError` for numbers outside ``1..n`` or a
    start after its end (invented or garbled numbers: the model must answer again).
    Repairs: segments are sorted; an overlap is cut from the later segment (dropped if
    nothing is left); a gap, including before the first or after the last segment, becomes its
    own memory with an extractive summary.
    """
    if n == 1:  # one step: the only valid segmentation is [1, 1]; keep the first summary
        first = answer.segments[0]
        fixed = [] if (first.start, first.end) == (1, 1) else ["one step: segment numbers set to 1-1"]
        return [(0, 1, first.summary.strip(), [t.strip() for t in first.topics if t.strip()][:3], "llm")], fixed
    for k, seg in enumerate(answer.segments, start=1):
        if seg.start > n or seg.end > n:
            raise SegmentationError(f"segment {k} cites step {max(seg.start, seg.end)}, but there are only {n} steps")
        if seg.start > seg.end:
            raise SegmentationError(f"segment {k} starts at {seg.start} after its end {seg.end}")
    out: list[tuple[int, int, str, list[str], str]] = []
    repairs: list[str] = []
    covered = 0
    for seg in sorted(answer.segments, key=lambda s: (s.start, s.end)):
        start, end = seg.start - 1, seg.end
        if start < covered:
            repairs.append(f"overlap: steps {start + 1}-{covered} cut from a later segment")
            start = covered
            if start >= end:
                repairs.append("a segment fully inside another was dropped")
                continue
        if start > covered:
            repairs.append(f"gap: steps {covered + 1}-{start} got an extractive summary")
            out.append((covered, start, "", [], "gap"))
        out.append((start, end, seg.summary.strip(), [t.strip() for t in seg.topics if t.strip()][:3], "llm"))
        covered = end
    if covered < n:
        repairs.append(f"gap: steps {covered + 1}-{n} got an extractive summary")
        out.append((covered, n, "", [], "gap"))
    return out, repairs


_SEGMENT_START = re.compile(r'\{\s*"start"')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MAX_SUMMARY = Segment.model_fields["summary"].metadata[-1].max_length


def _short_summary(text: str) -> str:
    """At most two sentences and the schema's length limit, cut at a word boundary."""
    text = " ".join(str(text).split())
    text = " ".join(_SENTENCE_END.split(text)[:2])
    if len(text) > _MAX_SUMMARY:
        text = text[: _MAX_SUMMARY - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return text


def salvage_segmentation(text: str, n: int) -> tuple[list[tuple[int, int, str, list[str], str]], list[str]] | None:
    """Last resort after the retries: keep what is sound in the model's final answer.

    Deterministic and conservative. Salvaged: an answer cut off by the token limit keeps its
    *complete* segment objects, and a summary over the schema's length is cut to two sentences.
    Not salvaged (returns ``None``, the window falls back to extractive): an answer with any
    step number outside ``1..n`` or a reversed segment. A number beyond ``n`` means the model's
    numbering has drifted (a small model copying the ``1-2`` of an example numbers one-step
    segments ``1-2, 3-4, ...``), so its summaries no longer sit on the right steps; clipping
    them would store unfaithful memories. What is kept goes through :func:`check_segmentation`,
    so overlaps are cut and gaps get extractive summaries.
    """
    decoder = json.JSONDecoder()
    found: list[Segment] = []
    cut = 0
    for match in _SEGMENT_START.finditer(text):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
            start, end = int(obj["start"]), int(obj["end"])
            summary = str(obj["summary"])
            topics = [str(t) for t in obj.get("topics") or []][:3]
        except (ValueError, KeyError, TypeError):
            continue
        if not 1 <= start <= end <= n:
            return None
        if len(summary.strip()) < 3:
            continue
        short = _short_summary(summary)
        cut += short != " ".join(summary.split())
        found.append(Segment(start=start, end=end, summary=short, topics=topics))
    if not found:
        return None
    notes = [f"salvaged {len(found)} complete segment(s) from the last answer"]
    if cut:
        notes.append(f"{cut} over-long summary(ies) cut to two sentences")
    spans_, repairs = check_segmentation(Segmentation(segments=found), n)
    return spans_, notes + repairs


MIN_LEAK_CHARS = 6


def leaked_texts(summary: str, inside: Sequence[Step], outside: Sequence[Step]) -> list[str]:
    """Action texts of steps *outside* a segment that its summary names verbatim (case-insensitive).

    A text that also occurs inside the segment (or within one of its texts), or is shorter than
    ``MIN_LEAK_CHARS``, does not count. A summary that names other segments' actions describes more than its evidence:
    the 1.5B model often wrote the whole Instacart basket into the summary of a one-item segment.
    """
    low = summary.casefold()
    mine = {a.text.strip().casefold() for st in inside for a in st.actions}
    found = []
    for st in outside:
        for a in st.actions:
            t = a.text.strip().casefold()
            if len(t) >= MIN_LEAK_CHARS and t in low and not any(t in m for m in mine) and a.text not in found:
                found.append(a.text)
    return found


def _split_gaps(w: _Window, config: MemoryConfig) -> list[tuple[int, int, str, list[str], str]]:
    """The window's spans with every repaired gap cut by the extractive rule (time gap,
    embedding shift) and summarized extractively: a long gap is not one memory. An LLM summary
    that names actions of other segments (:func:`leaked_texts`) is replaced by the extractive
    summary of its own steps, and the window's notes say so."""
    out = []
    for start, end, summary, topics, by in w.spans:
        if by == "llm":
            leaks = leaked_texts(summary, w.steps[start:end], w.steps[:start] + w.steps[end:])
            if leaks:
                w.usage.notes.append(f"summary of steps {start + 1}-{end} named {len(leaks)} action(s) of other "
                                     f"segments (e.g. {leaks[0][:40]!r}): replaced by an extractive summary")
                out.append((start, end, extractive_summary(w.steps[start:end], w.vectors[start:end]), [],
                            "extractive"))
                continue
        if by != "gap":
            out.append((start, end, summary, topics, by))
            continue
        out.extend(_extractive_spans(w.steps[start:end], w.vectors[start:end], config, offset=start))
    return out


def _memory(config: MemoryConfig, user_id: str, day: dt.date, position: int, steps: list[Step], summary: str,
            topics: list[str], by: str, *, model: str | None, prompt: str | None, redact: bool) -> IntentMemory:
    """One memory over consecutive steps: the one place its id, span and lineage are set, for every mode."""
    memory_set = config.memory_set or config.mode
    ids = [aid for st in steps for aid in st.action_ids]
    return IntentMemory(
        memory_id=memory_id(memory_set, user_id, ids), memory_set=memory_set, user_id=user_id, day=day,
        position=position, start_ts=steps[0].first.ts, end_ts=steps[-1].actions[-1].ts, action_ids=ids,
        summary=summary, topics=topics, mode=config.mode, summary_by=by, model=model, prompt=prompt,
        redacted=redact)


def _assemble(user_id: str, todo: list[dt.date], by_day: dict[dt.date, list[Action]], windows: list[_Window],
              config: MemoryConfig, llm: LLM | None, redact: bool) -> list[DayResult]:
    model = llm.model_id if (llm is not None and config.uses_llm) else None
    prompt = None
    if config.mode == "llm-segment":
        p = load_prompt(PROMPT_NAME, config.prompt_version)
        prompt = f"{p.name}.v{p.version}"
    results = []
    for day in todo:
        ws = [w for w in windows if w.day == day]
        memories: list[IntentMemory] = []
        notes: list[str] = []
        for w in ws:
            final_spans = _split_gaps(w, config)  # may add notes
            notes.extend(w.usage.notes)
            for start, end, summary, topics, by in final_spans:
                memories.append(_memory(config, user_id, day, len(memories), w.steps[start:end], summary, topics,
                                        by, model=model, prompt=prompt, redact=redact))
        failed = any(w.failed for w in ws)
        repaired = any(w.usage.notes for w in ws)
        results.append(DayResult(
            user_id=user_id, day=day, n_actions=len(by_day[day]), memories=memories,
            status="fallback" if failed else ("repaired" if repaired and config.uses_llm else "ok"),
            note="; ".join(notes) or None,
            llm_requests=sum(w.usage.requests for w in ws), llm_model_calls=sum(w.usage.model_calls for w in ws),
            prompt_tokens=sum(w.usage.prompt_tokens for w in ws),
            completion_tokens=sum(w.usage.completion_tokens for w in ws)))
    return results


def _hybrid(user_id: str, todo: list[dt.date], by_day: dict[dt.date, list[Action]], config: MemoryConfig,
            embedder: Embedder, llm: LLM, redact: bool) -> list[DayResult]:
    """The hybrid ``llm`` mode over a user's days (:mod:`personaminer.memories.hybrid`)."""
    plans = []
    for day in todo:
        steps = make_steps(by_day[day])
        vectors = embedder.encode([s.text for s in steps])
        proposal = hybrid.propose(steps, vectors, gap_minutes=config.gap_minutes, split_below=config.split_below,
                                  same_above=config.same_above)
        plans.append(hybrid.DayPlan(day, steps, vectors, proposal))
    hybrid.run_hybrid(plans, config, llm, redact)
    prompt = hybrid.prompt_tag()
    results = []
    for plan in plans:
        memories = []
        for start, end, summary, topics, by in plan.spans:
            memories.append(_memory(config, user_id, plan.day, len(memories), plan.steps[start:end], summary,
                                    topics, by, model=llm.model_id, prompt=prompt, redact=redact))
        u = plan.usage
        results.append(DayResult(
            user_id=user_id, day=plan.day, n_actions=len(by_day[plan.day]), memories=memories,
            status="repaired" if u.notes else "ok", note="; ".join(u.notes) or None, llm_requests=u.requests,
            llm_model_calls=u.model_calls, prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens,
            questions=plan.n_questions, summaries=plan.n_summaries))
    return results
