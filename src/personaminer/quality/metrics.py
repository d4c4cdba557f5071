"""Persona-set quality metrics and their registry.

Each metric declares what it needs (``embeddings``, ``judge``) in the spirit of RecBole's
metric registry, and scores one persona set from a :class:`SetContext`. Definitions, ranges and
limits are in ``docs/quality.md``; the formulas below are the implementation of record.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class PersonaView:
    persona_id: str
    label: str
    description: str
    evidence: list[str]


@dataclass
class SetContext:
    """Everything a metric may read about one persona set (filled by the scorer)."""

    set_id: str
    user_id: str
    personas: list[PersonaView]
    memory_ids: list[str]  # all the user's memories in the set's memory set
    memory_vectors: np.ndarray  # aligned with memory_ids, L2-normalised
    persona_vectors: np.ndarray  # embedded "label. description", one row per persona
    reference_vectors: np.ndarray  # seeded sample of other users' memories (for one-persona sets)
    claim_verdicts: list[dict[str, Any]] = field(default_factory=list)  # filled by the truthfulness metric
    label_vectors: np.ndarray | None = None  # embedded labels alone, one row per persona
    description_vectors: np.ndarray | None = None  # embedded descriptions alone
    background_vectors: np.ndarray | None = None  # the seeded sample of other users' memories (every set)
    memory_text: dict[str, str] | None = None  # memory id -> "[day] summary" (filled by the scorer)

    def index(self) -> dict[str, int]:
        return {m: i for i, m in enumerate(self.memory_ids)}


class Metric:
    """A registered quality term. ``score`` returns set-level values and per-persona values."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    higher_is_better: ClassVar[bool] = True

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        raise NotImplementedError


REGISTRY: dict[str, type[Metric]] = {}


def register(cls: type[Metric]) -> type[Metric]:
    REGISTRY[cls.name] = cls
    return cls


#: Words that end with a period without ending a sentence ("Mr. Holland's Opus", "St. Elmo's Fire").
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "prof", "mt", "ft", "no", "vol", "etc",
                           "e.g", "i.e", "approx", "inc", "ltd", "co", "dept"})


def split_claims(description: str) -> list[str]:
    """Atomic claims of a description: its sentences (split after ``.``, ``!``, ``?`` before a capital,
    a digit or a quote; not after an abbreviation such as "Mr." or a single initial such as "J.").
    Before scores/6 an abbreviation split a claim in two: a MovieLens persona's "... 'Mr. Holland's
    Opus' ..." was judged as "... 'Mr." and "Holland's Opus' ..."."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", " ".join(description.split()))
    merged: list[str] = []
    for part in parts:
        if merged:
            last = merged[-1].rsplit(" ", 1)[-1].lstrip("\"'(").lower()
            if last.endswith(".") and (last[:-1] in ABBREVIATIONS or (len(last) == 2 and last[0].isalpha())):
                merged[-1] = f"{merged[-1]} {part}"
                continue
        merged.append(part)
    return [p.strip() for p in merged if len(p.strip()) > 3]


@register
class Cohesion(Metric):
    """How much tighter each persona's memories are than the user's memories as a whole.

    For each assigned memory m: a(m) = mean cosine similarity to the other memories of its
    persona; u(m) = mean similarity to all of the user's other memories. ``cohesion_raw`` is the
    mean of a(m) - u(m) over assigned memories (a memory cited by several personas counts once
    per persona); ``cohesion`` maps it to [0, 1] as (x + 1) / 2.

    Why not the plain a(m) - b(m) (b = mean similarity to the user's *other* personas'
    memories, or to other users' memories for a one-persona set)? Because b changes meaning
    between one persona and several: merging all of a user's memories into one persona was
    scored *higher* than the user's real clusters for some users (for example 0.586 -> 0.664 on a
    real AOL user in the sanity suite), since other users' memories are far less similar than
    the user's own. With u(m) written as w*a(m) + (1 - w)*b(m), where w is the share of the
    user's other memories inside m's persona, a(m) - u(m) = (1 - w) * (a(m) - b(m)): the same
    sign as the plain version, weighted by how much of the user lies outside the persona, and
    exactly 0 for a persona holding everything. The plain version is still reported as
    ``cohesion_ab`` (with the seeded sample of other users' memories for one-persona sets).
    Singleton personas: a(m) is undefined; we set a(m) = u(m) (and = b(m) in ``cohesion_ab``),
    so they add 0, and report how many there are.
    """

    name = "cohesion"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        idx = ctx.index()
        groups = [[idx[e] for e in p.evidence if e in idx] for p in ctx.personas]
        x = ctx.memory_vectors
        sims = x @ x.T
        n = len(x)
        gains, plain, per = [], [], {}
        singletons = 0
        for k, g in enumerate(groups):
            others = [i for j, h in enumerate(groups) if j != k for i in h if i not in g]
            pg = []
            for i in g:
                u = float((sims[i].sum() - sims[i, i]) / (n - 1)) if n > 1 else 0.0
                rest = [j for j in g if j != i]
                if others:
                    b = float(sims[i, others].mean())
                elif len(ctx.reference_vectors):
                    b = float((ctx.reference_vectors @ x[i]).mean())
                else:
                    b = 0.0
                a = float(sims[i, rest].mean()) if rest else None
                pg.append((a if a is not None else u) - u)
                plain.append((a if a is not None else b) - b)
            singletons += len(g) == 1
            gains.extend(pg)
            per[ctx.personas[k].persona_id] = {"cohesion": float(np.mean(pg)) if pg else math.nan}
        if not gains:
            return {"cohesion_raw": math.nan, "cohesion": math.nan, "cohesion_ab": math.nan,
                    "singleton_personas": float(singletons)}, per
        raw = float(np.mean(gains))
        return {"cohesion_raw": raw, "cohesion": min(1.0, max(0.0, (raw + 1) / 2)),
                "cohesion_ab": float(np.mean(plain)), "singleton_personas": float(singletons)}, per


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of ``relevant`` items when ranked by ``scores`` (descending; ties broken by index)."""
    order = np.argsort(-scores, kind="stable")
    hits, total = 0, 0.0
    for rank, i in enumerate(order, start=1):
        if relevant[i]:
            hits += 1
            total += hits / rank
    return total / max(1, int(relevant.sum()))


@register
class Alignment(Metric):
    """Does the persona's description rank its own evidence first among the user's memories, better
    than chance?

    AP(P) is the average precision of E(P) when the user's memories are ranked by cosine
    similarity to the embedded description (``label. description`` until ``scores/5``, and still
    where a context has no description vectors); its chance level is r = |E| / N (the
    expected AP of a random ranking, to first order). alignment(P) = max(0, (AP - r) / (1 - r)),
    0 when E is every memory (r = 1). The set value is the mean over personas; the uncorrected AP
    is reported as ``alignment_raw``. Why the correction: without it a persona holding all of a
    user's memories scores 1.0 by construction, so merging a user into one persona (and the
    "one persona for everything" reward hack) gained alignment instead of losing it. Why the
    description alone (``scores/5``): with the joint text, replacing a specific label ("home
    improvement") by a generic one ("search") *raised* alignment for some users (0.69 to 0.89 for
    one AOL user), since the description then dominated the embedding; the label is judged by
    specificity (against other users' memories too) and distinctness (against its siblings).
    """

    name = "alignment"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        idx = ctx.index()
        per, vals, raws = {}, [], []
        n = len(ctx.memory_ids)
        for k, p in enumerate(ctx.personas):
            relevant = np.zeros(n, dtype=bool)
            relevant[[idx[e] for e in p.evidence if e in idx]] = True
            text = ctx.description_vectors[k] if ctx.description_vectors is not None else ctx.persona_vectors[k]
            ap = average_precision(ctx.memory_vectors @ text, relevant) if relevant.any() else 0.0
            r = relevant.sum() / max(1, n)
            value = max(0.0, (ap - r) / (1 - r)) if r < 1 else 0.0
            per[p.persona_id] = {"alignment": value, "alignment_raw": ap}
            vals.append(value)
            raws.append(ap)
        return {"alignment": float(np.mean(vals)) if vals else math.nan,
                "alignment_raw": float(np.mean(raws)) if raws else math.nan}, per


@register
class Specificity(Metric):
    """Does the persona's text pick out *its* evidence, against the user's other memories and
    other people's?

    The pool is the user's memories plus the background: a fixed seeded sample of other users'
    memories in the same memory set (``reference_size``, 200; the sample is recorded by the
    score config's seed). For persona P with evidence E, AP_label is the average precision of E
    when the pool is ranked by cosine similarity to the embedded label alone, AP_desc the same
    for the description alone; specificity(P) = (AP_label + AP_desc) / 2, and the set value is
    the mean over personas. A label that fits everyone ("search", "food", "user interests")
    ranks other users' memories as high as the user's own and scores near the chance level
    |E| / |pool|; a specific one ("golf equipment") ranks its evidence first. Alignment (the description against the
    user's own memories only) does not read the label at all.
    """

    name = "specificity"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        if ctx.label_vectors is None or ctx.description_vectors is None or ctx.background_vectors is None:
            return {"specificity": math.nan}, {}
        idx = ctx.index()
        pool = np.concatenate([ctx.memory_vectors, ctx.background_vectors]) if len(ctx.background_vectors) \
            else ctx.memory_vectors
        per, vals = {}, []
        for k, p in enumerate(ctx.personas):
            relevant = np.zeros(len(pool), dtype=bool)
            relevant[[idx[e] for e in p.evidence if e in idx]] = True
            if not relevant.any():
                continue
            ap_label = average_precision(pool @ ctx.label_vectors[k], relevant)
            ap_desc = average_precision(pool @ ctx.description_vectors[k], relevant)
            per[p.persona_id] = {"specificity": (ap_label + ap_desc) / 2, "specificity_label": ap_label,
                                 "specificity_description": ap_desc}
            vals.append((ap_label + ap_desc) / 2)
        return {"specificity": float(np.mean(vals)) if vals else math.nan}, per


#: Two personas whose labels, descriptions or evidence are more alike than this start to cost
#: distinctness; at 1.0 (a copy) they cost all of it.
DISTINCT_FROM = 0.5


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def label_confusion(ctx: SetContext, i: int, j: int) -> float:
    """How little the labels of personas i and j tell their evidence apart, in [0, 1] (NaN when
    either persona has no evidence of its own).

    With d(m) = cos(label_i, m) - cos(label_j, m) over the memories only i cites (E_i minus E_j)
    and those only j cites, AUC is the chance that d ranks a memory of i's above one of j's;
    confusion = min(1, 2 (1 - AUC)): 0 when each label prefers its own evidence every time, 0.5 at
    AUC 0.75, and 1 at chance (two labels that fit everything alike, such as "search" and
    "shopping", or the same word twice) or worse.
    """
    if ctx.label_vectors is None:
        return math.nan
    idx = ctx.index()
    a, b = set(ctx.personas[i].evidence), set(ctx.personas[j].evidence)
    only_a = [idx[e] for e in sorted(a - b) if e in idx]
    only_b = [idx[e] for e in sorted(b - a) if e in idx]
    if not only_a or not only_b:
        return math.nan
    d = ctx.memory_vectors @ (ctx.label_vectors[i] - ctx.label_vectors[j])
    return min(1.0, 2.0 * (1.0 - _auc(d[only_a], d[only_b])))


@register
class Distinctness(Metric):
    """Are the set's personas different facets, not one facet said several times?

    For each pair of personas, their likeness is the highest of: the cosine similarity of their
    labels, of their descriptions, the Jaccard overlap of their evidence, and their
    :func:`label_confusion` (whether the labels tell the two evidence sets apart). Each persona's
    likeness s_p is its highest likeness to another persona of the set, its distinctness
    1 - max(0, (s_p - 0.5) / 0.5) (up to 0.5 alike costs nothing, a copy costs everything), and
    the set's distinctness is the mean over its personas: the share of the set that is a facet of
    its own. A set of one persona has no pair to compare: distinctness is NaN, left out of final
    like any term that cannot be computed (a free 1.0 made "one persona for everything" a
    reward hack); a set that merged everything into one persona is caught by cohesion,
    alignment and specificity. ``max_likeness`` (the highest s_p) is reported
    beside it.
    """

    name = "distinctness"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        n = len(ctx.personas)
        if ctx.label_vectors is None or ctx.description_vectors is None:
            return {"distinctness": math.nan}, {}
        if n < 2:
            return {"distinctness": math.nan, "max_likeness": math.nan}, {}
        lab = ctx.label_vectors @ ctx.label_vectors.T
        desc = ctx.description_vectors @ ctx.description_vectors.T
        like = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                a, b = set(ctx.personas[i].evidence), set(ctx.personas[j].evidence)
                jac = len(a & b) / len(a | b) if a | b else 0.0
                conf = label_confusion(ctx, i, j)
                like[i, j] = like[j, i] = max(float(lab[i, j]), float(desc[i, j]), jac,
                                              0.0 if math.isnan(conf) else conf)
        np.fill_diagonal(like, -np.inf)
        worst = np.minimum(like.max(axis=1), 1.0)
        values = 1.0 - np.maximum(0.0, (worst - DISTINCT_FROM) / (1 - DISTINCT_FROM))
        per = {p.persona_id: {"distinctness": float(v), "likeness": float(w)}
               for p, v, w in zip(ctx.personas, values, worst, strict=True)}
        return {"distinctness": float(values.mean()), "max_likeness": float(worst.max())}, per


_WORD = re.compile(r"\w+")


def _lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def copied_from(description: str, summaries: list[str]) -> float:
    """Largest share of the description's words that one summary holds in the same order (LCS)."""
    words = _WORD.findall(description.lower())
    if not words:
        return 1.0
    return max((_lcs(words, _WORD.findall(s.lower())) / len(words) for s in summaries), default=0.0)


#: A persona whose description takes at least this share of its words, in order, from one
#: evidence memory's summary is a copy, not a persona.
COPIED_AT = 0.8


@register
class Abstraction(Metric):
    """Is each persona more than one memory restated?

    A persona generalises its evidence. A description that is one evidence memory's summary
    copied (``copied_from`` >= 0.8: four fifths of its words appear, in order, in that summary;
    word-level longest common subsequence) says nothing a memory did not, and scores perfectly on
    alignment and truthfulness for that reason alone: the trained SmolLM2 wrote such sets
    ("Centered on ..." descriptions copied from extractive summaries). ``abstraction`` is the
    share of personas that are not copies, and it *gates* ``final`` (multiplies it) rather than
    adding a term: no amount of the other terms makes a copy a persona. ``copied_personas``
    counts them.
    """

    name = "abstraction"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        if ctx.memory_text is None or not ctx.personas:
            return {"abstraction": math.nan}, {}
        per, copies = {}, 0
        for p in ctx.personas:
            summaries = [ctx.memory_text[e].partition("] ")[2] or ctx.memory_text[e]
                         for e in p.evidence if e in ctx.memory_text]
            share = copied_from(p.description, summaries)
            copied = share >= COPIED_AT
            copies += copied
            per[p.persona_id] = {"copied_share": share, "copied": float(copied)}
        return {"abstraction": 1 - copies / len(ctx.personas), "copied_personas": float(copies)}, per


@register
class Coverage(Metric):
    """Share of the user's memories cited by at least one persona (reported, not in the final score)."""

    name = "coverage"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        cited = {e for p in ctx.personas for e in p.evidence}
        return {"coverage": len(cited & set(ctx.memory_ids)) / max(1, len(ctx.memory_ids))}, {}


@register
class Redundancy(Metric):
    """Highest cosine similarity between two personas' embedded texts in the set (lower is better)."""

    name = "redundancy"
    higher_is_better = False

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        v = ctx.persona_vectors
        if len(v) < 2:
            return {"redundancy": 0.0}, {}
        sims = v @ v.T
        np.fill_diagonal(sims, -1.0)
        return {"redundancy": float(sims.max())}, {}


@register
class Truthfulness(Metric):
    """Share of a persona's claims the judge supports, and the mean judge score.

    Claims are the description's sentences (:func:`split_claims`). The LLM judge sees only the
    persona's evidence memories, each with the kinds and values of its actions (``strict``: also
    the raw actions), and a claim is supported when P(Yes) >= 0.5; the embedding judge (a cheap
    option for large runs, labelled as such) scores a claim by its highest cosine similarity to an
    evidence memory and supports it at or above a threshold. Either way the evidence guards
    (:mod:`personaminer.quality.guards`) then refuse claims the evidence cannot carry: a stronger
    action, a frequency, a liking or a demographic fact it does not show. The set value is the
    mean over personas that have claims.
    """

    name = "truthfulness"
    needs = frozenset({"embeddings", "judge"})

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        per, shares, means = {}, [], []
        for p in ctx.personas:
            verdicts = [v for v in ctx.claim_verdicts if v["persona_id"] == p.persona_id
                        and not math.isnan(v["p_yes"])]
            if not verdicts:
                continue
            share = sum(bool(v["supported"]) for v in verdicts) / len(verdicts)
            mean = float(np.mean([v["p_yes"] for v in verdicts]))
            per[p.persona_id] = {"truthfulness": share, "mean_p_yes": mean}
            shares.append(share)
            means.append(mean)
        return {"truthfulness": float(np.mean(shares)) if shares else math.nan,
                "mean_p_yes": float(np.mean(means)) if means else math.nan}, per
