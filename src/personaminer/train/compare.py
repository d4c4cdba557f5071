"""``personaminer train compare``: the persona model before and after training, on held-out users.

Each system (the base GGUF, and the base plus each adapter) writes one greedy persona set per
test user with the ``model`` builder; every set is scored by the quality scorer; the report
gives, per system, the mean and standard error of the final score and each term over its valid
sets, and the paired difference to the base on the users every system covers. Because a model
that fails more often is scored on fewer (and easier) users, the report also gives, over all
users, the share of valid sets (``valid``) and the final score with a failed set counted as 0
(``final_all``, the quantity the groups rank by), with paired differences over all users.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from personaminer import tables
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.personas.base import PersonaConfig
from personaminer.personas.run import run_personas
from personaminer.quality.scorer import QualityConfig, run_scores
from personaminer.stats import describe
from personaminer.store import Workspace

TERMS = ("final", "cohesion", "alignment", "truthfulness", "coverage", "n_personas")


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)


def compare_systems(ws: Workspace, users: Sequence[str], systems: dict[str, tuple[LLM, str | None]],
                    persona_config: PersonaConfig,
                    quality: QualityConfig, *, embedder: Embedder, judge: LLM | None,
                    progress: bool = True) -> dict[str, Any]:
    """Build, score and compare. ``systems`` maps a name to (LLM, adapter path or None); the
    first is the baseline. The adapter path is recorded in each set's config, as
    ``personaminer personas --adapter`` does, so the sets are the same either way."""
    if persona_config.builder != "model":
        raise ValueError("compare runs the persona model (builder 'model')")
    set_ids: dict[str, dict[str, str]] = {}
    builds = {}
    for name, (llm, adapter) in systems.items():
        cfg = dataclasses.replace(persona_config, adapter=adapter, name=f"compare:{name}@{persona_config.memory_set}")
        builds[name] = run_personas(ws, users, cfg, embedder=embedder, llm=llm, progress=progress)
        set_ids[name] = {u: ids[0] for u, ids in builds[name]["set_ids"].items()}
    key = run_scores(ws, quality, embedder=embedder, llm=judge, where={"builder": "model"},
                     progress=progress)["config_key"]
    values: dict[str, dict[str, dict[str, Any]]] = {}
    for name, ids in set_ids.items():
        by_set = {s: v for s, _, _, v in tables.scores.values_of(ws.con, list(ids.values()), quality.judge, key)}
        values[name] = {u: by_set[s] for u, s in ids.items() if s in by_set}
    status = {name: tables.personas.statuses(ws.con, list(ids.values())) for name, ids in set_ids.items()}
    overall = {name: {u: (float(status[name].get(s) not in (None, "failed")),
                          _num(values[name].get(u, {}).get("final")) if u in values[name] else 0.0)
                      for u, s in ids.items()} for name, ids in set_ids.items()}
    names = list(systems)
    common = sorted(set.intersection(*(set(v) for v in values.values()))) if values else []
    report: dict[str, Any] = {"users": len(users), "users_scored_by_all": len(common), "judge": quality.judge,
                              "quality_config": key, "systems": {}, "paired_vs_" + names[0]: {}}
    for name in names:
        v = values[name]
        report["systems"][name] = {
            "model": systems[name][0].model_id, "adapter": systems[name][1], "sets_scored": len(v),
            "failed_sets": builds[name]["failed_sets"], "llm_model_calls": builds[name]["llm_model_calls"],
            "completion_tokens": builds[name]["completion_tokens"], "seconds": builds[name].get("seconds"),
            **{t: describe([v[u].get(t) for u in v]) for t in TERMS},
            "valid": describe([o[0] for o in overall[name].values()]),
            "final_all": describe([o[1] for o in overall[name].values()])}
    base = values[names[0]]
    for name in names[1:]:
        report["paired_vs_" + names[0]][name] = {
            **{t: describe([_num(values[name][u].get(t)) - _num(base[u].get(t)) for u in common]) for t in TERMS},
            **{t: describe([overall[name][u][i] - overall[names[0]][u][i] for u in users])
               for i, t in enumerate(("valid", "final_all"))}}
    return report
