"""Preference groups: G candidate persona sets per user, ranked by the quality score.

:func:`build_groups` (``personaminer train build-groups``):

1. splits the users into disjoint ``train`` / ``val`` / ``test`` roles (seeded; stored in the
   workspace table ``roles``, :mod:`personaminer.evaluate.split`, and in the dataset's meta file);
2. samples ``group_size`` candidate sets per train and val user from the persona model
   (temperature ``temperature``, sample *i* with seed ``seed + i``; stored as ordinary
   persona sets, so the run is resumable and every candidate can be inspected with ``show``);
3. optionally adds each user's stored sets of other builders (``include_builders``, e.g. the
   cluster builder) for real diversity, and each user's verified set (``verified``, the SFT
   warm start's target from ``train verified``), so a group of SFT-student samples always
   holds one strong candidate;
4. scores every candidate with the quality scorer and ranks them (stable: ties keep order);
5. adds samples that stayed invalid as candidates ranked last (``failed_candidates``);
   drops groups whose scores all lie within ``tie_margin`` (nothing to learn), groups with
   fewer than two distinct candidates and groups without a valid one, and counts each;
6. writes ``groups.jsonl`` (one group per line: the prompt messages and, per candidate, the
   canonical completion, score, terms and rank) and ``groups.meta.json`` (config, roles,
   counts, fingerprint).

The completion of every candidate is rendered in one canonical JSON format
(:func:`~personaminer.personas.model.render_completion`), so the policy is trained on what
the sets say, not on incidental whitespace of one sample.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personaminer import lineage, tables
from personaminer.embed import Embedder
from personaminer.evaluate.split import assign_roles, store_roles
from personaminer.llm.base import LLM
from personaminer.personas.base import PersonaConfig
from personaminer.personas.model import STUDENT_MAX_TOKENS, prepare, render_completion
from personaminer.personas.run import load_memory_items, persona_output, run_personas
from personaminer.quality.scorer import QualityConfig, run_scores
from personaminer.store import Workspace
from personaminer.train.data import fingerprint, read_groups

#: The code version of group building, part of every groups dataset's fingerprint.
CODE = "groups/2"  # 2: completions in the evidence-first format (persona_model.v3)


def _sampling() -> PersonaConfig:
    """The persona model's config for the candidates: G = 4 samples at temperature 1, short prompts and
    answers, no retries (retries keep the sampling temperature: ``retry_temperature=None``)."""
    return PersonaConfig(builder="model", memory_set="extractive", samples=4, temperature=1.0, max_memories=24,
                         max_tokens=STUDENT_MAX_TOKENS, max_retries=0, retry_temperature=None)


@dataclass
class GroupConfig:
    """Settings of preference-group building (recorded in the dataset's meta file).

    persona: the persona model's sampling config: ``persona.samples`` is G, the candidates per
        user (sample *i* uses seed ``persona.seed + i``); its collection defaults to
        ``candidates@MEMORY_SET``. ``max_retries`` (default 0): retries rarely rescue a small
        model's sample (SmolLM2 on AOL: 5 of 86 invalid samples, in 3 times the calls), and an
        invalid sample is a useful last-ranked candidate anyway (``failed_candidates``). The first
        attempt of a sample is the same request whatever it is, so the LLM cache serves samples
        drawn under another value.
    include_builders: stored sets of these builders (sample 0, same memory set) join each group.
    failed_candidates: a sample that stayed invalid after its retries joins the group as a
        candidate ranked below every valid one (score ``failed_score``), with its last raw
        answer as the completion. Most of a small model's samples fail (SmolLM2: 132 of 218 on
        AOL, mostly "..." placeholders); as negatives they teach it what not to write, and a
        group needs only one valid sample. Failed candidates tie with each other, and the
        losses never order tied candidates (see :mod:`personaminer.train.losses`).
    tie_margin: a group whose best and worst scores differ by less is dropped.
    val_users, test_users: how many users get each held-out role (the rest train); roles
        are drawn by a seeded hash of the user id, so they do not depend on the user order.
    quality: the scorer that ranks the candidates (default: the cheap ``embedding`` judge).
    verified: a ``verified.jsonl`` (``train verified``): each user's verified set joins the group
        (scored with ``quality`` like every candidate; users without one get none).
    """

    persona: PersonaConfig = field(default_factory=_sampling)
    include_builders: tuple[str, ...] = ()
    failed_candidates: bool = True
    failed_score: float = 0.0
    tie_margin: float = 0.01
    val_users: int = 10
    test_users: int = 30
    quality: QualityConfig = field(default_factory=lambda: QualityConfig(judge="embedding"))
    verified: str | None = None

    def __post_init__(self) -> None:
        if self.verified is not None and not Path(self.verified).is_file():
            raise ValueError(f"no verified-sets file {self.verified}: run `personaminer train verified` first")
        if self.persona.builder != "model":
            raise ValueError("preference groups sample the persona model (builder 'model')")
        if self.persona.samples < 2 and not self.include_builders:
            raise ValueError("a group needs at least two candidates: group_size >= 2 or include_builders")
        if self.persona.temperature <= 0:
            raise ValueError("sampling needs temperature > 0")
        if self.persona.name is None:
            self.persona = dataclasses.replace(self.persona, name=f"candidates@{self.persona.memory_set}")
        self.include_builders = tuple(self.include_builders)

    @property
    def group_size(self) -> int:
        return self.persona.samples

    @property
    def seed(self) -> int:
        return self.persona.seed


def build_groups(ws: Workspace, users: Sequence[str], config: GroupConfig, *, llm: LLM, embedder: Embedder,
                 out_dir: Path | None = None, sample: bool = True, replace: bool = False,
                 progress: bool = True) -> dict[str, Any]:
    """Sample, score and rank candidate sets; write the groups dataset. Returns the meta dict.

    With ``sample=False`` nothing is sampled: groups are built from the candidates already
    stored, and users without any are left out and counted (``users_not_sampled``).
    """
    out_dir = Path(out_dir) if out_dir is not None else ws.path / "train"
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = store_roles(ws, assign_roles(users, val_users=config.val_users, test_users=config.test_users,
                                         seed=config.seed), config.seed)
    learn = [u for u in users if roles[u] in ("train", "val")]
    ids, sampled, learn = _sample(ws, learn, config, llm=llm, embedder=embedder, sample=sample, progress=progress)
    scored = {b: run_scores(ws, config.quality, embedder=embedder, llm=None, where={"builder": b}, progress=progress)
              for b in ("model", *config.include_builders)}
    key = scored["model"]["config_key"]
    verified = _verified_sets(config.verified)
    for sid in sorted(set(verified.values())):  # scored like every candidate (stored scores are reused)
        run_scores(ws, config.quality, embedder=embedder, llm=None, where={"set_id": sid}, progress=False)
    parents = (persona_output(ws, config.persona, _builder(), embedder=embedder, llm=llm).fingerprint, key)
    out = lineage.Output("groups", str(out_dir.resolve()), CODE, asdict(config), parents)
    lineage.claim(ws, out, replace=replace)
    counts = {"users": len(users), "train_users": sum(r == "train" for r in roles.values()),
              "val_users": sum(r == "val" for r in roles.values()),
              "test_users": sum(r == "test" for r in roles.values()), "groups": 0, "candidates": 0,
              "dropped_tied": 0, "dropped_too_small": 0, "dropped_all_failed": 0, "failed_candidates": 0,
              "users_without_memories": 0, "verified_candidates": 0}
    groups = []
    for user_id in learn:
        memories = load_memory_items(ws, user_id, config.persona.memory_set)
        if not memories:
            counts["users_without_memories"] += 1
            continue
        prepared = prepare(memories, config.persona, embedder)
        cand_ids = ids.get(user_id, []) + [sid for b in config.include_builders for sid in tables.personas.first_set(
            ws.con, user_id, b, config.persona.memory_set)]
        if user_id in verified and verified[user_id] not in cand_ids:
            cand_ids.append(verified[user_id])
            counts["verified_candidates"] += 1
        ranked = _rank(ws, cand_ids, prepared, config, key, counts)
        if ranked is not None:
            groups.append({"user_id": user_id, "role": roles[user_id], "messages": prepared.messages(),
                           "n_shown": len(prepared.shown), "candidates": ranked})
    path = _write(out_dir, groups)
    meta = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "workspace": str(ws.path),
            "config": asdict(config), "model": llm.model_id, "quality_config_key": key, "counts": counts,
            "roles": roles, "fingerprint": fingerprint(path), "lineage": out.fingerprint,
            "sampling": {k: sampled[k] for k in ("sets", "sets_skipped", "failed_sets", "llm_model_calls",
                                                 "prompt_tokens", "completion_tokens", "seconds",
                                                 "users_not_sampled") if k in sampled},
            "scoring": {b: {"scored_now": v["scored_now"], "seconds": v["seconds"]} for b, v in scored.items()},
            "groups_with_signal": _signal(groups, len(learn) - counts["users_without_memories"])}
    (out_dir / "groups.meta.json").write_text(json.dumps(meta, indent=2, default=str))
    ws.write_report("train-build-groups", {k: v for k, v in meta.items() if k != "roles"})
    return meta


def _verified_sets(path: str | None) -> dict[str, str]:
    """``user_id -> set_id`` of a verified-sets file (empty without one)."""
    if path is None:
        return {}
    return {g["user_id"]: g["candidates"][0]["set_id"] for g in read_groups([path]) if g["candidates"]}


def _signal(groups: list[dict[str, Any]], attempted: int) -> dict[str, Any]:
    """How many of the ``attempted`` users' groups carry quality signal: at least two valid
    candidates with distinct scores (a dropped group carries none)."""
    n = sum(len({round(c["score"], 9) for c in g["candidates"] if c["valid"]}) >= 2 for g in groups)
    return {"groups": n, "of": attempted, "share": n / attempted if attempted else None}


def _builder():  # type: ignore[no-untyped-def]
    from personaminer.personas.run import make_builder

    return make_builder("model")


def _sample(ws: Workspace, learn: list[str], config: GroupConfig, *, llm: LLM, embedder: Embedder, sample: bool,
            progress: bool) -> tuple[dict[str, list[str]], dict[str, Any], list[str]]:
    """The candidates' set ids per user: sampled now (and stored as a persona collection), or, with
    ``sample=False``, those the collection already holds (users without any are left out)."""
    if sample:
        s = run_personas(ws, learn, config.persona, embedder=embedder, llm=llm, progress=progress)
        return s["set_ids"], s, learn
    stored = tables.personas.collection_sets(ws.con, config.persona.collection)
    have = [u for u in learn if stored.get(u)]
    return ({u: stored[u] for u in have}, {"sets": 0, "sets_skipped": 0, "failed_sets": 0, "llm_model_calls": 0,
                                          "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                                          "users_not_sampled": len(learn) - len(have)}, have)


def _rank(ws: Workspace, ids: list[str], prepared: Any, config: GroupConfig, key: str,
          counts: dict[str, int]) -> list[dict[str, Any]] | None:
    """One user's candidates, scored and ranked (best first gets rank 1); None when the group is
    dropped (all failed, fewer than two distinct candidates, or all tied), counted in ``counts``."""
    sets = tables.personas.scored_sets(ws.con, ids, config.quality.judge, key)
    failed = tables.personas.failed_sets(ws.con, ids) if config.failed_candidates else {}
    candidates = []
    for sid in ids:
        s = sets.get(sid)
        if sid in failed:
            bad = failed[sid]
            candidates.append({"set_id": sid, "builder": bad["builder"], "sample_index": bad["sample_index"],
                               "completion": bad["raw"], "score": config.failed_score, "valid": False, "terms": None})
            continue
        completion = render_completion(s["personas"], prepared.shown) if s else None
        final = s["values"].get("final") if s else None
        if completion is None or final is None or math.isnan(final):
            continue
        candidates.append({"set_id": sid, "builder": s["builder"], "sample_index": s["sample_index"],
                           "completion": completion, "score": float(final), "valid": True,
                           "terms": {t: s["values"].get(t) for t in ("cohesion", "alignment", "truthfulness",
                                                                     "coverage")}})
    seen: set[str] = set()  # identical completions (greedy-like samples) carry no preference
    candidates = [c for c in candidates if not (c["completion"] in seen or seen.add(c["completion"]))]
    n_valid = sum(c["valid"] for c in candidates)
    scores = [c["score"] for c in candidates]
    if n_valid == 0:
        counts["dropped_all_failed"] += 1
    elif len(candidates) < 2:
        counts["dropped_too_small"] += 1
    elif max(scores) - min(scores) < config.tie_margin:
        counts["dropped_tied"] += 1
    else:
        for rank, i in enumerate(sorted(range(len(candidates)), key=lambda i: -scores[i]), start=1):
            candidates[i]["rank"] = rank
        counts["groups"] += 1
        counts["candidates"] += len(candidates)
        counts["failed_candidates"] += len(candidates) - n_valid
        return candidates
    return None


def _write(out_dir: Path, groups: list[dict[str, Any]]) -> Path:
    """``groups.jsonl``, one group per line, written atomically."""
    path = out_dir / "groups.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for g in groups:
            f.write(json.dumps(g, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
