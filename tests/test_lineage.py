"""Lineage: every stored row knows what produced it, and a changed input never reuses a stale row.

Each test here failed on main before lineage ids (2026-12-01): a re-run under the same set name kept
the old summaries, persona set ids ignored the memories' contents, and scores ignored the judge model.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from personaminer import Workspace, ingest
from personaminer.lineage import LineageConflict
from personaminer.memories import MemoryConfig, run_memories
from personaminer.personas import PersonaConfig, run_personas
from personaminer.quality import QualityConfig, run_scores
from tests.fakes import ScriptedLLM, persona_model, segmenter


def _memories(ws: Workspace, memory_set: str) -> dict[str, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in ws.con.execute(
        "SELECT memory_id, summary, lineage FROM memories WHERE memory_set = ?", [memory_set]).fetchall()}


@pytest.fixture
def real(aol_memory_copy) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    """Four real AOL users with real extractive memories (set ``extractive``, 10 days each)."""
    return aol_memory_copy(4, 5, 10)


@pytest.mark.parametrize("change", ["prompt_version", "model", "max_days"])
def test_a_changed_memory_config_under_the_same_name_is_refused(real, embedder, change: str) -> None:  # type: ignore[no-untyped-def]
    path, users = real
    base = MemoryConfig(mode="llm-segment", max_days=2, memory_set="llm", prompt_version="2")
    with Workspace(path) as ws:
        run_memories(ws, users[:2], base, embedder=embedder, llm=segmenter(size=2), progress=False)
        before = _memories(ws, "llm")
        other, llm = base, segmenter(size=2)
        if change == "prompt_version":
            other = MemoryConfig(mode="llm-segment", max_days=2, memory_set="llm", prompt_version="1")
        elif change == "model":
            llm = segmenter(size=3)
        else:
            other = MemoryConfig(mode="llm-segment", max_days=3, memory_set="llm", prompt_version="2")
        with pytest.raises(LineageConflict, match="--set NAME.*--replace"):
            run_memories(ws, users[:2], other, embedder=embedder, llm=llm, progress=False)
        assert _memories(ws, "llm") == before  # nothing was touched
        # a new name builds new memories with new ids; the old set is left as it was
        renamed = MemoryConfig(**{**other.to_dict(), "memory_set": "llm-b"})
        s = run_memories(ws, users[:2], renamed, embedder=embedder, llm=llm, progress=False)
        new = _memories(ws, "llm-b")
        assert s["days"] > 0 and not set(new) & set(before)
        assert {lin for _, lin in new.values()} == {s["fingerprint"]} != {lin for _, lin in before.values()}
        # the same config again resumes: nothing is rebuilt
        again = run_memories(ws, users[:2], renamed, embedder=embedder, llm=llm, progress=False)
        assert again["lineage"] == "resume" and again["days"] == 0


def test_replace_deletes_the_set_and_what_was_built_on_it(real, embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = real
    with Workspace(path) as ws:
        p = run_personas(ws, users, PersonaConfig(memory_set="extractive"), embedder=embedder, llm=persona_model(),
                         progress=False)
        old_ids = {sid for ids in p["set_ids"].values() for sid in ids}
        run_scores(ws, QualityConfig(judge="embedding"), embedder=embedder, llm=None, progress=False)
        changed = MemoryConfig(mode="extractive", max_days=10, memory_set="extractive", gap_minutes=5.0)
        with pytest.raises(LineageConflict, match="gap_minutes: 30.0 -> 5.0.*what was built on it"):
            run_memories(ws, users, changed, embedder=embedder, progress=False)
        run_memories(ws, users, changed, embedder=embedder, replace=True, progress=False)
        assert ws.con.execute("SELECT count(*) FROM persona_sets").fetchall()[0][0] == 0  # built on the old set
        assert ws.con.execute("SELECT count(*) FROM set_scores").fetchall()[0][0] == 0
        p2 = run_personas(ws, users, PersonaConfig(memory_set="extractive"), embedder=embedder,
                          llm=persona_model(), progress=False)
        new_ids = {sid for ids in p2["set_ids"].values() for sid in ids}
        assert p2["sets"] == len(users) and not new_ids & old_ids  # sets on changed memories: new ids


def test_a_day_whose_actions_changed_is_rebuilt(real, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, users = real
    user = users[0]
    with Workspace(path) as ws:
        p = run_personas(ws, [user], PersonaConfig(memory_set="extractive"), embedder=embedder,
                         llm=persona_model(), progress=False)
        last = max(a.ts for a in ws.user_actions(user))
        before = _memories(ws, "extractive")
    extra = tmp_path / "late.csv"  # a later export of the log holds one more query on the user's last day
    when = (last + dt.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    extra.write_text(f"uid,time,q\n{user},{when},a query ingested later\n")
    ingest(extra, path, format="csv", mapping={"user_id": "uid", "ts": "time", "text": "q"}, progress=False)
    with Workspace(path) as ws:
        s = run_memories(ws, [user], MemoryConfig(mode="extractive", max_days=10), embedder=embedder,
                         progress=False)
        assert s["days_rebuilt"] == 1 and s["days"] == 1 and s["check"]["ok"]
        after = _memories(ws, "extractive")
        assert set(after) != set(before) and any("a query ingested later" in text for text, _ in after.values())
        p2 = run_personas(ws, [user], PersonaConfig(memory_set="extractive"), embedder=embedder,
                          llm=persona_model(), progress=False)
        assert p2["sets"] == 1 and p2["set_ids"][user] != p["set_ids"][user]  # the user's memories changed


def _judge(model: str) -> ScriptedLLM:
    return ScriptedLLM({"claim_judge": lambda req, i: 0.9}, model=model)


def test_another_judge_model_never_reuses_stored_scores(real, embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = real
    with Workspace(path) as ws:
        run_personas(ws, users, PersonaConfig(memory_set="extractive"), embedder=embedder, llm=persona_model(),
                     progress=False)
        a = run_scores(ws, QualityConfig(judge="llm"), embedder=embedder, llm=_judge("judge-a"), progress=False)
        again = run_scores(ws, QualityConfig(judge="llm"), embedder=embedder, llm=_judge("judge-a"), progress=False)
        b = run_scores(ws, QualityConfig(judge="llm"), embedder=embedder, llm=_judge("judge-b"), progress=False)
        keys = {r[0] for r in ws.con.execute("SELECT DISTINCT config_key FROM set_scores").fetchall()}
        models = {r[0] for r in ws.con.execute("SELECT DISTINCT judge_model FROM set_scores").fetchall()}
    assert a["scored_now"] == len(users) and again["scored_now"] == 0
    assert b["scored_now"] == len(users) and a["config_key"] != b["config_key"]
    assert keys == {a["config_key"], b["config_key"]} and models == {"judge-a", "judge-b"}


def test_an_older_workspace_is_upgraded_and_its_sets_cannot_be_extended(real, embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = real
    with Workspace(path) as ws:  # make it look like a workspace written before lineage (schema 1)
        ws.con.execute("DELETE FROM lineage")
        ws.con.execute("DELETE FROM meta")
        ws.con.execute("ALTER TABLE roles RENAME TO train_roles")
        ids = set(_memories(ws, "extractive"))
    with Workspace(path) as ws:
        assert ws.has_table("roles") and not ws.has_table("train_roles")
        assert set(_memories(ws, "extractive")) == ids  # old rows keep their ids and stay readable
        row = ws.con.execute("SELECT fingerprint, config FROM lineage WHERE name = 'extractive'").fetchall()[0]
        assert row[0].startswith("legacy:") and json.loads(row[1]) == {"legacy": True}
        with pytest.raises(LineageConflict, match="before this version tracked"):
            run_memories(ws, users, MemoryConfig(mode="extractive", max_days=10), embedder=embedder, progress=False)
        s = run_memories(ws, users, MemoryConfig(mode="extractive", max_days=10), embedder=embedder, replace=True,
                         progress=False)
        assert s["lineage"] == "replaced" and set(_memories(ws, "extractive")) == ids  # same config: same ids


def test_memories_from_the_history_need_and_name_the_split(real, embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer.evaluate import SplitConfig, split_users
    from personaminer.store import WorkspaceError

    path, users = real
    with Workspace(path) as ws:
        with pytest.raises(WorkspaceError, match="personaminer split"):
            run_memories(ws, users, MemoryConfig(mode="extractive", memory_set="h", view="history"),
                         embedder=embedder, progress=False)
        split = split_users(ws, users, SplitConfig())
        s = run_memories(ws, users, MemoryConfig(mode="extractive", memory_set="h", view="history"),
                         embedder=embedder, progress=False)
        parents = ws.con.execute("SELECT parents FROM lineage WHERE kind = 'memories' AND name = 'h'").fetchall()
    assert s["check"]["ok"] and parents == [([split["fingerprint"]],)]
