"""Preference groups on real AOL memories with a fake persona model whose samples differ by seed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.evaluate.split import assign_roles, load_roles
from personaminer.personas.model import prepare
from personaminer.personas.run import load_memory_items
from personaminer.train.groups import GroupConfig, build_groups
from tests.fakes import sampling_persona_model

_NUM = re.compile(r"^(\d+)\. ", re.MULTILINE)


def _config(group_size: int, **kw: object) -> GroupConfig:
    """G samples at temperature 0.7 over 12 memories; 1 val and 2 test users."""
    persona = dataclasses.replace(GroupConfig().persona, samples=group_size, temperature=0.7, max_memories=12)
    return GroupConfig(persona=persona, **{"val_users": 1, "test_users": 2, **kw})  # type: ignore[arg-type]


def test_roles_are_disjoint_seeded_and_order_free() -> None:
    users = [f"u{i}" for i in range(20)]
    roles = assign_roles(users, val_users=3, test_users=5, seed=1)
    assert sorted(roles) == sorted(users)
    assert [sum(r == k for r in roles.values()) for k in ("train", "val", "test")] == [12, 3, 5]
    assert assign_roles(list(reversed(users)), val_users=3, test_users=5, seed=1) == roles
    assert assign_roles(users, val_users=3, test_users=5, seed=2) != roles
    with pytest.raises(ValueError, match="none for training"):
        assign_roles(users[:8], val_users=3, test_users=5, seed=1)


def test_build_groups_ranks_candidates(train_ws: tuple[Path, list[str]], embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    config = _config(4, tie_margin=0.0)
    llm = sampling_persona_model()
    with Workspace(path) as ws:
        meta = build_groups(ws, users, config, llm=llm, embedder=embedder, progress=False)
        roles = load_roles(ws)
        memories = {u: load_memory_items(ws, u, "extractive") for u in users}
    assert sorted(roles) == sorted(users) and list(roles.values()).count("test") == 2
    groups = [json.loads(line) for line in (path / "train" / "groups.jsonl").read_text().splitlines()]
    assert meta["counts"]["groups"] == len(groups) >= 2
    assert meta["fingerprint"] == hashlib.sha256((path / "train" / "groups.jsonl").read_bytes()).hexdigest()
    for g in groups:
        assert roles[g["user_id"]] in ("train", "val")  # test users never get groups
        prepared = prepare(memories[g["user_id"]], config.persona, embedder)
        assert g["messages"] == prepared.messages()
        cands = g["candidates"]
        assert len(cands) >= 2 and len({c["completion"] for c in cands}) == len(cands)
        by_rank = sorted(cands, key=lambda c: c["rank"])
        assert [c["rank"] for c in by_rank] == list(range(1, len(cands) + 1))
        assert all(a["score"] >= b["score"] for a, b in zip(by_rank, by_rank[1:], strict=False))
        for c in cands:
            for p in json.loads(c["completion"])["personas"]:
                assert p["evidence"] and all(1 <= e <= g["n_shown"] for e in p["evidence"])
    # rebuilding from the stored candidates needs no model call and gives the same file
    calls = llm.model_calls
    with Workspace(path) as ws:
        again = build_groups(ws, users, config, llm=llm, embedder=embedder, sample=False, progress=False)
    assert llm.model_calls == calls and again["fingerprint"] == meta["fingerprint"]


def test_identical_samples_make_no_group(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    config = _config(3)
    with Workspace(path) as ws:
        meta = build_groups(ws, users, config, llm=sampling_persona_model(vary=False), embedder=embedder, progress=False)
    assert meta["counts"]["groups"] == 0
    assert meta["counts"]["dropped_too_small"] == 6 - 2  # every train and val user: one distinct candidate


def test_failed_samples_join_as_the_last_ranked_candidates(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    config = _config(3, tie_margin=0.0)
    bad = json.dumps({"personas": [{"label": "...", "description": "...", "evidence": [1, 2]}]})
    with Workspace(path) as ws:
        meta = build_groups(ws, users, config, llm=sampling_persona_model(fail_seeds=frozenset({1})), embedder=embedder,
                            progress=False)
    groups = [json.loads(line) for line in (path / "train" / "groups.jsonl").read_text().splitlines()]
    assert groups and meta["counts"]["failed_candidates"] == len(groups)
    for g in groups:
        failed = [c for c in g["candidates"] if not c["valid"]]
        assert len(failed) == 1 and failed[0]["completion"] == bad and failed[0]["sample_index"] == 1
        assert failed[0]["score"] == 0.0 and failed[0]["rank"] == len(g["candidates"])  # below every valid one
        assert all(c["score"] > 0.0 for c in g["candidates"] if c["valid"])
    # the same samples without failed candidates: one candidate fewer per group
    with Workspace(path) as ws:
        plain = build_groups(ws, users, dataclasses.replace(config, failed_candidates=False),
                             llm=sampling_persona_model(fail_seeds=frozenset({1})), embedder=embedder, sample=False,
                             replace=True, progress=False)
    assert plain["counts"]["failed_candidates"] == 0
    assert plain["counts"]["candidates"] == meta["counts"]["candidates"] - meta["counts"]["groups"]


def test_a_group_needs_a_valid_candidate(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    config = _config(2, tie_margin=0.0)
    with Workspace(path) as ws:
        meta = build_groups(ws, users, config, llm=sampling_persona_model(fail_seeds=frozenset({0, 1})), embedder=embedder,
                            progress=False)
    assert meta["counts"]["groups"] == 0 and meta["counts"]["dropped_all_failed"] == 6 - 2
