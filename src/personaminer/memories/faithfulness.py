"""Summary faithfulness: every LLM-written memory summary judged against that memory's own actions.

A summary's claims are its sentences (:func:`personaminer.quality.metrics.split_claims`), each read as
a claim about the user ("Looked for golf clubs." becomes "The user looked for golf clubs."). The
evidence a judge sees is the memory's own actions only, one line each with its kind (and rating or
price), followed by the bracketed facts line the quality judge reads (action counts, ratings,
prices); the evidence guards (:mod:`personaminer.quality.guards`) run after either judge, as in
scoring. A claim is supported when the judge says so (P(yes) >= 0.5 for the LLM judge, the
embedding threshold for the embedding judge) and no guard refuses it.

The leak check of the stage (:func:`personaminer.memories.build.leaked_texts`) is re-run against
the day's other memories, so a summary naming a neighbouring segment's action is counted too.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.prompts import ACTION_CHARS, clip
from personaminer.quality import guards
from personaminer.quality.guards import MemoryFacts
from personaminer.quality.metrics import PersonaView, split_claims
from personaminer.quality.scorer import QualityConfig, judge_requests
from personaminer.store import Workspace

MAX_ACTIONS = 20  #: evidence lines shown per memory


def as_claim(sentence: str) -> str:
    """A summary sentence as a claim about the user."""
    s = sentence.strip()
    low = s.lower()
    if low.startswith(("the user", "user ", "this user")):
        return s
    return "The user " + s[:1].lower() + s[1:]


@dataclass
class SummaryCase:
    memory_id: str
    user_id: str
    summary: str
    claims: list[str]
    evidence: str  #: the lines the LLM judge reads
    action_texts: list[str]
    facts: MemoryFacts
    leaks: list[str]


def cases(ws: Workspace, memory_set: str, *, max_memories: int | None = None, seed: int = 0,
          users: Sequence[str] | None = None) -> list[SummaryCase]:
    """The LLM-written summaries of ``memory_set`` (``summary_by = 'llm'``), a seeded sample of at
    most ``max_memories``, each with its own actions as evidence."""
    from personaminer.memories.build import leaked_texts
    from personaminer.memories.steps import make_steps

    where = "memory_set = ? AND summary_by = 'llm'"
    params: list[Any] = [memory_set]
    if users is not None:
        where += " AND list_contains(?, user_id)"
        params.append(list(users))
    rows = ws.con.execute(f"SELECT memory_id, user_id, day, summary, action_ids FROM memories WHERE {where} "
                          "ORDER BY memory_id", params).fetchall()
    if max_memories is not None and len(rows) > max_memories:
        rows = sorted(random.Random(seed).sample(rows, max_memories))
    out = []
    by_user: dict[str, list[Any]] = {}  # each user's actions read once, not once per memory
    for mid, uid, day, summary, action_ids in rows:
        if uid not in by_user:
            by_user[uid] = ws.user_actions(uid)
        day_actions = [a for a in by_user[uid] if a.ts.date() == day]
        mine = set(action_ids)
        inside = [a for a in day_actions if a.action_id in mine]
        outside = [a for a in day_actions if a.action_id not in mine]
        facts = MemoryFacts(day, summary.lower())
        lines = []
        for a in inside:
            facts.text += " " + a.text.lower()
            facts.kinds[a.kind] += 1
            extra = ""
            if a.attrs.get("rating") is not None:
                facts.ratings.append(float(a.attrs["rating"]))
                extra = f" (rated {float(a.attrs['rating']):g}/5)"
            if a.attrs.get("price") is not None:
                try:
                    facts.prices.append(float(a.attrs["price"]))
                except (TypeError, ValueError):
                    pass
            if len(lines) < MAX_ACTIONS:
                lines.append(f"- {a.kind}: {clip(a.text, ACTION_CHARS)}{extra}")
        if len(inside) > MAX_ACTIONS:
            lines.append(f"- ({len(inside) - MAX_ACTIONS} more actions)")
        lines.append(f"- [{day}] [{facts.describe()}]")
        leaks = leaked_texts(summary, make_steps(inside), make_steps(outside)) if outside else []
        out.append(SummaryCase(mid, uid, summary, [as_claim(c) for c in split_claims(summary)] or [as_claim(summary)],
                               "\n".join(lines), [a.text for a in inside], facts, leaks))
    return out


def judge(items: Sequence[SummaryCase], *, judge_kind: str, embedder: Embedder, llm: LLM | None,
          config: QualityConfig | None = None) -> list[dict[str, Any]]:
    """One verdict per claim: ``{memory_id, claim, p_yes, supported, guard}``."""
    config = config or QualityConfig()
    verdicts: list[dict[str, Any]] = []
    if judge_kind == "llm":
        if llm is None:
            raise ValueError("the llm judge needs an llm")
        personas = [PersonaView(c.memory_id, "", c.summary, [c.memory_id]) for c in items]
        reqs = judge_requests(personas, {c.memory_id: c.claims for c in items},
                              {c.memory_id: c.evidence for c in items})
        scores = iter(llm.p_yes(reqs))
        for c in items:
            for claim in c.claims:
                p = next(scores)
                verdicts.append({"memory_id": c.memory_id, "claim": claim, "p_yes": p,
                                 "supported": bool(p >= 0.5) if not np.isnan(p) else False})
    else:
        for c in items:
            cv = embedder.encode(c.claims)
            av = embedder.encode(c.action_texts[:MAX_ACTIONS])
            best = (cv @ av.T).max(axis=1)
            for claim, s in zip(c.claims, best, strict=True):
                verdicts.append({"memory_id": c.memory_id, "claim": claim, "p_yes": float(s),
                                 "supported": bool(s >= config.embedding_threshold)})
    facts = {c.memory_id: c.facts for c in items}
    for v in verdicts:
        reason = guards.check(v["claim"], [facts[v["memory_id"]]])
        v["guard"] = reason
        if reason is not None:
            v["supported"] = False
    return verdicts


def summarize(items: Sequence[SummaryCase], verdicts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Supported share of claims and of summaries (all claims supported), guard refusals, leaks."""
    by_mem: dict[str, list[bool]] = {}
    for v in verdicts:
        by_mem.setdefault(v["memory_id"], []).append(v["supported"])
    n = len(verdicts)
    return {"summaries": len(items), "claims": n,
            "supported_claims": sum(v["supported"] for v in verdicts) / n if n else None,
            "supported_summaries": sum(all(x) for x in by_mem.values()) / len(by_mem) if by_mem else None,
            "guard_refusals": sum(v["guard"] is not None for v in verdicts),
            "leaking_summaries": sum(bool(c.leaks) for c in items)}
