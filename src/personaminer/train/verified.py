"""Verified sets: the SFT warm start's data, by rejection sampling from a stronger teacher.

:func:`build_verified` (``personaminer train verified``), for every ``train`` and ``val`` user
(the roles of ``personaminer train roles``; ``test`` users are never read):

1. gathers the user's stored, valid sets of the teacher collections (by default the cluster
   builder and the 1.5B persona model on the chosen memory set; every stored sample counts);
2. scores those not yet scored with the quality scorer (``quality``; stored like any score);
3. keeps the best-scoring one if its ``final`` is at least ``min_score`` (ties: the first
   collection listed, then the lower sample index), else records the user as rejected;
4. renders it as the student's training target: the student's own prompt (the persona model's
   prompt over the memories it would be shown, :func:`~personaminer.personas.model.prepare`
   with ``student``'s settings) and the set in the evidence-first answer format
   (:func:`~personaminer.personas.model.render_completion`). Evidence outside the shown memories
   is dropped from the target (counted per set as ``evidence_not_shown``).

It writes ``verified.jsonl`` in the groups format (one group per user with a single
candidate, so ``personaminer train fit --loss sft`` reads it like a groups file) and
``verified.meta.json`` (config, counts, the score config key, the teacher models, the file's
sha256). Each candidate carries its provenance: set id, builder, collection, model, prompt,
score and terms.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personaminer import lineage, tables
from personaminer.embed import Embedder
from personaminer.evaluate.split import load_roles
from personaminer.llm.base import LLM
from personaminer.personas.base import PersonaConfig
from personaminer.personas.model import STUDENT_MAX_TOKENS, prepare, render_completion
from personaminer.personas.run import load_memory_items
from personaminer.quality.scorer import QualityConfig, run_scores, score_output
from personaminer.store import Workspace
from personaminer.train.data import fingerprint

#: The code version of verified-set selection, part of the dataset's fingerprint.
CODE = "verified/1"


def _student() -> PersonaConfig:
    """The student's prompt settings (as in preference groups): the persona model over at most
    24 memories of the extractive memory set."""
    return PersonaConfig(builder="model", memory_set="extractive", max_memories=24, max_tokens=STUDENT_MAX_TOKENS)


@dataclass
class VerifiedConfig:
    """Settings of verified-set selection (recorded in ``verified.meta.json``).

    teachers: the persona collections whose sets compete (default: the cluster builder and the
        persona model on ``student.memory_set``, i.e. ``cluster@M`` and ``model@M``).
    min_score: a user's best set is kept only when its ``final`` is at least this. The default,
        0.5, lies above the mean final of the one-persona ``single`` builder under the embedding
        judge (0.45 to 0.47 on 20 AOL and 20 Instacart users, docs/quality.md) and far above the
        degenerate sets a reward-hacking model writes (0 to 0.17), and below the cluster
        builder's mean (0.65 to 0.72): a set must be better than "one persona for everything".
    student: the student's prompt settings (memory set, how many memories it is shown).
    quality: the scorer that ranks the teachers' sets (default: the embedding judge, as the
        groups use; ``--judge llm`` for the LLM judge).
    roles: which roles get verified sets.
    """

    teachers: tuple[str, ...] = ()
    min_score: float = 0.5
    student: PersonaConfig = field(default_factory=_student)
    quality: QualityConfig = field(default_factory=lambda: QualityConfig(judge="embedding"))
    roles: tuple[str, ...] = ("train", "val")

    def __post_init__(self) -> None:
        if self.student.builder != "model":
            raise ValueError("the student is the persona model (builder 'model')")
        if not self.teachers:
            self.teachers = (f"cluster@{self.student.memory_set}", f"model@{self.student.memory_set}")
        self.teachers = tuple(self.teachers)
        self.roles = tuple(self.roles)
        if "test" in self.roles:
            raise ValueError("test users never train: verified sets are for the train and val roles")
        if not 0 <= self.min_score <= 1:
            raise ValueError("min_score is a final score, between 0 and 1")


def build_verified(ws: Workspace, config: VerifiedConfig, *, embedder: Embedder, llm: LLM | None = None,
                   out_dir: Path | None = None, replace: bool = False, progress: bool = True) -> dict[str, Any]:
    """Select, render and write each train/val user's verified set; returns the meta dict.

    ``llm`` is the judge (needed only with ``quality.judge == "llm"``)."""
    roles = load_roles(ws)
    if not roles:
        raise ValueError(f"no held-out roles in {ws.path}: run `personaminer train roles` (or build-groups) first")
    users = sorted(u for u, r in roles.items() if r in config.roles)
    out_dir = Path(out_dir) if out_dir is not None else ws.path / "train"
    out_dir.mkdir(parents=True, exist_ok=True)
    pools = {c: tables.personas.collection_sets(ws.con, c) for c in config.teachers}
    if missing := [c for c, p in pools.items() if not p]:
        raise ValueError(f"no stored sets in collection(s) {', '.join(missing)}: build them with `personaminer "
                         "personas` (see docs/training.md), or pass --teacher")
    key = score_output(config.quality, embedder=embedder, llm=llm).fingerprint
    scored_now = 0
    for c in config.teachers:
        s = run_scores(ws, config.quality, embedder=embedder, llm=llm, where={"collection": c}, progress=progress)
        scored_now += s["scored_now"]
    teachers = [tables.lineage.get(ws.con, "personas", c) for c in config.teachers]
    parents = (*(t["fingerprint"] for t in teachers if t is not None), key)
    out = lineage.Output("verified", str(out_dir.resolve()), CODE, asdict(config), parents)
    lineage.claim(ws, out, replace=replace)
    counts = {"users": len(users), "kept": 0, "rejected_below_threshold": 0, "no_teacher_set": 0,
              "users_without_memories": 0, "evidence_not_shown": 0, "scored_now": scored_now}
    by_collection = {c: 0 for c in config.teachers}
    groups, rejected = [], []
    for user_id in users:
        best = _best(ws, user_id, config, pools, key)
        if best is None:
            counts["no_teacher_set"] += 1
            continue
        if best["score"] < config.min_score:
            counts["rejected_below_threshold"] += 1
            rejected.append({"user_id": user_id, "set_id": best["set_id"], "score": best["score"]})
            continue
        memories = load_memory_items(ws, user_id, config.student.memory_set)
        if not memories:
            counts["users_without_memories"] += 1
            continue
        prepared = prepare(memories, config.student, embedder)
        shown = {m.memory_id for m in prepared.shown}
        completion = render_completion(best["personas"], prepared.shown)
        if completion is None:
            counts["no_teacher_set"] += 1
            continue
        lost = sum(e not in shown for _, _, ev in best["personas"] for e in ev)
        counts["evidence_not_shown"] += lost
        counts["kept"] += 1
        by_collection[best["collection"]] += 1
        cand = {k: best[k] for k in ("set_id", "builder", "collection", "model", "prompt", "sample_index", "score",
                                     "terms")}
        groups.append({"user_id": user_id, "role": roles[user_id], "messages": prepared.messages(),
                       "n_shown": len(prepared.shown),
                       "candidates": [{**cand, "completion": completion, "valid": True, "rank": 1,
                                       "evidence_not_shown": lost}]})
    path = out_dir / "verified.jsonl"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(g, ensure_ascii=False) + "\n" for g in groups), encoding="utf-8")
    tmp.replace(path)
    scores = [g["candidates"][0]["score"] for g in groups]
    meta = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "workspace": str(ws.path),
            "config": asdict(config), "quality_config_key": key, "counts": counts, "kept_by_collection": by_collection,
            "mean_kept_score": sum(scores) / len(scores) if scores else None, "rejected": rejected,
            "fingerprint": fingerprint(path), "lineage": out.fingerprint}
    (out_dir / "verified.meta.json").write_text(json.dumps(meta, indent=2, default=str))
    ws.write_report("train-verified", {k: v for k, v in meta.items() if k != "rejected"})
    return meta


def _best(ws: Workspace, user_id: str, config: VerifiedConfig, pools: dict[str, dict[str, list[str]]], key: str
          ) -> dict[str, Any] | None:
    """The user's best-scoring teacher set (None when no teacher collection has a scored one)."""
    best: dict[str, Any] | None = None
    for collection in config.teachers:
        ids = pools[collection].get(user_id, [])
        sets = tables.personas.scored_sets(ws.con, ids, config.quality.judge, key)
        for sid in ids:  # in sample order: ties keep the first collection, then the lower sample
            s = sets.get(sid)
            final = s["values"].get("final") if s else None
            if s is None or final is None or (isinstance(final, float) and math.isnan(final)) or not s["personas"]:
                continue
            if best is None or final > best["score"]:
                model, prompt = _provenance(ws, sid)
                best = {"set_id": sid, "builder": s["builder"], "collection": collection, "model": model,
                        "prompt": prompt, "sample_index": s["sample_index"], "score": float(final),
                        "personas": s["personas"],
                        "terms": {t: s["values"].get(t) for t in ("cohesion", "alignment", "truthfulness",
                                                                  "specificity", "distinctness")}}
    return best


def _provenance(ws: Workspace, set_id: str) -> tuple[str | None, str | None]:
    row = ws.con.execute("SELECT model, prompt FROM persona_sets WHERE set_id = ?", [set_id]).fetchone()
    return (row[0], row[1]) if row else (None, None)

