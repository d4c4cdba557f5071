"""Persona builders on real AOL memories with a stand-in LLM: validation, storage, checks, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personaminer import Workspace
from personaminer.personas import PersonaConfig, export_personas, run_personas, verify_personas
from personaminer.personas.base import MemoryItem, representative_subset
from personaminer.personas.cluster import choose_clusters
from personaminer.personas.model import PersonaDraft, PersonaSetDraft, validate_draft
from personaminer.personas.run import check_evidence, load_memory_items
from tests.fakes import persona_model


def _draft(*evidence: list[int], labels: list[str] | None = None) -> PersonaSetDraft:
    labels = labels or [f"Persona {i}" for i in range(len(evidence))]
    return PersonaSetDraft(personas=[PersonaDraft(label=lb, description="A description of ten+ chars.", evidence=e)
                                     for lb, e in zip(labels, evidence, strict=True)])


def test_persona_grammar_and_the_evidence_first_completion() -> None:
    from personaminer.personas.model import grammar_text, persona_grammar, render_completion
    from personaminer.prompts import load_prompt

    g = persona_grammar(4, 3, 2)
    rules = dict(line.split(" ::= ", 1) for line in g.strip().splitlines())
    assert rules["ev"] == "e1 | e2 | e3 | e4"  # numbers 1..4 only
    assert rules["e2"] == '"2" ("," " "? (e3 | e4))?' and rules["e4"] == '"4"'  # only larger numbers follow
    assert '("," sp persona){1,2}' in rules["root"]  # 2 to 3 personas
    assert rules["persona"].index("evidence") < rules["persona"].index("label") < rules["persona"].index("description")
    assert "persona){" not in persona_grammar(3, 1, 1)  # exactly one persona
    with pytest.raises(ValueError):
        persona_grammar(0, 3, 1)
    assert '"..."' not in load_prompt("persona_model").user  # no placeholder to copy
    shown = [MemoryItem(f"m{i}", __import__("datetime").date(2024, 1, 1 + i), f"summary {i}") for i in range(3)]
    out = json.loads(render_completion([("Golf  fan", 'Says "hi"\\ often.', ["m2", "m0", "mX"])], shown))  # type: ignore[arg-type]
    assert list(out["personas"][0]) == ["evidence", "label", "description"]
    assert out["personas"][0] == {"evidence": [1, 3], "label": "Golf fan", "description": "Says 'hi' often."}
    assert grammar_text("a " * 100, 80).count("a") == 80
    assert grammar_text("Buys apples,pears , and plums,, daily " + "y" * 30, 50) == \
        "Buys apples, pears, and plums, daily " + "y" * 24  # a comma ends a word; words of 24 characters at most


def test_validate_draft_rules() -> None:
    cfg = PersonaConfig(max_personas=3)
    personas, repairs = validate_draft(_draft([1, 2, 2], [3]), 4, cfg)
    assert [p[2] for p in personas] == [[1, 2], [3]] and repairs == []
    with pytest.raises(ValueError, match="numbered 1 to 4"):
        validate_draft(_draft([1, 9]), 4, cfg)
    with pytest.raises(ValueError, match="cited by personas 1 and 2"):
        validate_draft(_draft([1, 2], [2, 3]), 4, cfg)
    shared = PersonaConfig(max_personas=3, allow_shared_evidence=True)
    personas, repairs = validate_draft(_draft([1, 2], [2, 3]), 4, shared)
    assert len(personas) == 2
    personas, repairs = validate_draft(_draft([1, 2, 3, 4], [1, 2, 3, 4, 5]), 5, shared)  # near-duplicate
    assert len(personas) == 1 and "merged" in repairs[0]
    personas, _ = validate_draft(_draft([1], [2], labels=["Cooking", "cooking"]), 2, cfg)
    assert len(personas) == 1 and personas[0][2] == [1, 2]
    with pytest.raises(ValueError, match="at most 3"):
        validate_draft(_draft([1], [2], [3], [4]), 4, cfg)
    with pytest.raises(ValueError, match="at least 2 required"):
        validate_draft(_draft([1, 2, 3]), 3, cfg)
    personas, repairs = validate_draft(_draft([1, 2, 3], [2], [3, 4]), 4, cfg, resolve_shared=True)
    assert [p[2] for p in personas] == [[1, 2, 3], [4]]  # shared memories stay with the first persona
    assert "dropped" in repairs[0] and "[3] already cited" in repairs[1]
    with pytest.raises(ValueError, match="at least 2 required"):  # the last resort still keeps the minimum
        validate_draft(_draft([1, 2], [2]), 3, cfg, resolve_shared=True)
    personas, _ = validate_draft(_draft([1]), 1, cfg)  # one memory: one persona is all there can be
    assert len(personas) == 1


def test_cluster_choice_and_subset() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))
    x = np.vstack([c + 0.05 * rng.normal(size=(6, 16)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = choose_clusters(x, 2, 5)
    assert len(set(labels.tolist())) == 3
    items = [MemoryItem(f"m{i}", __import__("datetime").date(2006, 3, 1), f"s{i}") for i in range(18)]
    sub = representative_subset(items, x, 6)
    assert len(sub) == 6 and sub == sorted(sub)
    assert len({int(labels[i]) for i in sub}) == 3  # every group is represented


def test_ward_linkage_gives_several_personas_on_real_users(aol_memory_workspace, embedder) -> None:  # type: ignore[no-untyped-def]
    """Average linkage splits off single outlying memories, so the silhouette rule often chose one
    big cluster plus a singleton (one persona once the singleton is left unassigned); Ward on
    unit vectors is the default because it does not (docs/personas.md)."""
    from collections import Counter

    from personaminer import Workspace
    from personaminer.personas.run import load_memory_items

    path, users = aol_memory_workspace(20, 7, 10)
    kept: dict[str, list[int]] = {"ward": [], "average": []}
    with Workspace(path, read_only=True) as ws:
        for u in users:
            items = load_memory_items(ws, u, "extractive")
            if len(items) < 6:
                continue
            vectors = embedder.encode([m.summary for m in items])
            for linkage, out in kept.items():
                sizes = Counter(choose_clusters(vectors, 2, 5, linkage).tolist()).values()
                out.append(sum(size >= 2 for size in sizes))
    assert len(kept["ward"]) >= 15
    assert sum(k < 2 for k in kept["ward"]) <= 1, kept
    assert sum(k < 2 for k in kept["ward"]) < sum(k < 2 for k in kept["average"]), kept
    assert (PersonaConfig(builder="cluster").output_config()
            != PersonaConfig(builder="cluster", linkage="average").output_config())
    assert PersonaConfig(builder="model").output_config() == PersonaConfig(builder="model",
                                                                           linkage="average").output_config()


@pytest.mark.parametrize("builder", ["model", "cluster", "single"])
def test_builders_store_checked_sets(ws_copy: tuple[Path, list[str]], embedder, builder: str) -> None:  # type: ignore[no-untyped-def]
    path, users = ws_copy
    llm = persona_model()
    with Workspace(path) as ws:
        s = run_personas(ws, users, PersonaConfig(builder=builder, memory_set="extractive"), embedder=embedder,
                         llm=llm, progress=False)
        assert s["check"]["ok"] and s["sets"] == len(users) and s["failed_sets"] == 0
        rows = ws.con.execute("SELECT user_id, evidence FROM personas").fetchall()
        for user_id, evidence in rows:
            own = {m.memory_id for m in load_memory_items(ws, user_id, "extractive")}
            assert evidence and set(evidence) <= own
        again = run_personas(ws, users, PersonaConfig(builder=builder, memory_set="extractive"), embedder=embedder,
                             llm=llm, progress=False)
        assert again["sets"] == 0 and again["sets_skipped"] == len(users)
    if builder == "single":
        assert all(len(r[1]) >= 1 for r in rows) and len(rows) == len(users)
    else:
        assert len(rows) >= len(users)
    if builder == "model":  # the evidence-first answer format: a grammar and an enum schema per request
        asked = [r for r in llm.seen if r.prompt_name == "persona_model"]
        assert asked and all(r.grammar and r.prompt_version == "3" for r in asked)
        n = int(asked[0].grammar.split("ev ::= ")[1].splitlines()[0].split(" | ")[-1][1:])  # type: ignore[union-attr]
        ev = asked[0].json_schema["properties"]["personas"]["items"]["properties"]["evidence"]  # type: ignore[index]
        assert ev["items"]["enum"] == list(range(1, n + 1)) and ev["uniqueItems"] is True
        assert f"numbered 1 to {n}" in asked[0].messages[-1]["content"]


def test_invented_memory_number_is_never_stored(ws_copy: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = ws_copy
    with Workspace(path) as ws:
        s = run_personas(ws, users[:1], PersonaConfig(memory_set="extractive"), embedder=embedder,
                         llm=persona_model(bad_numbers=-1), progress=False)
        assert s["failed_sets"] == 1 and s["personas"] == 0
        status, note, raw = ws.con.execute("SELECT status, note, raw FROM persona_sets").fetchall()[0]
        assert status == "failed" and "numbered 1 to" in note and "Ghost" in raw
        assert ws.con.execute("SELECT count(*) FROM personas").fetchall()[0][0] == 0
        retried = run_personas(ws, users[1:2], PersonaConfig(memory_set="extractive"), embedder=embedder,
                               llm=persona_model(bad_numbers=1), progress=False)
        assert retried["failed_sets"] == 0 and retried["repaired_sets"] == 1


def test_shared_evidence_is_retried_then_resolved(ws_copy: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer.personas.model import ModelBuilder, prepare

    path, users = ws_copy
    with Workspace(path) as ws:
        mine = load_memory_items(ws, users[0], "extractive")
    config = PersonaConfig(memory_set="extractive")
    llm = persona_model(share=True)  # the second persona also cites memory 1, on every attempt
    [ps] = ModelBuilder().build(users[0], mine, config, embedder=embedder, llm=llm)
    assert llm.model_calls == 3  # one try and two retries with the error fed back
    # retries sample (seeded, seed advanced per attempt): greedy retries repeat the answer
    assert [(r.temperature, r.seed) for r in llm.seen] == [(0.0, 0), (0.7, 1), (0.7, 2)]
    assert ps.status == "repaired" and "shared evidence resolved" in (ps.note or "")
    first, second = (set(p.evidence) for p in ps.personas)
    # Memory 1 of the prompt stays with the first persona. With more memories than the prompt shows,
    # which memory is numbered 1 depends on the representative subset (float ties), not always mine[0].
    shown_first = prepare(mine, config, embedder).shown[0].memory_id
    assert not first & second and shown_first in first


def test_foreign_memory_is_caught(ws_copy: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer.personas.model import ModelBuilder

    path, users = ws_copy
    with Workspace(path) as ws:
        mine = load_memory_items(ws, users[0], "extractive")
        theirs = load_memory_items(ws, users[1], "extractive")
    sets = ModelBuilder().build(users[0], mine, PersonaConfig(memory_set="extractive"), embedder=embedder,
                                llm=persona_model())
    forged = sets[0].personas[0].model_copy(update={"evidence": [theirs[0].memory_id]})
    bad = sets[0].model_copy(update={"personas": [forged]})
    with pytest.raises(ValueError, match="not of this user"):
        check_evidence(bad, mine)


def test_samples_and_export(ws_copy: tuple[Path, list[str]], embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, users = ws_copy
    with Workspace(path) as ws:
        s = run_personas(ws, users[:2], PersonaConfig(memory_set="extractive", samples=3, temperature=0.7, seed=4),
                         embedder=embedder, llm=persona_model(), progress=False)
        assert s["sets"] == 6
        seeds = sorted(r[0] for r in ws.con.execute("SELECT DISTINCT seed FROM persona_sets").fetchall())
        assert seeds == [4, 5, 6]
        n = export_personas(ws, tmp_path / "p.jsonl")
        assert verify_personas(ws)["ok"]
    records = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(records) == n == 12
    ev = records[0]["evidence"][0]
    assert ev["memory_id"].startswith("m") and ev["action_ids"] and ev["summary"]


def test_retry_sampling_is_part_of_the_collections_config() -> None:
    greedy = PersonaConfig(builder="model", retry_temperature=None)
    assert greedy.output_config() != PersonaConfig(builder="model").output_config()  # sampled retries: new sets
    assert (PersonaConfig(builder="single", retry_temperature=None).output_config()
            != PersonaConfig(builder="single").output_config())
    assert PersonaConfig(samples=3, temperature=0.5).output_config() == PersonaConfig(temperature=0.5).output_config()


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="temperature"):
        PersonaConfig(samples=3)
    with pytest.raises(ValueError, match="min_personas"):
        PersonaConfig(min_personas=4, max_personas=2)


def test_cluster_relabels_a_repeated_label(ws_copy: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    """Every cluster labelled "Food" at first: the largest keeps it, each other is asked once more with
    the labels taken so far; a relabel that still repeats gets its cluster's keywords appended, with a note
    (or, with keyword_labels off, keeps the first answer)."""
    from personaminer.personas.cluster import ClusterBuilder
    from tests.fakes import ScriptedLLM, user_text

    path, users = ws_copy
    with Workspace(path) as ws:
        mine = max((load_memory_items(ws, u, "extractive") for u in users), key=len)
    same = json.dumps({"label": "Food", "description": "The user looked at food and groceries."})
    distinct_calls: list[int] = []

    def distinct(req, calls):  # type: ignore[no-untyped-def]
        distinct_calls.append(calls)  # the first relabel is new; every later one repeats "food"
        label = "Golf clubs and courses" if len(distinct_calls) == 1 else "food"
        return json.dumps({"label": label, "description": "The user looked at these things online."})

    llm = ScriptedLLM({"persona_label": lambda req, calls: same, "persona_label_distinct": distinct})
    [ps] = ClusterBuilder().build(users[0], mine, PersonaConfig(builder="cluster", memory_set="extractive"),
                                  embedder=embedder, llm=llm)
    labels = [p.label for p in ps.personas]
    assert len(labels) >= 3, "the test needs three clusters or more"
    biggest = max(ps.personas, key=lambda p: len(p.evidence))
    assert biggest.label == "Food"
    asked = [r for r in llm.seen if r.prompt_name == "persona_label_distinct"]
    assert len(asked) == 1 + 3 * (len(labels) - 2)  # a repeat is invalid: asked again twice, with the error
    assert "- Food" in user_text(asked[0]) and "Golf clubs and courses" in user_text(asked[1])
    assert "repeats 'Food'" in asked[2].messages[-1]["content"] and asked[2].temperature == 0.7
    assert "Golf clubs and courses" in labels and labels.count("Food") == 1  # the largest keeps its label
    named = [label for label in labels if label.startswith("Food (")]
    assert len(named) == len(labels) - 2 and len(set(named)) == len(named)  # keyword labels, all different
    assert all(2 <= len(label[6:-1].split(", ")) <= 3 for label in named) and all(len(label) <= 80 for label in named)
    assert "relabelled 'Golf clubs and courses'" in (ps.note or "") and "named by its cluster's keywords" in (ps.note or "")
    assert ps.prompt == "persona_label.v1+persona_label_distinct.v1" and ps.status == "ok"
    kept = PersonaConfig(builder="cluster", memory_set="extractive", keyword_labels=False)
    [old] = ClusterBuilder().build(users[0], mine, kept, embedder=embedder, llm=ScriptedLLM(
        {"persona_label": lambda req, calls: same, "persona_label_distinct": lambda req, calls: same}))
    assert [p.label for p in old.personas].count("Food") == len(old.personas) and "still repeats" in (old.note or "")
    assert kept.output_config() != PersonaConfig(builder="cluster").output_config()
    assert "keyword_labels" not in kept.output_config()
    off = PersonaConfig(builder="cluster", memory_set="extractive", distinct_labels=False)
    [plain] = ClusterBuilder().build(users[0], mine, off, embedder=embedder, llm=ScriptedLLM(lambda r, c: same))
    assert {p.label for p in plain.personas} == {"Food"} and plain.prompt == "persona_label.v1"
    assert off.output_config() != PersonaConfig(builder="cluster").output_config()
    assert PersonaConfig(builder="single").output_config() == PersonaConfig(builder="single",
                                                                            distinct_labels=False).output_config()
