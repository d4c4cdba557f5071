"""The evaluation driver: future-interaction prediction for every system, one report.

:func:`run_evaluation` reads the split workspace, refuses if any memory or persona cites the
future, draws each target's candidates once per protocol, scores them with every system and
writes ``reports/evaluate.json`` and ``reports/evaluate.md`` (``evaluate-shuffled.*`` for the
shuffled-targets control). Protocol and metric definitions:
``docs/evaluate.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from personaminer import charts, tables, terminal
from personaminer.embed import Embedder
from personaminer.errors import UserError
from personaminer.evaluate.data import EvalData, load_data, stable_seed
from personaminer.evaluate.metrics import METRICS, TIE_TOL, bootstrap_ci, metrics_from_counts, paired_test
from personaminer.evaluate.protocols import PROTOCOLS, allowed_mask, hard_negatives, sampled_negatives, squash
from personaminer.evaluate.report import to_markdown
from personaminer.evaluate.rerank import LLMReranker
from personaminer.evaluate.rerank import describe as rerank_describe
from personaminer.evaluate.split import check_no_leakage
from personaminer.evaluate.systems import (
    EvalContext,
    Personas,
    Reranked,
    System,
    default_specs,
    nan_to_none,
    parse_specs,
    whitespace_tokens,
)
from personaminer.llm.base import LLM
from personaminer.stats import mean
from personaminer.store import Workspace

GROUPS = ("all", "repeats", "novel")


class LeakageError(UserError, RuntimeError):
    """Memories or personas cite actions at or after their user's cutoff."""


@dataclass
class EvalConfig:
    """Settings of one evaluation (recorded in the report).

    Attributes
    ----------
    protocols: any of ``sampled``, ``hard``, ``full``.
    systems: spec list (``docs/evaluate.md``); None: the baselines, every memory set and one
        persona system per group of persona sets in the workspace.
    max_targets: at most this many distinct future texts per user (a seeded sample beyond).
    seed: seeds target sampling, sampled negatives, user sampling, shuffling and the bootstrap.
    n_negatives: negatives per target for ``sampled`` and ``hard``.
    near_duplicate: ``hard`` drops candidates with cosine >= this to the target.
    users: evaluate a seeded sample of this many split users (default: all).
    role: evaluate only split users holding this held-out role (``train_roles``, written by
        ``train roles`` / ``train build-groups``), e.g. ``test``: users no trained model saw.
        The future pool and the negatives still come from every split user.
    baseline: the system the paired tests compare against (default: ``single`` when present,
        else ``history_embed``).
    compare: more paired tests, each ``"A:B"`` (system A against system B, e.g.
        ``routed_cluster:history_hybrid``), reported in their own table; a pair naming a system
        that is not in the table is listed as such, not dropped silently.
    bootstrap: resamples for the confidence intervals and the paired bootstrap.
    shuffle_targets: the control: user u is scored against the targets of another user (a
        seeded derangement); negatives exclude both users' texts. Personalized systems should
        fall to the chance level.
    kinds: the interaction kinds (default: ``query`` if present, else all but ``click``).
    failed_sets: ``missing`` (a user whose persona set failed is not covered by that system, so
        the main tables drop the user) or ``chance`` (the system covers the user but ranks
        every candidate alike: the failure counts against it, at the chance level).
    rerank: ``llm`` adds, for each system of ``rerank_systems``, a row ``<name>+llm`` whose
        top ``rerank_top`` candidates are re-ordered by an LLM yes/no question
        (``evaluate/rerank.py``); None: no reranking.
    rerank_systems: names of the systems to rerank (default: every system with a text
        representation: recent, history, memory and persona systems).
    fit_role: systems with parameters (``history_recency``, ``routed``) are fitted on the split
        users holding this role and not evaluated (``val`` of ``train roles``): each grid point
        is scored on them under ``fit_protocol`` by ``fit_metric`` (mean over users) and the
        first best point is kept. With no such user the defaults stay, and the report says so.
        None: never fit.
    """

    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    systems: str | None = None
    max_targets: int = 20
    seed: int = 0
    n_negatives: int = 99
    near_duplicate: float = 0.9
    users: int | None = None
    role: str | None = None
    baseline: str | None = None
    compare: list[str] | None = None
    bootstrap: int = 1000
    shuffle_targets: bool = False
    kinds: list[str] | None = None
    failed_sets: str = "missing"
    rerank: str | None = None
    rerank_top: int = 10
    rerank_systems: list[str] | None = None
    fit_role: str | None = "val"
    fit_protocol: str = "hard"
    fit_metric: str = "hit@10"

    def __post_init__(self) -> None:
        if self.fit_protocol not in PROTOCOLS:
            raise ValueError(f"unknown fit_protocol {self.fit_protocol!r}; choose from {', '.join(PROTOCOLS)}")
        if self.fit_metric not in METRICS:
            raise ValueError(f"unknown fit_metric {self.fit_metric!r}; choose from {', '.join(METRICS)}")
        if self.failed_sets not in ("missing", "chance"):
            raise ValueError(f"failed_sets must be missing or chance, not {self.failed_sets!r}")
        if self.rerank not in (None, "llm"):
            raise ValueError(f"unknown reranker {self.rerank!r}: the only one is llm")
        if self.rerank_top < 2:
            raise ValueError("rerank_top must be at least 2")
        if bad := [p for p in self.protocols if p not in PROTOCOLS]:
            raise ValueError(f"unknown protocol(s) {', '.join(bad)}; choose from {', '.join(PROTOCOLS)}")
        if self.max_targets < 1 or self.n_negatives < 1:
            raise ValueError("max_targets and n_negatives must be at least 1")
        if not 0 < self.near_duplicate <= 1:
            raise ValueError("near_duplicate must be in (0, 1]")
        for pair in self.compare or []:
            a, sep, b = pair.partition(":")
            if not sep or not a or not b or a == b:
                raise ValueError(f"compare pairs are 'A:B' with two different systems, not {pair!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation without fixed points (a random cycle order, shifted by one)."""
    order = np.random.default_rng(stable_seed("shuffle", seed)).permutation(n)
    out = [0] * n
    for i in range(n):
        out[int(order[i])] = int(order[(i + 1) % n])
    return out


@dataclass
class _Task:
    """What one scoring user is evaluated on: targets (pool positions) and candidate lists."""

    user_id: str
    owner: str
    targets: np.ndarray
    repeat: np.ndarray
    allowed: np.ndarray  # mask over the pool
    negatives: dict[str, list[np.ndarray]]  # protocol -> per target pool positions (not for full)
    hard_dropped: int = 0  # near-duplicates left out of the hard negatives
    shared_dropped: int = 0  # shuffled control: the owner's targets this user also has (history or future)


def _counts(scores: np.ndarray, task: _Task, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    ts = scores[task.targets]
    if protocol == "full":
        sorted_allowed = np.sort(scores[task.allowed])
        above = len(sorted_allowed) - np.searchsorted(sorted_allowed, ts + TIE_TOL, side="right")
        tied = np.searchsorted(sorted_allowed, ts + TIE_TOL, side="right") - np.searchsorted(
            sorted_allowed, ts - TIE_TOL, side="left")
        return above, tied
    higher, tied = np.zeros(len(ts), dtype=np.int64), np.zeros(len(ts), dtype=np.int64)
    for i, neg in enumerate(task.negatives[protocol]):
        ns = scores[neg]
        higher[i] = int((ns > ts[i] + TIE_TOL).sum())
        tied[i] = int((np.abs(ns - ts[i]) <= TIE_TOL).sum())
    return higher, tied


def run_evaluation(ws: Workspace, config: EvalConfig, *, embedder: Embedder, llm: LLM | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Evaluate every system under every protocol; return the report (also written to ``reports/``).

    ``llm`` is the reranker's model, needed only with ``config.rerank == "llm"``.
    """
    if config.rerank == "llm" and llm is None:
        raise ValueError("the llm reranker needs an LLM (CLI: --rerank llm with --model/--llm)")
    leak = _check_ready(ws)
    t_start = time.perf_counter()
    data = load_data(ws, max_targets=config.max_targets, seed=config.seed, kinds=config.kinds)
    users = _users(ws, data, config)
    systems = parse_specs(config.systems or default_specs(ws))
    names = [s.name for s in systems]
    baseline = config.baseline or ("single" if "single" in names else "history_embed")
    fit_users = _fit_users(ws, data, users, config) if any(s.grid() for s in systems) else []
    with ws.run("evaluate", {**config.to_dict(), "users_evaluated": len(users)}) as run, terminal.progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(), disable=not progress) as bar:
        ctx, embed_seconds = _embed(ws, data, users + fit_users, embedder, config, bar)
        prep_seconds: dict[str, float] = {}
        for s in systems:
            t0 = time.perf_counter()
            s.prepare(ctx, users + fit_users if s.grid() else users)
            prep_seconds[s.name] = time.perf_counter() - t0
        present = [s for s in systems if s.missing_reason is None and any(s.covers(u) for u in users)]
        fit_seconds = _fit(present, fit_users, data, config, ctx, bar)
        for name, sec in fit_seconds.items():
            prep_seconds[name] += sec
        missing = {s.name: s.missing_reason or "covers no evaluated user" for s in systems if s not in present}
        baseline_name = baseline if baseline in [s.name for s in present] else None
        baseline_note = "" if baseline_name else f"baseline {baseline!r} is not in the table: no paired tests"
        common = [u for u in users if all(s.covers(u) for s in present)]
        reranker, reranked = _rerankers(config, present, llm)
        tasks = _build_tasks(data, users, config, ctx.pool_vectors, bar)
        per, score_seconds = _score(tasks, present, reranker, reranked, config, data, bar)
        rows: list[System] = present + list(reranked.values())
        results = _aggregate(per, rows, common, users, baseline_name, config)
        comparisons, compare_missing = _compare(per, rows, common, config)
        report = {
            "config": config.to_dict(),
            "workspace": str(ws.path),
            "split": _split_info(ws),
            "interaction_kinds": data.kinds,
            "users": {"split": len(data.users) + len(data.skipped), "with_history_and_future": len(data.users),
                      "skipped": len(data.skipped), "skipped_reasons": _reasons(data.skipped),
                      "evaluated": len(users), "common": len(common),
                      "common_note": "every row of the main tables is computed on the users that every system in "
                                     "the table covers (common users); per-system coverage is listed beside"},
            "targets": _target_stats(tasks, common),
            "pool": {"distinct_future_texts": int(len(data.pool))},
            "protocols": {p: _protocol_stats(tasks, p, config) for p in config.protocols},
            "baseline": baseline_name, "baseline_note": baseline_note,
            "systems": {s.name: _describe_system(ws, s, users, common, prep_seconds, score_seconds, reranker)
                        for s in rows},
            "missing_systems": missing,
            "results": results["main"],
            "own_coverage": results["own"],
            "paired": results["paired"],
            "comparisons": comparisons, "comparisons_missing": compare_missing,
            "quality": _quality(ws, rows, common),
            "leakage_check": leak,
            "embed_model": embedder.model_id,
            "embed_seconds": round(embed_seconds, 2),
            "seconds": round(time.perf_counter() - t_start, 2),
            "common_users": common,
        }
        run.update({k: report[k] for k in ("users", "pool", "baseline", "missing_systems", "seconds")})
    name = "evaluate-shuffled" if config.shuffle_targets else "evaluate"  # the control never overwrites the table
    ws.write_report(name, report)
    chart = charts.write(ws.path / "reports" / f"{name}.svg", charts.evaluation_chart(
        report, title=f"HR@10 per system, {report['users']['common']} common users, {ws.path.name}"))
    (ws.path / "reports" / f"{name}.md").write_text(to_markdown(report, chart=chart.name if chart else None),
                                                     encoding="utf-8")
    return report


def _check_ready(ws: Workspace) -> dict[str, Any]:
    """A split exists and nothing stored cites the future; the leakage check's counts."""
    if not ws.has_table("splits") or not tables.protocol.split_users(ws.con):
        raise ValueError(f"no temporal split in {ws.path}: run `personaminer split -w {ws.path}` first")
    leak = check_no_leakage(ws)
    if not leak["ok"]:
        raise LeakageError(f"memories or personas cite actions at or after their user's cutoff: {leak}. Build the "
                           "memories from the history (`personaminer memories --history --set NEW_NAME`, after "
                           "`personaminer split`), then the personas on them")
    return leak


def _users(ws: Workspace, data: EvalData, config: EvalConfig) -> list[str]:
    """The evaluated users: split users with history and future, of ``config.role``, sampled to ``config.users``."""
    users = sorted(data.users)
    if config.role is not None:
        held = set(ws.role_users(config.role))
        if not held:
            raise ValueError(f"no user holds the role {config.role!r}: assign roles with `personaminer train roles`")
        users = [u for u in users if u in held]
    if config.users is not None and config.users < len(users):
        import random

        users = sorted(random.Random(config.seed).sample(users, config.users))
    if not users:
        raise ValueError("no split user has both history and future interactions to evaluate")
    return users


def _fit_users(ws: Workspace, data: EvalData, users: list[str], config: EvalConfig) -> list[str]:
    """Split users with history and future holding ``config.fit_role``, none of them evaluated."""
    if config.fit_role is None:
        return []
    evaluated = set(users)
    return sorted(u for u in ws.role_users(config.fit_role) if u in data.users and u not in evaluated)


def _fit(present: list[System], fit_users: list[str], data: EvalData, config: EvalConfig, ctx: EvalContext,
         bar: Progress) -> dict[str, float]:
    """Fit every system with a grid on the validation users (``EvalConfig.fit_role``); the seconds per system."""
    from dataclasses import replace

    fittable = [s for s in present if s.grid()]
    seconds: dict[str, float] = {}
    if not fittable:
        return seconds
    if not fit_users:
        reason = ("fitting is off (fit_role None)" if config.fit_role is None else
                  f"no split user holds the role {config.fit_role!r} outside the evaluated users: assign roles "
                  "with `personaminer train roles` and evaluate --role test")
        for s in fittable:
            s.fit_info = {"fitted": False, "reason": reason, "params_are": "defaults"}  # type: ignore[attr-defined]
        return seconds
    fit_config = replace(config, protocols=[config.fit_protocol], shuffle_targets=False)
    tasks = [t for t in _build_tasks(data, fit_users, fit_config, ctx.pool_vectors, bar) if len(t.targets)]
    fit_task = bar.add_task("fit on validation users", total=len(fittable) * len(tasks), stats="")
    for s in fittable:
        t0 = time.perf_counter()
        grid = s.grid()
        totals = np.zeros(len(grid))
        covered = 0
        for task in tasks:
            bar.update(fit_task, advance=1)
            if not s.covers(task.user_id):
                continue
            covered += 1
            for g, scores in enumerate(s.score_grid(task.user_id, grid)):
                vals = metrics_from_counts(*_counts(np.asarray(scores, dtype=np.float64), task, config.fit_protocol))
                totals[g] += float(vals[config.fit_metric].mean())
        if not covered:
            s.fit_info = {"fitted": False, "params_are": "defaults",  # type: ignore[attr-defined]
                          "reason": f"none of the {len(tasks)} {config.fit_role} users is covered by {s.name}"}
        else:
            best = int(np.argmax(totals))  # the first best point: grids go from the simplest
            s.set_params(grid[best])
            s.fit_info = {"fitted": True, "role": config.fit_role, "users": covered,  # type: ignore[attr-defined]
                          "protocol": config.fit_protocol, "metric": config.fit_metric, "grid_points": len(grid),
                          "best": round(float(totals[best] / covered), 4),
                          "first_point": round(float(totals[0] / covered), 4)}
        seconds[s.name] = time.perf_counter() - t0
    return seconds


def _embed(ws: Workspace, data: EvalData, users: list[str], embedder: Embedder, config: EvalConfig,
           bar: Progress) -> tuple[EvalContext, float]:
    """The evaluation context with the pool and every evaluated user's history embedded once."""
    t0 = time.perf_counter()
    pool_texts = [data.texts[int(t)] for t in data.pool]
    emb_task = bar.add_task("embed pool", total=len(pool_texts), stats="")
    chunks = []
    for s in range(0, len(pool_texts), 2048):
        chunks.append(embedder.encode(pool_texts[s:s + 2048]))
        bar.update(emb_task, advance=len(chunks[-1]))
    pool_vectors = np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)
    ctx = EvalContext(ws=ws, data=data, embedder=embedder, pool_vectors=pool_vectors,
                      failed_as_chance=config.failed_sets == "chance")
    ctx._vec.update({int(t): pool_vectors[i] for i, t in enumerate(data.pool)})
    hist = [i for i in dict.fromkeys(i for u in users for i in data.users[u].history) if i not in ctx._vec]
    hist_task = bar.add_task("embed history", total=len(hist), stats="")
    for s in range(0, len(hist), 2048):  # once for every system that embeds history texts
        ctx.text_vectors(hist[s:s + 2048])
        bar.update(hist_task, advance=len(hist[s:s + 2048]))
    return ctx, time.perf_counter() - t0


def _score(tasks: list[_Task], present: list[System], reranker: LLMReranker | None, reranked: dict[str, Reranked],
           config: EvalConfig, data: EvalData, bar: Progress) -> tuple[dict[str, Any], dict[str, float]]:
    """Per protocol, system, target group and user: the metrics; and the scoring seconds of each system."""
    pool_texts = [data.texts[int(t)] for t in data.pool]
    rows = present + list(reranked.values())
    per: dict[str, dict[str, dict[str, dict[str, dict[str, float]]]]] = {
        p: {s.name: {g: {} for g in GROUPS} for s in rows} for p in config.protocols}
    seconds = dict.fromkeys([s.name for s in rows], 0.0)
    user_task = bar.add_task("score users", total=len(tasks), stats="")

    def record(name: str, task: _Task, p: str, counts: tuple[np.ndarray, np.ndarray]) -> None:
        vals = metrics_from_counts(*counts)
        for g, sel in (("all", np.ones(len(task.targets), bool)), ("repeats", task.repeat), ("novel", ~task.repeat)):
            if sel.any():
                per[p][name][g][task.user_id] = {m: float(vals[m][sel].mean()) for m in METRICS}

    for task in tasks:
        for s in present:
            if not s.covers(task.user_id):
                continue
            t0 = time.perf_counter()
            scores = np.asarray(s.score(task.user_id), dtype=np.float64)
            for p in config.protocols:
                counts = _counts(scores, task, p)
                record(s.name, task, p, counts)
                if s.name in reranked and reranker is not None:
                    t1 = time.perf_counter()
                    cands = [np.flatnonzero(task.allowed)] * len(task.targets) if p == "full" else task.negatives[p]
                    record(reranked[s.name].name, task, p, reranker.counts(
                        s.name, scores, task.targets, cands, pool_texts, s.representation(task.user_id), counts,
                        profile_of=_route_profiles(s, task.user_id)))
                    spent = time.perf_counter() - t1
                    seconds[reranked[s.name].name] += spent
                    t0 += spent  # the base row's time leaves out its reranking
            seconds[s.name] += time.perf_counter() - t0
        bar.update(user_task, advance=1)
    return per, seconds


def _route_profiles(s: System, user_id: str) -> Any:
    """For a routed system, a candidate's reranker profile: its routing persona (else None)."""
    from personaminer.evaluate.systems import Routed

    if not isinstance(s, Routed) or user_id in s.chance_users:
        return None
    route = s.route(user_id)
    return lambda pos: s.route_profile(user_id, int(route[pos]))


def _describe_system(ws: Workspace, s: System, users: list[str], common: list[str], prep_seconds: dict[str, float],
                     score_seconds: dict[str, float], reranker: LLMReranker | None) -> dict[str, Any]:
    return {**s.describe(),
            "covered_users": sum(s.covers(u) for u in users),
            "not_covered": _reasons({u: s.not_covered[u] for u in users if u in s.not_covered}),
            "representation_tokens_per_user": mean([whitespace_tokens(s.representation(u)) for u in common], 4),
            "llm_tokens_per_user": mean([s.llm_tokens(u) for u in common], 4),
            "prepare_seconds": round(prep_seconds.get(s.name, 0.0), 2),
            "score_seconds": round(score_seconds[s.name], 2),
            "build_seconds_per_user": _build_seconds(ws, s.base if isinstance(s, Reranked) else s),
            **(rerank_describe(reranker, s.base.name) if isinstance(s, Reranked) and reranker is not None else {})}


def _rerankers(config: EvalConfig, present: list[System], llm: LLM | None
               ) -> tuple[LLMReranker | None, dict[str, Reranked]]:
    """The reranker and one ``<name>+llm`` row per reranked system (none without ``config.rerank``)."""
    if config.rerank is None or llm is None:
        return None, {}
    textual = [s for s in present if s.kind not in ("random", "popularity")]
    if config.rerank_systems is not None:
        names = {s.name for s in present}
        if unknown := [n for n in config.rerank_systems if n not in names]:
            raise ValueError(f"rerank_systems {', '.join(unknown)} are not in the table (have: {', '.join(names)})")
        if blind := [s.name for s in present if s.name in config.rerank_systems and s not in textual]:
            raise ValueError(f"{', '.join(blind)} has no user representation to show the LLM: rerank a text system")
        textual = [s for s in textual if s.name in config.rerank_systems]
    return LLMReranker(llm, top_k=config.rerank_top), {s.name: Reranked(s) for s in textual}


def _build_tasks(data: EvalData, users: Sequence[str], config: EvalConfig, pool_vectors: np.ndarray,
                 bar: Progress) -> list[_Task]:
    pos = data.pool_position()
    n_pool = len(data.pool)
    squashed = [squash(data.texts[int(t)]) for t in data.pool]
    owners = list(users)
    if config.shuffle_targets and len(users) > 1:
        owners = [users[j] for j in _derangement(len(users), config.seed)]

    def excluded(uid: str) -> set[int]:
        u = data.users[uid]
        return {pos[i] for i in u.history if i in pos} | {pos[i] for i in u.future}

    tasks = []
    neg_task = bar.add_task("draw candidates", total=len(users), stats="")
    for uid, owner in zip(users, owners, strict=True):
        o = data.users[owner]
        ex = excluded(owner) | (excluded(uid) if owner != uid else set())
        allowed = allowed_mask(n_pool, sorted(ex))
        keep = list(range(len(o.targets)))
        if owner != uid:  # the control: a target this user also has is theirs, not another user's; leave it out
            mine = excluded(uid)
            keep = [i for i in keep if pos[o.targets[i]] not in mine]
        targets = np.array([pos[o.targets[i]] for i in keep], dtype=np.int64)
        negatives: dict[str, list[np.ndarray]] = {}
        dropped = 0
        if "sampled" in config.protocols:
            negatives["sampled"] = [sampled_negatives(allowed, config.n_negatives, config.seed, owner, int(o.targets[i]))
                                    for i in keep]
        if "hard" in config.protocols:
            sims = pool_vectors[targets] @ pool_vectors.T
            negatives["hard"] = []
            for i, t in enumerate(targets):
                neg, d = hard_negatives(allowed, sims[i], config.n_negatives, config.near_duplicate, squashed,
                                        squashed[t])
                negatives["hard"].append(neg)
                dropped += d
        tasks.append(_Task(uid, owner, targets, np.array(o.repeat, dtype=bool)[keep], allowed, negatives, dropped,
                           len(o.targets) - len(keep)))
        bar.update(neg_task, advance=1)
    return tasks


def _paired(a: dict[str, Any], b: dict[str, Any], common: list[str], config: EvalConfig) -> dict[str, Any]:
    both = [u for u in common if u in a and u in b]
    return {m: _clean(paired_test(np.array([a[u][m] for u in both]), np.array([b[u][m] for u in both]),
                                  resamples=config.bootstrap, seed=config.seed))
            for m in ("hit@10", "ndcg@10", "mrr")}


def _compare(per: dict[str, Any], rows: list[System], common: list[str],
             config: EvalConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """The extra paired tests of ``config.compare``: protocol -> group -> "A:B" -> metric -> test."""
    names = {s.name for s in rows}
    pairs, missing = [], {}
    for pair in config.compare or []:
        a, _, b = pair.partition(":")
        if absent := [x for x in (a, b) if x not in names]:
            missing[pair] = f"not in the table: {', '.join(absent)}"
        else:
            pairs.append((pair, a, b))
    out = {p: {g: {pair: _paired(by_sys[a][g], by_sys[b][g], common, config) for pair, a, b in pairs}
               for g in GROUPS} for p, by_sys in per.items()} if pairs else {}
    return out, missing


def _aggregate(per: dict[str, Any], present: list[System], common: list[str], users: list[str],
               baseline: str | None, config: EvalConfig) -> dict[str, Any]:
    main: dict[str, Any] = {}
    own: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    for p, by_sys in per.items():
        main[p], own[p], paired[p] = {}, {}, {}
        for g in GROUPS:
            main[p][g], paired[p][g] = {}, {}
            for s in present:
                vals = by_sys[s.name][g]
                row: dict[str, Any] = {"users": sum(u in vals for u in common)}
                for m in METRICS:
                    arr = np.array([vals[u][m] for u in common if u in vals])
                    row[m] = {"mean": nan_to_none(float(arr.mean())) if len(arr) else None,
                              "ci95": [nan_to_none(x) for x in bootstrap_ci(arr, resamples=config.bootstrap,
                                                                            seed=config.seed)]}
                main[p][g][s.name] = row
                if baseline is not None and s.name != baseline:
                    paired[p][g][s.name] = _paired(vals, by_sys[baseline][g], common, config)
        for s in present:
            vals = by_sys[s.name]["all"]
            own[p][s.name] = {"users": len(vals), **{m: mean([v[m] for v in vals.values()], 4) for m in METRICS}}
    return {"main": main, "own": own, "paired": paired}


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: ([nan_to_none(x) for x in v] if isinstance(v, list) else nan_to_none(v)) for k, v in d.items()}


def _reasons(d: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in d.values():
        out[r] = out.get(r, 0) + 1
    return out


def _split_info(ws: Workspace) -> dict[str, Any]:
    return {"rules": {r[0]: {"users": r[1], "mean_history_days": round(r[2], 2), "mean_future_days": round(r[3], 2),
                             "history_actions": int(r[4]), "future_actions": int(r[5])}
                      for r in tables.protocol.split_summary(ws.con)}}


def _target_stats(tasks: list[_Task], common: list[str]) -> dict[str, Any]:
    cs = set(common)
    ts = [t for t in tasks if t.user_id in cs]
    n = sum(len(t.targets) for t in ts)
    rep = sum(int(t.repeat.sum()) for t in ts)
    return {"targets": n, "repeats": rep, "novel": n - rep, "per_user": round(n / len(ts), 2) if ts else None,
            "users_with_repeats": sum(bool(t.repeat.any()) for t in ts),
            "users_with_novel": sum(bool((~t.repeat).any()) for t in ts),
            "shuffled_shared_dropped": sum(t.shared_dropped for t in ts)}


def _protocol_stats(tasks: list[_Task], p: str, config: EvalConfig) -> dict[str, Any]:
    if p == "full":
        sizes = [int(t.allowed.sum()) + 1 for t in tasks]
        return {"candidates_per_target": {"mean": mean(sizes, 4), "min": min(sizes), "max": max(sizes)},
                "rule": "every distinct future text of the pool, the user's history and future excluded, plus the target"}
    sizes = [len(n) + 1 for t in tasks for n in t.negatives[p]]
    out: dict[str, Any] = {"n_negatives": config.n_negatives, "seed": config.seed,
                           "candidates_per_target": {"mean": mean(sizes, 4), "min": min(sizes), "max": max(sizes)},
                           "targets_with_fewer_negatives": sum(s < config.n_negatives + 1 for s in sizes)}
    if p == "hard":
        out["near_duplicate_cosine"] = config.near_duplicate
        out["near_duplicates_dropped"] = sum(t.hard_dropped for t in tasks)
    return out


def _build_seconds(ws: Workspace, s: System) -> float | None:
    """Stage wall time per user, estimated from the ``runs`` table: seconds per user of the
    memories runs of the system's memory set, plus (personas) of its builder's runs with that
    model. Runs that only skipped stored work are left out."""
    if not s.llm_built:
        return None
    memory_set = getattr(s, "memory_set", None)
    sec = {"memories": 0.0, "personas": 0.0}
    n = {"memories": 0, "personas": 0}
    for command, config, summary in tables.runs.ok_stage_runs(ws.con, ("memories", "personas")):
        cfg, summ = json.loads(config or "{}"), json.loads(summary or "{}")
        mine = command == "memories" and summ.get("memory_set") == memory_set and summ.get("days")
        mine = mine or (command == "personas" and isinstance(s, Personas) and s.group is not None
                        and cfg.get("builder") == s.builder and cfg.get("memory_set") == memory_set
                        and (summ.get("model") or "") == s.group.model and summ.get("sets"))
        if mine:
            sec[command] += float(summ.get("seconds") or 0.0)
            n[command] += int(summ.get("users") or 0)
    if not n["memories"] and not n["personas"]:
        return None
    return round(sum(sec[k] / n[k] for k in sec if n[k]), 2)


def _quality(ws: Workspace, present: list[System], common: list[str]) -> dict[str, Any]:
    """Mean quality terms of each persona system's evaluated sets, per judge and scorer config."""
    if not ws.has_table("set_scores"):
        return {}
    cs = set(common)
    out: dict[str, Any] = {}
    for s in present:
        if not isinstance(s, Personas) or not getattr(s, "set_ids", None):
            continue
        ids = [sid for u, sid in s.set_ids.items() if u in cs]
        by: dict[str, list[dict[str, Any]]] = {}
        for _, judge, key, values in tables.scores.values_of(ws.con, ids):
            by.setdefault(f"{judge}/{key}", []).append(values)
        out[s.name] = {k: {"sets": len(v), **{m: mean([x[m] for x in v if x.get(m) is not None], 4)
                                               for m in ("final", "cohesion", "alignment", "truthfulness")}}
                       for k, v in sorted(by.items())}
    return out
