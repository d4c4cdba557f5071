"""The quality scorer: judges claims, runs the registered metrics, combines the final score.

:func:`score_set` is the pure per-set function; :func:`run_scores` maps it over a workspace's
persona sets and stores per-set, per-persona and per-claim results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from personaminer import charts, lineage, tables, terminal
from personaminer.embed import Embedder
from personaminer.llm.base import LLM, ChatRequest, extract_json_text
from personaminer.llm.validated import Usage, ask
from personaminer.prompts import ACTION_CHARS, MEMORY_CHARS, clip, load_prompt
from personaminer.quality import guards
from personaminer.quality.guards import MemoryFacts
from personaminer.quality.metrics import REGISTRY, PersonaView, SetContext, split_claims
from personaminer.stats import describe
from personaminer.store import Workspace

JUDGE_PROMPT = "claim_judge"
SPLIT_PROMPT = "claim_split"
TERMS = ("cohesion", "alignment", "truthfulness", "specificity", "distinctness")


@dataclass
class QualityConfig:
    """Settings of the quality scorer (recorded with every score).

    judge: ``llm`` (yes/no judge, P(Yes) from log-probabilities) or ``embedding`` (cheap:
        highest cosine similarity of the claim to an evidence memory, for large runs).
    strict: the LLM judge also sees the evidence memories' raw actions.
    weights: weights of cohesion, alignment, truthfulness, specificity and distinctness (each on
        [0, 1]) in ``final`` (default: equal).
    guards: the evidence guards (:mod:`personaminer.quality.guards`) refuse claims the evidence
        cannot carry (a stronger action, a liking against the ratings, a frequency, a demographic
        fact), after either judge.
    embedding_threshold: the embedding judge supports a claim at or above this similarity.
    reference_size, seed: the fixed seeded sample of other users' memories (the background of
        specificity, and what one-persona sets are contrasted with in cohesion's b(m)).
    max_evidence: at most this many evidence memories shown to the judge per persona (the
        most similar to the persona's description; the label plays no part, so a new label
        cannot change what the judge reads).
    claims: how a description becomes atomic claims: ``sentences`` (default, no LLM) or
        ``llm`` (an LLM rewrites it as one-fact claims, :func:`decompose_claims`; a description
        whose decomposition stays invalid after the retries falls back to its sentences, counted
        in ``claim_split_failures``).
    max_claims: at most this many claims per persona from the ``llm`` decomposition.
    """

    judge: Literal["llm", "embedding"] = "llm"
    strict: bool = False
    weights: dict[str, float] = field(default_factory=lambda: {t: 1 / len(TERMS) for t in TERMS})
    embedding_threshold: float = 0.45
    reference_size: int = 200
    seed: int = 0
    max_evidence: int = 12
    max_actions_per_memory: int = 5
    claims: Literal["sentences", "llm"] = "sentences"
    max_claims: int = 8
    guards: bool = True

    def __post_init__(self) -> None:
        if self.judge not in ("llm", "embedding"):
            raise ValueError(f"judge must be llm or embedding, not {self.judge!r}")
        if self.claims not in ("sentences", "llm"):
            raise ValueError(f"claims must be sentences or llm, not {self.claims!r}")
        if set(self.weights) != set(TERMS) or any(w < 0 for w in self.weights.values()) or not sum(
                self.weights.values()):
            raise ValueError(f"weights must give non-negative weights for {', '.join(TERMS)}, not all zero")



def final_score(values: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of the terms on [0, 1]; a missing term (NaN) is left out and the remaining
    weights renormalised. (:func:`score_set` then multiplies it by the abstraction gate.)"""
    used = {t: w for t, w in weights.items() if not math.isnan(values.get(t, math.nan)) and w > 0}
    if not used:
        return math.nan
    return sum(values[t] * w for t, w in used.items()) / sum(used.values())


class ClaimList(BaseModel):
    """The claim decomposition's answer."""

    claims: list[str] = Field(min_length=1)


CLAIMS_SCHEMA = {"type": "object", "properties": {"claims": {"type": "array", "items": {"type": "string"},
                                                             "minItems": 1}}, "required": ["claims"]}


def decompose_claims(descriptions: Sequence[str], llm: LLM, *, max_claims: int = 8, max_retries: int = 2
                     ) -> list[tuple[list[str], bool]]:
    """Atomic claims of each description, written by the LLM; ``(claims, ok)`` per description.

    The answer is schema-validated: 1 to ``max_claims`` claims, each 4 to 300 characters, and
    together no more than twice the description's length (a decomposition may restate, not
    expand). An answer still invalid after the retries gives the description's sentences
    (:func:`split_claims`) with ``ok=False``, so the caller can report it.
    """
    prompt = load_prompt(SPLIT_PROMPT)
    reqs = [ChatRequest(messages=prompt.messages(description=" ".join(d.split()), max_claims=max_claims),
                        max_tokens=60 * max_claims, json_schema=CLAIMS_SCHEMA, prompt_name=prompt.name,
                        prompt_version=prompt.version) for d in descriptions]

    def parser(description: str) -> Any:
        def parse(text: str) -> list[str]:
            claims = [" ".join(c.split()) for c in ClaimList.model_validate_json(extract_json_text(text)).claims]
            claims = [c for c in claims if c]
            if not 1 <= len(claims) <= max_claims:
                raise ValueError(f"give 1 to {max_claims} claims, not {len(claims)}")
            if bad := [c for c in claims if not 4 <= len(c) <= 300]:
                raise ValueError(f"each claim must be 4 to 300 characters: {bad[0][:60]!r}")
            if sum(map(len, claims)) > 2 * len(description) + 40:
                raise ValueError("the claims are much longer than the description: restate it, add nothing")
            return claims
        return parse

    answers = ask(llm, reqs, [parser(d) for d in descriptions], max_retries, [Usage() for _ in descriptions])
    return [(value, True) if value is not None else (split_claims(d), False)
            for d, (value, _) in zip(descriptions, answers, strict=True)]


def judge_requests(personas: Sequence[PersonaView], claims: dict[str, list[str]], evidence_text: dict[str, str],
                   ) -> list[ChatRequest]:
    """One yes/no request per claim; claims of a persona are adjacent so the evidence prefix is reused."""
    prompt = load_prompt(JUDGE_PROMPT)
    return [ChatRequest(messages=prompt.messages(evidence=evidence_text[p.persona_id], claim=c), max_tokens=1,
                        top_logprobs=20, prompt_name=prompt.name, prompt_version=prompt.version)
            for p in personas for c in claims[p.persona_id]]


def score_set(ctx: SetContext, config: QualityConfig, *, embedder: Embedder, llm: LLM | None,
              memory_text: dict[str, str], action_text: dict[str, list[str]] | None = None,
              facts: dict[str, MemoryFacts] | None = None
              ) -> tuple[dict[str, float], dict[str, dict[str, float]], list[dict[str, Any]]]:
    """Score one persona set: (set values, per-persona values, per-claim verdicts).

    ``facts`` (per memory: day, action kinds, ratings) go into the LLM judge's evidence lines and
    feed the evidence guards; without them the judge sees summaries only and no guard runs.
    """
    idx = ctx.index()
    split_failures = 0
    if config.claims == "llm":
        if llm is None:
            raise ValueError("the llm claim decomposition needs an llm")
        decomposed = decompose_claims([p.description for p in ctx.personas], llm, max_claims=config.max_claims)
        claims = {p.persona_id: cl for p, (cl, _) in zip(ctx.personas, decomposed, strict=True)}
        split_failures = sum(not ok for _, ok in decomposed)
    else:
        claims = {p.persona_id: split_claims(p.description) for p in ctx.personas}
    evidence: dict[str, list[str]] = {}
    # The shown evidence is chosen by the description alone: a label must not decide what the judge reads.
    ranker = ctx.description_vectors if ctx.description_vectors is not None else ctx.persona_vectors
    for k, p in enumerate(ctx.personas):
        ids = [e for e in p.evidence if e in idx]
        sims = ctx.memory_vectors[[idx[e] for e in ids]] @ ranker[k] if ids else np.zeros(0)
        evidence[p.persona_id] = [ids[i] for i in np.argsort(-sims, kind="stable")[: config.max_evidence]]
    verdicts: list[dict[str, Any]] = []
    if config.judge == "llm":
        if llm is None:
            raise ValueError("the llm judge needs an llm")
        text = {}
        for pid, ids in evidence.items():
            lines = []
            for mid in ids:
                shows = f" [{facts[mid].describe()}]" if facts and mid in facts and facts[mid].describe() else ""
                lines.append(f"- {clip(memory_text[mid], MEMORY_CHARS)}{shows}")
                if config.strict and action_text:
                    lines.extend(f"    * {clip(a, ACTION_CHARS)}"
                                 for a in action_text.get(mid, [])[: config.max_actions_per_memory])
            text[pid] = "\n".join(lines)
        scores = llm.p_yes(judge_requests(ctx.personas, claims, text))
        it = iter(scores)
        for p in ctx.personas:
            for i, c in enumerate(claims[p.persona_id]):
                s = next(it)
                verdicts.append({"persona_id": p.persona_id, "claim_index": i, "claim": c, "p_yes": s,
                                 "supported": bool(s >= 0.5) if not math.isnan(s) else False,
                                 "evidence": evidence[p.persona_id]})
    else:
        for p in ctx.personas:
            cl = claims[p.persona_id]
            if not cl:
                continue
            cv = embedder.encode(cl)
            ev = ctx.memory_vectors[[idx[e] for e in evidence[p.persona_id]]]
            best = (cv @ ev.T).max(axis=1) if len(ev) else np.zeros(len(cl))
            for i, (c, s) in enumerate(zip(cl, best, strict=True)):
                verdicts.append({"persona_id": p.persona_id, "claim_index": i, "claim": c, "p_yes": float(s),
                                 "supported": bool(s >= config.embedding_threshold),
                                 "evidence": evidence[p.persona_id]})
    if config.guards and facts:
        for v in verdicts:
            reason = guards.check(v["claim"], [facts[m] for m in v["evidence"] if m in facts])
            if reason is not None:
                v.update(p_judge=v["p_yes"], p_yes=0.0, supported=False, guard=reason)
    ctx.claim_verdicts = verdicts
    ctx.memory_text = memory_text
    values: dict[str, float] = {}
    per: dict[str, dict[str, float]] = {p.persona_id: {} for p in ctx.personas}
    for cls in REGISTRY.values():
        set_vals, per_vals = cls().score(ctx)
        values.update(set_vals)
        for pid, d in per_vals.items():
            per[pid].update(d)
    values["final"] = final_score(values, config.weights) * (
        1.0 if math.isnan(values.get("abstraction", math.nan)) else values["abstraction"])
    values["n_personas"] = float(len(ctx.personas))
    values["n_claims"] = float(len(verdicts))
    values["guarded_claims"] = float(sum("guard" in v for v in verdicts))
    if config.claims == "llm":
        values["claim_split_failures"] = float(split_failures)
    return values, per, verdicts


#: The scorer's code version, part of every score config's fingerprint.
CODE = "scores/6"  # 6: claims no longer split after an abbreviation ("Mr.")


def score_output(config: QualityConfig, *, embedder: Embedder, llm: LLM | None) -> lineage.Output:
    """The lineage entry of a score config: its fingerprint is the ``config_key`` of every score it
    stores, so a change of judge model, prompt, embedder or setting never reuses a stored score."""
    uses_llm = llm is not None and (config.judge == "llm" or config.claims == "llm")
    prompts = ([f"{p.name}.v{p.version}" for p in (load_prompt(JUDGE_PROMPT),)] if config.judge == "llm" else [])
    if config.claims == "llm":
        p = load_prompt(SPLIT_PROMPT)
        prompts.append(f"{p.name}.v{p.version}")
    out = lineage.Output("scores", "", CODE, asdict(config), prompt=",".join(prompts) or None,
                         model=llm.model_id if uses_llm and llm is not None else None, embedder=embedder.model_id)
    return lineage.Output("scores", out.fingerprint, CODE, asdict(config), prompt=out.prompt, model=out.model,
                          embedder=out.embedder)


class WorkspaceData:
    """Per-user memories and embeddings read once from a workspace, for scoring many sets."""

    def __init__(self, ws: Workspace, embedder: Embedder, config: QualityConfig) -> None:
        self.ws, self.embedder, self.config = ws, embedder, config
        self._cache: dict[tuple[str, str], tuple[list[str], np.ndarray, dict[str, str]]] = {}
        self._reference: dict[tuple[str, str], np.ndarray] = {}
        self._facts: dict[tuple[str, str], dict[str, MemoryFacts]] = {}

    def memories(self, user_id: str, memory_set: str) -> tuple[list[str], np.ndarray, dict[str, str]]:
        key = (user_id, memory_set)
        if key not in self._cache:
            rows = tables.memories.items(self.ws.con, user_id, memory_set)
            ids = [r[0] for r in rows]
            vec = self.embedder.encode([r[2] for r in rows]) if rows else np.zeros((0, 384), np.float32)
            self._cache[key] = (ids, vec, {r[0]: f"[{r[1]}] {r[2]}" for r in rows})
        return self._cache[key]

    def reference(self, user_id: str, memory_set: str) -> np.ndarray:
        """A fixed seeded sample of other users' memory summaries, embedded."""
        key = (user_id, memory_set)
        if key not in self._reference:
            rows = tables.memories.reference_sample(self.ws.con, memory_set, user_id, self.config.seed,
                                                    self.config.reference_size)
            self._reference[key] = self.embedder.encode(rows) if rows else np.zeros((0, 384), np.float32)
        return self._reference[key]

    def actions(self, memory_ids: Sequence[str]) -> dict[str, list[str]]:
        return {mid: [f"{k}: {t}" for k, t in tables.memories.actions_of(self.ws.con, mid)] for mid in memory_ids}

    def facts(self, user_id: str, memory_set: str) -> dict[str, MemoryFacts]:
        """Per memory of the user: its day, words, action kinds, ratings and prices (for the judge and guards)."""
        key = (user_id, memory_set)
        if key not in self._facts:
            out: dict[str, MemoryFacts] = {}
            summaries = {m: (d, s) for m, d, s in tables.memories.items(self.ws.con, user_id, memory_set)}
            for mid, day, kind, text, rating, price in tables.memories.action_facts(self.ws.con, user_id, memory_set):
                f = out.setdefault(mid, MemoryFacts(day, summaries[mid][1].lower()))
                f.text += " " + text.lower()
                f.kinds[kind] += 1
                if rating is not None:
                    f.ratings.append(rating)
                if price is not None:
                    f.prices.append(price)
            self._facts[key] = out
        return self._facts[key]

    def set_facts(self, set_id: str) -> dict[str, MemoryFacts]:
        """:meth:`facts` of the memories a set was built on."""
        user_id, memory_set, _ = tables.personas.set_header(self.ws.con, set_id)
        return self.facts(user_id, memory_set)

    def context(self, set_id: str) -> tuple[SetContext, dict[str, str], str]:
        user_id, memory_set, builder = tables.personas.set_header(self.ws.con, set_id)
        personas = [PersonaView(p["persona_id"], p["label"], p["description"], p["evidence"])
                    for p in tables.personas.personas_of(self.ws.con, set_id)]
        ids, vec, text = self.memories(user_id, memory_set)
        background = self.reference(user_id, memory_set)
        ctx = SetContext(set_id, user_id, personas, ids, vec, np.zeros((0, vec.shape[1]), np.float32),
                         background if len(personas) == 1 else np.zeros((0, vec.shape[1]), np.float32),
                         background_vectors=background)
        return embed_personas(ctx, self.embedder), text, builder


def embed_personas(ctx: SetContext, embedder: Embedder) -> SetContext:
    """``ctx`` with its persona, label and description vectors computed from its personas."""
    personas = ctx.personas
    ctx.persona_vectors = embedder.encode([f"{p.label}. {p.description}" for p in personas])
    ctx.label_vectors = embedder.encode([p.label for p in personas])
    ctx.description_vectors = embedder.encode([p.description for p in personas])
    return ctx


def run_scores(ws: Workspace, config: QualityConfig, *, embedder: Embedder, llm: LLM | None,
               where: dict[str, str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Score every stored persona set (optionally filtered, e.g. ``{"builder": "model"}``).

    The summary's ``config_key`` is the score config's fingerprint (the key of every stored score).
    """
    where = where or {}
    out = score_output(config, embedder=embedder, llm=llm)
    key = out.fingerprint
    todo = tables.scores.pending(ws.con, where, config.judge, key)
    data = WorkspaceData(ws, embedder, config)
    judge_model = llm.model_id if (llm is not None and config.judge == "llm") else embedder.model_id
    if config.claims == "llm" and llm is not None and config.judge != "llm":
        judge_model += f" (claims by {llm.model_id})"
    t0 = time.perf_counter()
    with ws.run("score", {**asdict(config), "where": where, "config_key": key}) as run, terminal.progress(
            TextColumn(f"score [{config.judge} judge]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            disable=not progress) as bar:
        lineage.claim(ws, out, run_id=run["run_id"])
        task = bar.add_task("sets", total=len(todo))
        for set_id in todo:
            ctx, text, builder = data.context(set_id)
            actions = data.actions([e for p in ctx.personas for e in p.evidence]) if config.strict else None
            values, per, verdicts = score_set(ctx, config, embedder=embedder, llm=llm, memory_text=text,
                                              action_text=actions, facts=data.set_facts(set_id))
            with ws.transaction() as con:
                tables.scores.write(con, set_id, ctx.user_id, builder, config.judge, key, judge_model, values, per,
                                    verdicts)
            bar.update(task, advance=1)
        summary = summarize(ws, config.judge, key, where)
        summary.update({"scored_now": len(todo), "seconds": round(time.perf_counter() - t0, 2),
                        "config": asdict(config), "judge_model": judge_model})
        run.update({k: v for k, v in summary.items() if k != "builders"})
    ws.write_report("score", summary)
    write_summary_files(ws.path / "reports", summary)
    return summary


#: The columns of ``reports/score.md``, in this order.
MD_TERMS = ("final", "cohesion", "alignment", "truthfulness", "specificity", "distinctness", "coverage", "mean_p_yes")


def summary_markdown(summary: dict[str, Any], *, chart: str | None = None) -> str:
    """A ``score`` summary as a Markdown table: mean ± standard error of each term, per builder."""
    def cell(d: dict[str, Any] | None) -> str:
        if not d or d.get("mean") is None:
            return "-"
        return f"{d['mean']:.3f} ± {d['se']:.3f}" if d.get("se") is not None else f"{d['mean']:.3f}"

    lines = [f"# Persona quality ({summary['judge']} judge)", "",
             f"Judge model: {summary.get('judge_model', '?')}. Score config: `{summary['config_key']}`. "
             "Every cell is mean ± standard error over persona sets (docs/quality.md defines each term).", ""]
    if chart:
        lines += [f"![quality terms per builder, mean with a normal 95% interval]({chart})", ""]
    head = "| builder | sets | users | " + " | ".join(MD_TERMS) + " |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for builder, st in summary["builders"].items():
        lines.append(f"| {builder} | {st['sets']} | {st['users']} | " + " | ".join(cell(st.get(t)) for t in MD_TERMS)
                     + " |")
    return "\n".join(lines) + "\n"


def write_summary_files(folder: Path, summary: dict[str, Any]) -> None:
    """``score.svg`` (the terms per builder as a chart) and ``score.md`` (the table) beside ``score.json``."""
    chart = charts.write(folder / "score.svg", charts.quality_chart(
        summary["builders"], title=f"persona quality per builder ({summary['judge']} judge)"))
    (folder / "score.md").write_text(summary_markdown(summary, chart=chart.name if chart else None), encoding="utf-8")


METRIC_KEYS = ("final", "cohesion", "cohesion_raw", "alignment", "truthfulness", "specificity", "distinctness",
               "mean_p_yes", "coverage", "redundancy", "max_likeness", "abstraction", "copied_personas", "n_personas", "n_claims", "guarded_claims")


def summarize(ws: Workspace, judge: str, key: str, where: dict[str, str] | None = None) -> dict[str, Any]:
    """Mean, standard deviation, standard error and counts of every term, per builder."""
    by: dict[str, list[dict[str, Any]]] = {}
    users: dict[str, set[str]] = {}
    for builder, user_id, values in tables.scores.values_by_builder(ws.con, judge, key):
        if where and "builder" in where and builder != where["builder"]:
            continue
        by.setdefault(builder, []).append(values)
        users.setdefault(builder, set()).add(user_id)
    out: dict[str, Any] = {"judge": judge, "config_key": key, "builders": {}}
    for builder, vals in sorted(by.items()):
        stats: dict[str, Any] = {"sets": len(vals), "users": len(users[builder])}
        for m in METRIC_KEYS:
            stats[m] = describe(v.get(m) for v in vals)
        out["builders"][builder] = stats
    return out
