"""Verified sets (the SFT warm start's data) on real AOL memories with stand-in teachers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.evaluate.split import assign_roles, store_roles
from personaminer.personas import PersonaConfig, run_personas
from personaminer.personas.model import prepare
from personaminer.personas.run import load_memory_items
from personaminer.train.verified import VerifiedConfig, build_verified
from tests.fakes import persona_model


def _teachers(ws: Workspace, users: list[str], embedder) -> None:  # type: ignore[no-untyped-def]
    for builder in ("cluster", "model"):
        run_personas(ws, users, PersonaConfig(builder=builder, memory_set="extractive"), embedder=embedder,
                     llm=persona_model(), progress=False)


def test_best_teacher_set_above_the_threshold_becomes_the_target(train_ws: tuple[Path, list[str]],  # type: ignore[no-untyped-def]
                                                                  embedder, tmp_path: Path) -> None:
    path, users = train_ws
    with Workspace(path) as ws:
        with pytest.raises(ValueError, match="train roles"):
            build_verified(ws, VerifiedConfig(), embedder=embedder, progress=False)
        roles = store_roles(ws, assign_roles(users, val_users=1, test_users=2, seed=0), 0)
        with pytest.raises(ValueError, match="no stored sets"):
            build_verified(ws, VerifiedConfig(), embedder=embedder, progress=False)
        _teachers(ws, users, embedder)
        meta = build_verified(ws, VerifiedConfig(min_score=0.0), embedder=embedder, progress=False)
        rows = [json.loads(line) for line in (path / "train" / "verified.jsonl").read_text().splitlines()]
        finals = {sid: v["final"] for sid, v in ws.con.execute(
            "SELECT set_id, values FROM set_scores").fetchall() for v in [json.loads(v)]}
        owners = dict(ws.con.execute("SELECT set_id, user_id FROM persona_sets").fetchall())
        memories = {u: load_memory_items(ws, u, "extractive") for u in users}
        strict = build_verified(ws, VerifiedConfig(min_score=1.0), embedder=embedder, out_dir=tmp_path / "strict",
                                progress=False)
    learners = sorted(u for u, r in roles.items() if r != "test")
    assert [r["user_id"] for r in rows] == learners and meta["counts"]["kept"] == len(learners)
    assert sum(meta["kept_by_collection"].values()) == len(learners)
    for r in rows:
        [c] = r["candidates"]
        mine = [sid for sid, u in owners.items() if u == r["user_id"]]
        assert c["score"] == pytest.approx(max(finals[s] for s in mine if s in finals))  # the best teacher set
        assert c["collection"] in ("cluster@extractive", "model@extractive") and c["model"] == "fake-persona"
        prepared = prepare(memories[r["user_id"]], VerifiedConfig().student, embedder)
        assert r["messages"] == prepared.messages()  # the student's own prompt (v3)
        out = json.loads(c["completion"])["personas"]
        assert all(list(p) == ["evidence", "label", "description"] for p in out)
        assert all(1 <= e <= len(prepared.shown) for p in out for e in p["evidence"])
    assert strict["counts"]["kept"] == 0 and strict["counts"]["rejected_below_threshold"] == len(learners)
    assert (tmp_path / "strict" / "verified.jsonl").read_text() == ""


def test_config_refuses_test_users_and_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="test users never train"):
        VerifiedConfig(roles=("train", "test"))
    with pytest.raises(ValueError, match="between 0 and 1"):
        VerifiedConfig(min_score=1.5)
    assert VerifiedConfig().teachers == ("cluster@extractive", "model@extractive")


def test_the_verified_set_joins_each_group(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from personaminer.train.groups import GroupConfig, build_groups
    from tests.fakes import sampling_persona_model

    path, users = train_ws
    with Workspace(path) as ws:
        store_roles(ws, assign_roles(users, val_users=1, test_users=2, seed=0), 0)
        _teachers(ws, users, embedder)
        build_verified(ws, VerifiedConfig(min_score=0.0), embedder=embedder, progress=False)
        verified = {json.loads(line)["user_id"]: json.loads(line)["candidates"][0]["set_id"]
                    for line in (path / "train" / "verified.jsonl").read_text().splitlines()}
        persona = dataclasses.replace(GroupConfig().persona, samples=2, temperature=0.7, max_memories=12)
        meta = build_groups(ws, users, GroupConfig(persona=persona, val_users=1, test_users=2, tie_margin=0.0,
                                                   verified=str(path / "train" / "verified.jsonl")),
                            llm=sampling_persona_model(), embedder=embedder, out_dir=path / "groups", progress=False)
    groups = [json.loads(line) for line in (path / "groups" / "groups.jsonl").read_text().splitlines()]
    assert meta["counts"]["verified_candidates"] == len(verified) == 4
    assert groups and all(verified[g["user_id"]] in {c["set_id"] for c in g["candidates"]} for g in groups)
    sig = meta["groups_with_signal"]
    assert sig["of"] == 4 and 0 <= sig["groups"] <= len(groups)
    with pytest.raises(ValueError, match="no verified-sets file"):
        GroupConfig(verified=str(path / "nope.jsonl"))
