"""Preference groups: G candidate persona sets per user, ranked by the quality score.

:func:`build_groups` (``personaminer train build-groups``):

1. splits the users into disjoint ``train`` / ``val`` / ``test`` roles (seeded; stored in the
   workspace table ``train_roles`` and in the dataset's meta file);
2. samples ``group_size`` candidate sets per train and val user from the persona model
   (temperature ``temperature``, sample *i* with seed ``seed + i``; stored as ordinary
   persona sets, so the run is resumable and every candidate can be inspected with ``show``);
3. optionally adds each user's stored sets of other builders (``include_builders``, e.g. the
   cluster builder) for real diversity;
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

import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.personas.base import PersonaConfig, new_set
from personaminer.personas.model import prepare, render_completion
from personaminer.personas.run import load_memory_items, run_personas
from personaminer.quality.scorer import QualityConfig, run_scores
from personaminer.store import Workspace
from personaminer.train.data import fingerprint

ROLES_DDL = """
CREATE TABLE IF NOT EXISTS train_roles (
    user_id VARCHAR PRIMARY KEY,
    role VARCHAR NOT NULL,     -- train | val | test
    seed INTEGER NOT NULL
)"""


@dataclass
class GroupConfig:
    """Settings of preference-group building (recorded in the dataset's meta file).

    group_size: G, persona-model samples per user.
    max_retries: re-asks of an invalid sample (0: none). Retries rarely rescue a small
        model's sample (SmolLM2 on AOL: 5 of 86 invalid samples, in 3 times the calls), and an
        invalid sample is a useful last-ranked candidate anyway (``failed_candidates``). The
        first attempt of a sample is the same request whatever this is, so the LLM cache
        serves samples drawn under another value.
    temperature, seed: sampling temperature; sample *i* uses seed ``seed + i``.
    include_builders: stored sets of these builders (sample 0) join each group.
    failed_candidates: a sample that stayed invalid after its retries joins the group as a
        candidate ranked below every valid one (score ``failed_score``), with its last raw
        answer as the completion. Most of a small model's samples fail (SmolLM2: 132 of 218 on
        AOL, mostly "..." placeholders); as negatives they teach it what not to write, and a
        group needs only one valid sample. Failed candidates tie with each other, and the
        losses never order tied candidates (see :mod:`personaminer.train.losses`).
    tie_margin: a group whose best and worst scores differ by less is dropped.
    val_users, test_users: how many users get each held-out role (the rest train); roles
        are drawn by a seeded hash of the user id, so they do not depend on the user order.
    judge: the quality scorer's claim judge used for ranking (``embedding`` is cheap).
    """

    group_size: int = 4
    temperature: float = 1.0
    seed: int = 0
    memory_set: str = "extractive"
    max_memories: int = 24
    min_personas: int = 2
    max_personas: int = 5
    max_tokens: int = 512
    max_retries: int = 0
    include_builders: tuple[str, ...] = ()
    failed_candidates: bool = True
    failed_score: float = 0.0
    tie_margin: float = 0.01
    val_users: int = 10
    test_users: int = 30
    judge: str = "embedding"
    weights: dict[str, float] = field(default_factory=lambda: {"cohesion": 1 / 3, "alignment": 1 / 3,
                                                               "truthfulness": 1 / 3})

    def __post_init__(self) -> None:
        if self.group_size < 2 and not self.include_builders:
            raise ValueError("a group needs at least two candidates: group_size >= 2 or include_builders")
        if self.temperature <= 0:
            raise ValueError("sampling needs temperature > 0")
        self.include_builders = tuple(self.include_builders)

    def persona_config(self) -> PersonaConfig:
        """The persona model's config for the samples. Retries keep the sampling temperature
        (``retry_temperature=None``): candidates are already sampled, so a retry samples too."""
        return PersonaConfig(builder="model", memory_set=self.memory_set, min_personas=self.min_personas,
                             max_personas=self.max_personas, samples=self.group_size, temperature=self.temperature,
                             seed=self.seed, max_memories=self.max_memories, max_tokens=self.max_tokens,
                             max_retries=self.max_retries, retry_temperature=None)

    def quality_config(self) -> QualityConfig:
        return QualityConfig(judge=self.judge, weights=dict(self.weights))  # type: ignore[arg-type]


def assign_roles(users: Sequence[str], *, val_users: int, test_users: int, seed: int) -> dict[str, str]:
    """Disjoint roles by a seeded hash of each user id: the first ``test_users`` are test, the
    next ``val_users`` val, the rest train."""
    if val_users + test_users >= len(users):
        raise ValueError(f"{len(users)} users leave none for training with {val_users} val and {test_users} test")
    order = sorted(users, key=lambda u: hashlib.sha256(f"{seed}\x1f{u}".encode()).hexdigest())
    roles = {u: "test" for u in order[:test_users]}
    roles.update({u: "val" for u in order[test_users:test_users + val_users]})
    roles.update({u: "train" for u in order[test_users + val_users:]})
    return roles


def store_roles(ws: Workspace, roles: dict[str, str], seed: int) -> dict[str, str]:
    """Record roles; a user keeps the role it already has (roles never move between runs)."""
    ws.con.execute(ROLES_DDL)
    have = dict(ws.con.execute("SELECT user_id, role FROM train_roles").fetchall())
    new = [(u, r, seed) for u, r in roles.items() if u not in have]
    if new:
        ws.con.executemany("INSERT INTO train_roles VALUES (?, ?, ?)", new)
    return {**roles, **{u: have[u] for u in roles if u in have}}


def load_roles(ws: Workspace) -> dict[str, str]:
    ws.con.execute(ROLES_DDL)
    return dict(ws.con.execute("SELECT user_id, role FROM train_roles").fetchall())


def _set_rows(ws: Workspace, set_ids: Sequence[str], judge: str, key: str) -> dict[str, dict[str, Any]]:
    """Personas and scores of the given sets (only sets that were scored and did not fail)."""
    if not set_ids:
        return {}
    rows = ws.con.execute(
        "SELECT s.set_id, s.builder, s.sample_index, x.values FROM persona_sets s JOIN set_scores x USING (set_id) "
        "WHERE s.set_id IN (SELECT unnest(?)) AND s.status <> 'failed' AND x.judge = ? AND x.config_key = ?",
        [list(set_ids), judge, key]).fetchall()
    out = {sid: {"builder": b, "sample_index": i, "values": json.loads(v), "personas": []} for sid, b, i, v in rows}
    for sid, label, desc, evidence in ws.con.execute(
            "SELECT set_id, label, description, evidence FROM personas WHERE set_id IN (SELECT unnest(?)) "
            "ORDER BY set_id, position", [list(out)]).fetchall():
        out[sid]["personas"].append((label, desc, list(evidence)))
    return out


def _failed_rows(ws: Workspace, set_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Raw last answers of the given sets that failed."""
    if not set_ids:
        return {}
    rows = ws.con.execute(
        "SELECT set_id, builder, sample_index, raw FROM persona_sets WHERE set_id IN (SELECT unnest(?)) "
        "AND status = 'failed' AND raw IS NOT NULL AND trim(raw) <> ''", [list(set_ids)]).fetchall()
    return {sid: {"builder": b, "sample_index": i, "raw": raw.strip()} for sid, b, i, raw in rows}


def build_groups(ws: Workspace, users: Sequence[str], config: GroupConfig, *, llm: LLM, embedder: Embedder,
                 out_dir: Path | None = None, sample: bool = True, progress: bool = True) -> dict[str, Any]:
    """Sample, score and rank candidate sets; write the groups dataset. Returns the meta dict.

    With ``sample=False`` nothing is sampled: groups are built from the candidates already
    stored, and users without any are left out and counted (``users_not_sampled``).
    """
    out_dir = Path(out_dir) if out_dir is not None else ws.path / "train"
    out_dir.mkdir(parents=True, exist_ok=True)
    roles = store_roles(ws, assign_roles(users, val_users=config.val_users, test_users=config.test_users,
                                         seed=config.seed), config.seed)
    learn = [u for u in users if roles[u] in ("train", "val")]
    pconf = config.persona_config()
    if sample:
        sampled = run_personas(ws, learn, pconf, embedder=embedder, llm=llm, progress=progress)
    else:  # groups from the candidates stored so far (e.g. a long sampling run stopped part-way)
        stored = {r[0] for r in ws.con.execute("SELECT set_id FROM persona_sets WHERE builder = 'model'").fetchall()}
        have = {u for u in learn if any(new_set("model", u, pconf, s, llm.model_id, None).set_id in stored
                                        for s in range(config.group_size))}
        sampled = {"sets": 0, "sets_skipped": 0, "failed_sets": 0, "llm_model_calls": 0, "prompt_tokens": 0,
                   "completion_tokens": 0, "seconds": 0.0, "users_not_sampled": len(learn) - len(have)}
        learn = [u for u in learn if u in have]
    qconf = config.quality_config()
    scored = {b: run_scores(ws, qconf, embedder=embedder, llm=None, where={"builder": b}, progress=progress)
              for b in ("model", *config.include_builders)}
    key = qconf.key()
    counts = {"users": len(users), "train_users": sum(r == "train" for r in roles.values()),
              "val_users": sum(r == "val" for r in roles.values()),
              "test_users": sum(r == "test" for r in roles.values()), "groups": 0, "candidates": 0,
              "dropped_tied": 0, "dropped_too_small": 0, "dropped_all_failed": 0, "failed_candidates": 0,
              "users_without_memories": 0}
    path = out_dir / "groups.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for user_id in learn:
            memories = load_memory_items(ws, user_id, config.memory_set)
            if not memories:
                counts["users_without_memories"] += 1
                continue
            prepared = prepare(memories, pconf, embedder)
            ids = [new_set("model", user_id, pconf, s, llm.model_id, None).set_id for s in range(config.group_size)]
            for b in config.include_builders:
                ids += [r[0] for r in ws.con.execute(
                    "SELECT set_id FROM persona_sets WHERE user_id = ? AND builder = ? AND memory_set = ? AND "
                    "sample_index = 0 AND status <> 'failed' ORDER BY set_id LIMIT 1",
                    [user_id, b, config.memory_set]).fetchall()]
            sets = _set_rows(ws, ids, qconf.judge, key)
            failed = _failed_rows(ws, ids) if config.failed_candidates else {}
            candidates = []
            for sid in ids:
                s = sets.get(sid)
                if sid in failed:
                    bad = failed[sid]
                    candidates.append({"set_id": sid, "builder": bad["builder"], "sample_index": bad["sample_index"],
                                       "completion": bad["raw"], "score": config.failed_score, "valid": False,
                                       "terms": None})
                    continue
                completion = render_completion(s["personas"], prepared.shown) if s else None
                final = s["values"].get("final") if s else None
                if completion is None or final is None or math.isnan(final):
                    continue
                candidates.append({"set_id": sid, "builder": s["builder"], "sample_index": s["sample_index"],
                                   "completion": completion, "score": float(final), "valid": True,
                                   "terms": {t: s["values"].get(t) for t in ("cohesion", "alignment", "truthfulness",
                                                                             "coverage")}})
            # drop identical completions (greedy-like samples): they carry no preference
            seen: set[str] = set()
            candidates = [c for c in candidates if not (c["completion"] in seen or seen.add(c["completion"]))]
            n_valid = sum(c["valid"] for c in candidates)
            if n_valid == 0:
                counts["dropped_all_failed"] += 1
                continue
            if len(candidates) < 2:
                counts["dropped_too_small"] += 1
                continue
            scores = [c["score"] for c in candidates]
            if max(scores) - min(scores) < config.tie_margin:
                counts["dropped_tied"] += 1
                continue
            order = sorted(range(len(candidates)), key=lambda i: -scores[i])
            for rank, i in enumerate(order, start=1):
                candidates[i]["rank"] = rank
            f.write(json.dumps({"user_id": user_id, "role": roles[user_id], "messages": prepared.messages(),
                                "n_shown": len(prepared.shown), "candidates": candidates},
                               ensure_ascii=False) + "\n")
            counts["groups"] += 1
            counts["candidates"] += len(candidates)
            counts["failed_candidates"] += len(candidates) - n_valid
    tmp.replace(path)
    meta = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "workspace": str(ws.path),
            "config": asdict(config), "model": llm.model_id, "quality_config_key": key, "counts": counts,
            "roles": roles, "fingerprint": fingerprint(path), "sampling": {k: sampled[k] for k in (
                "sets", "sets_skipped", "failed_sets", "llm_model_calls", "prompt_tokens", "completion_tokens",
                "seconds", "users_not_sampled") if k in sampled}, "scoring": {b: {"scored_now": v["scored_now"], "seconds": v["seconds"]}
                                         for b, v in scored.items()}}
    (out_dir / "groups.meta.json").write_text(json.dumps(meta, indent=2))
    ws.write_report("train-build-groups", {k: v for k, v in meta.items() if k != "roles"})
    return meta
