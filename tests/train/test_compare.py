"""``train compare`` on real AOL memories with two fake persona models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.personas.base import PersonaConfig
from personaminer.quality.scorer import QualityConfig
from personaminer.stats import describe, mean
from personaminer.train.compare import compare_systems
from tests.fakes import sampling_persona_model


def test_summary_statistics() -> None:
    assert describe([1.0, 2.0, 3.0, float("nan"), None]) == {"mean": 2.0, "std": 1.0,
                                                              "se": pytest.approx(1 / math.sqrt(3)), "n": 3}
    assert describe([]) == {"mean": None, "std": None, "se": None, "n": 0}
    assert describe([4.0]) == {"mean": 4.0, "std": None, "se": None, "n": 1}
    assert mean([1.0, 2.0, None, float("nan")]) == 1.5 and mean([]) is None and mean([1 / 3], 4) == 0.3333


def test_compare_two_models(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    test_users = users[:3]
    systems = {"base": (sampling_persona_model(vary=False), None), "other": (sampling_persona_model(vary=True), "runs/x/adapter.gguf")}
    with Workspace(path) as ws:
        report = compare_systems(ws, test_users, systems, PersonaConfig(builder="model", memory_set="extractive",
                                                                        max_memories=12),
                                 QualityConfig(judge="embedding"), embedder=embedder, judge=None, progress=False)
        configs = [r[0] for r in ws.con.execute(
            "SELECT DISTINCT config FROM persona_sets WHERE builder = 'model'").fetchall()]
    assert report["users"] == report["users_scored_by_all"] == 3
    assert set(report["systems"]) == {"base", "other"}
    assert report["systems"]["other"]["adapter"] == "runs/x/adapter.gguf"
    assert any("runs/x/adapter.gguf" in c for c in configs)  # the adapter path is recorded with the sets
    for name in ("base", "other"):
        assert report["systems"][name]["final"]["n"] == 3
    paired = report["paired_vs_base"]["other"]["final"]
    expected = report["systems"]["other"]["final"]["mean"] - report["systems"]["base"]["final"]["mean"]
    assert paired["n"] == 3 and paired["mean"] == pytest.approx(expected)


def test_failed_sets_count_in_the_overall_scores(train_ws: tuple[Path, list[str]], embedder) -> None:  # type: ignore[no-untyped-def]
    path, users = train_ws
    test_users = users[:3]
    systems = {"base": (sampling_persona_model(vary=True), None),
               "broken": (sampling_persona_model(fail_seeds=frozenset({0})), "runs/broken/adapter.gguf")}
    with Workspace(path) as ws:
        report = compare_systems(ws, test_users, systems, PersonaConfig(builder="model", memory_set="extractive",
                                                                        max_memories=12, max_retries=0),
                                 QualityConfig(judge="embedding"), embedder=embedder, judge=None, progress=False)
    base, broken = report["systems"]["base"], report["systems"]["broken"]
    assert broken["failed_sets"] == 3 and broken["final"]["n"] == 0 and report["users_scored_by_all"] == 0
    assert broken["valid"]["mean"] == 0.0 and broken["final_all"]["mean"] == 0.0 and broken["final_all"]["n"] == 3
    assert base["valid"]["mean"] == 1.0 and base["final_all"]["mean"] == pytest.approx(base["final"]["mean"])
    paired = report["paired_vs_base"]["broken"]
    assert paired["valid"] == {"mean": -1.0, "std": 0.0, "se": 0.0, "n": 3}
    assert paired["final_all"]["mean"] == pytest.approx(-base["final"]["mean"])


def test_compare_cli_tags_systems_and_report(train_ws: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    """``train compare --tag T --decoding stepwise``: systems T-base, report train-compare-T, and the
    decoding reaches the sets (a stepwise stand-in answers one persona per call)."""
    import json as _json

    from typer.testing import CliRunner

    import personaminer.cli.train as cli_train
    from personaminer.cli import app
    from personaminer.evaluate.split import assign_roles, store_roles
    from tests.personas.test_stepwise import greedy_citer

    path, users = train_ws
    with Workspace(path) as ws:
        store_roles(ws, assign_roles(users, val_users=1, test_users=2, seed=0), 0)
    monkeypatch.setattr(cli_train, "_llm", lambda model, adapter=None, no_cache=False: greedy_citer())
    res = CliRunner().invoke(app, ["train", "compare", "-w", str(path), "--tag", "t", "--decoding", "stepwise",
                                   "--max-memories", "8"])
    assert res.exit_code == 0, res.output
    report = _json.loads((path / "reports" / "train-compare-t.json").read_text())
    assert set(report["systems"]) == {"t-base"} and report["systems"]["t-base"]["failed_sets"] == 0
    assert "train-compare-t.json" in res.output.replace("\n", "")  # rich wraps long paths
    with Workspace(path) as ws:
        raws = [r[0] for r in ws.con.execute("SELECT raw FROM persona_sets WHERE collection = "
                                             "'compare:t-base@extractive'").fetchall()]
    assert len(raws) == 2 and all(r.startswith('{"personas": [{"evidence"') for r in raws)
    bad = CliRunner().invoke(app, ["train", "compare", "-w", str(path), "--decoding", "beam"])
    assert bad.exit_code != 0 and "decoding must be" in (bad.output + str(bad.exception))
