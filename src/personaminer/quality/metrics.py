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


def split_claims(description: str) -> list[str]:
    """Atomic claims of a description: its sentences (split after ``.``, ``!``, ``?``)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", " ".join(description.split()))
    return [p.strip() for p in parts if len(p.strip()) > 3]


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
    """Average precision of a persona's evidence when the user's memories are ranked by cosine
    similarity to the embedded ``label. description``; the set value is the mean over personas.
    1.0 when the persona's evidence ranks above every other memory.
    """

    name = "alignment"

    def score(self, ctx: SetContext) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        idx = ctx.index()
        per, vals = {}, []
        for k, p in enumerate(ctx.personas):
            relevant = np.zeros(len(ctx.memory_ids), dtype=bool)
            relevant[[idx[e] for e in p.evidence if e in idx]] = True
            ap = average_precision(ctx.memory_vectors @ ctx.persona_vectors[k], relevant) if relevant.any() else 0.0
            per[p.persona_id] = {"alignment": ap}
            vals.append(ap)
        return {"alignment": float(np.mean(vals)) if vals else math.nan}, per


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
    persona's evidence memories (``strict``: also their raw actions) and a claim is supported
    when P(Yes) >= 0.5; the embedding judge (a cheap option for large runs, labelled as such)
    scores a claim by its highest cosine similarity to an evidence memory and supports it at or
    above a threshold. The set value is the mean over personas that have claims.
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
