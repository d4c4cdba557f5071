"""A judge benchmark with known answers, generated from real workspaces (never stored as data).

Claims whose truth is known by construction, each with the evidence memories a judge would see:

========================  =====  =========================================================================
type                      label  how it is made
========================  =====  =========================================================================
supported                 yes    restates one action of a cited memory ("The user searched for "golf
                                 clubs"."); the evidence is that memory and up to 3 others of the user
supported, one memory     yes    the same, with that memory as the only evidence
liking, high rating       yes    "The user loves "<title>"." for a movie the user rated 4 or 5
other user                no     restates an action of *another* user's memory
swapped action            no     a searched, viewed or rated item claimed as bought
invented demographic      no     an age, job and home no evidence states
inflated frequency        no     "frequently" / "every day" from a single memory
liking, low rating        no     "The user loves "<title>"." for a movie rated 1 or 2
one memory, unrelated     no     another user's action, against one memory of this user (the case that
                                 fooled the judge: a small model says Yes to almost anything about one search)
invented habit            no     a habit, motive or taste no evidence states ("The user enjoys trying new
                                 recipes."), the soft embellishment ``single`` writes (docs/quality.md)
========================  =====  =========================================================================

:func:`make_cases` draws them (seeded) from the users of a workspace; :func:`run_judges` scores
every case with each judge (the LLM yes/no judge and the embedding judge, each with and without
the evidence guards) and :func:`summarize` gives, per claim type, n, ROC AUC (the type's cases
against every case of the other label) and accuracy at the judge's threshold.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from personaminer import tables
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.prompts import MEMORY_CHARS, clip
from personaminer.quality import guards
from personaminer.quality.guards import MemoryFacts
from personaminer.quality.scorer import QualityConfig, WorkspaceData, judge_requests
from personaminer.store import Workspace

POSITIVE = ("supported", "supported, one memory", "liking, high rating")
NEGATIVE = ("other user", "swapped action", "invented demographic", "inflated frequency", "liking, low rating",
            "one memory, unrelated", "invented habit")
DEMOGRAPHICS = ["The user is a 34-year-old nurse who lives in Reno.", "The user is a retired teacher from Ohio.",
                "The user is a 19-year-old student living in Austin.", "The user is a father of three.",
                "The user is a 52-year-old engineer who lives in Denver."]
#: Lifestyle claims of the kind the 1.5B model adds to a persona ("passionate", "locally sourced",
#: "experimenting with recipes"): no log states a motive, a taste or a habit outside the logs.
HABITS = ["The user enjoys trying new recipes in their free time.", "The user is passionate about healthy living.",
          "The user prefers locally sourced products.", "The user likes to plan everything well in advance.",
          "The user loves exploring new hobbies with friends.", "The user values quality over price.",
          "The user is a devoted fan who follows every new release."]


@dataclass
class JudgeCase:
    dataset: str
    user_id: str
    type: str
    claim: str
    evidence: list[str]  #: memory ids the judge sees
    label: int  #: 1 supported, 0 not


@dataclass
class _Action:
    memory_id: str
    kind: str
    text: str
    rating: float | None


def _name(text: str) -> str:
    return text.split(" | ")[0].strip()


def restate(a: _Action) -> str:
    """A claim that is true of an action: what the user did, in plain words."""
    if a.kind == "query":
        return f'The user searched for "{a.text}".'
    if a.kind == "click":
        return f"The user visited {a.text}."
    if a.kind in ("purchase", "checkout"):
        return f"The user bought {_name(a.text)}."
    if a.kind == "rating" and a.rating is not None:
        return f'The user rated "{_name(a.text)}" {a.rating:g} out of 5.'
    return f"The user looked at {_name(a.text)}."


def make_cases(ws: Workspace, dataset: str, users: Sequence[str], memory_set: str, *, per_type: int = 12,
               seed: int = 0) -> list[JudgeCase]:
    """Up to ``per_type`` cases of each type (that the dataset allows) from ``users`` (seeded)."""
    rng = random.Random(seed)
    acts: dict[str, list[_Action]] = {}
    mems: dict[str, list[str]] = {}
    for u in users:
        for mid, _day, kind, text, rating, _price in tables.memories.action_facts(ws.con, u, memory_set):
            acts.setdefault(u, []).append(_Action(mid, kind, text, rating))
            if mid not in mems.setdefault(u, []):
                mems[u].append(mid)
    users = [u for u in users if len(mems.get(u, [])) >= 2]
    if len(users) < 2:
        return []
    out: list[JudgeCase] = []

    def evidence(u: str, mid: str, k: int = 3) -> list[str]:
        others = [m for m in mems[u] if m != mid]
        return [mid, *rng.sample(others, min(k, len(others)))]

    def other_than(u: str) -> str:
        return rng.choice([v for v in users if v != u])

    makers = {
        "supported": lambda u, a: (restate(a), evidence(u, a.memory_id), 1),
        "supported, one memory": lambda u, a: (restate(a), [a.memory_id], 1),
        "other user": lambda u, a: (restate(rng.choice(acts[other_than(u)])), evidence(u, a.memory_id), 0),
        "swapped action": lambda u, a: (None if a.kind in guards.PURCHASE_KINDS or not _purchase_free(acts[u])
                                        else (f"The user bought {_name(a.text)}.", evidence(u, a.memory_id), 0)),
        "invented demographic": lambda u, a: (rng.choice(DEMOGRAPHICS), evidence(u, a.memory_id), 0),
        "inflated frequency": lambda u, a: (f"The user does this every day: {restate(a)[9:]}"
                                            if rng.random() < 0.5 else f"The user frequently {restate(a)[9:]}",
                                            [a.memory_id], 0),
        "liking, high rating": lambda u, a: (None if a.rating is None or a.rating < 4 else
                                             (f'The user loves "{_name(a.text)}".', [a.memory_id], 1)),
        "liking, low rating": lambda u, a: (None if a.rating is None or a.rating > 2 else
                                            (f'The user loves "{_name(a.text)}".', [a.memory_id], 0)),
        "one memory, unrelated": lambda u, a: (restate(rng.choice(acts[other_than(u)])), [a.memory_id], 0),
        # last, so the types above draw the same cases as before it existed (one seeded stream)
        "invented habit": lambda u, a: (rng.choice(HABITS), evidence(u, a.memory_id), 0),
    }
    for kind, make in makers.items():
        made, tries = 0, 0
        while made < per_type and tries < 50 * per_type:
            tries += 1
            u = rng.choice(users)
            a = rng.choice(acts[u])
            got = make(u, a)
            if got is None or got[0] is None:
                continue
            claim, ev, label = got
            out.append(JudgeCase(dataset, u, kind, claim, ev, label))
            made += 1
    return out


def _purchase_free(actions: list[_Action]) -> bool:
    return not any(a.kind in guards.PURCHASE_KINDS for a in actions)


def run_judges(ws: Workspace, cases: Sequence[JudgeCase], memory_set: str, *, embedder: Embedder,
               llm: LLM | None, config: QualityConfig | None = None) -> list[dict[str, Any]]:
    """Each case with the scores of every judge: ``embedding`` and, with an LLM, ``llm``; and each
    ``+guards`` (a claim a guard refuses scores 0). The LLM judge reads the same evidence lines as in
    scoring: the memory's day and summary, then the kinds and values of its actions."""
    config = config or QualityConfig()
    data = WorkspaceData(ws, embedder, config)
    out = []
    texts: dict[str, dict[str, str]] = {}
    facts: dict[str, dict[str, MemoryFacts]] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    for u in sorted({c.user_id for c in cases}):
        ids, vec, text = data.memories(u, memory_set)
        texts[u], facts[u] = text, data.facts(u, memory_set)
        vectors[u] = {m: vec[i] for i, m in enumerate(ids)}
    claim_vecs = embedder.encode([c.claim for c in cases])
    llm_scores: list[float] = []
    if llm is not None:
        from personaminer.quality.metrics import PersonaView

        views = [PersonaView(f"c{i}", "", c.claim, c.evidence) for i, c in enumerate(cases)]
        evidence_text = {v.persona_id: "\n".join(
            f"- {clip(texts[c.user_id][m], MEMORY_CHARS)}"
            + (f" [{facts[c.user_id][m].describe()}]" if m in facts[c.user_id] else "") for m in c.evidence)
            for v, c in zip(views, cases, strict=True)}
        llm_scores = llm.p_yes(judge_requests(views, {v.persona_id: [v.description] for v in views}, evidence_text))
    for i, c in enumerate(cases):
        ev = np.stack([vectors[c.user_id][m] for m in c.evidence])
        reason = guards.check(c.claim, [facts[c.user_id][m] for m in c.evidence if m in facts[c.user_id]])
        row = {**asdict(c), "guard": reason, "embedding": float((ev @ claim_vecs[i]).max())}
        row["embedding+guards"] = 0.0 if reason else row["embedding"]
        if llm is not None:
            row["llm"] = float(llm_scores[i])
            row["llm+guards"] = 0.0 if reason else row["llm"]
        out.append(row)
    return out


def auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties counted half (None without both)."""
    if not pos or not neg:
        return None
    p, n = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    p, n = np.nan_to_num(p, nan=0.5), np.nan_to_num(n, nan=0.5)
    greater = (p[:, None] > n[None, :]).mean()
    ties = (p[:, None] == n[None, :]).mean()
    return float(greater + 0.5 * ties)


THRESHOLDS = {"llm": 0.5, "llm+guards": 0.5, "embedding": 0.45, "embedding+guards": 0.45}


def summarize(rows: Sequence[dict[str, Any]], judges: Sequence[str]) -> dict[str, Any]:
    """Per judge: overall AUC and accuracy, and per claim type n, AUC and accuracy."""
    out: dict[str, Any] = {}
    for j in judges:
        pos = [r[j] for r in rows if r["label"] == 1]
        neg = [r[j] for r in rows if r["label"] == 0]
        thr = THRESHOLDS[j]
        per = {}
        for t in (*POSITIVE, *NEGATIVE):
            mine = [r for r in rows if r["type"] == t]
            if not mine:
                continue
            scores = [r[j] for r in mine]
            a = auc(scores, neg) if mine[0]["label"] == 1 else auc(pos, scores)
            correct = [(r[j] >= thr) == bool(r["label"]) for r in mine]
            per[t] = {"n": len(mine), "label": mine[0]["label"], "auc": a, "accuracy": sum(correct) / len(correct)}
        correct = [(r[j] >= thr) == bool(r["label"]) for r in rows]
        out[j] = {"n": len(rows), "auc": auc(pos, neg), "accuracy": sum(correct) / len(correct) if rows else None,
                  "threshold": thr, "types": per}
    return out
