"""The evaluation harness end to end on synthetic workspaces: leakage controls, coverage, reports, CLI."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from personaminer import Workspace
from personaminer.cli import app
from personaminer.evaluate import EvalConfig, LeakageError, SplitConfig, run_evaluation, split_users
from personaminer.evaluate.data import load_data
from personaminer.evaluate.run import _build_tasks
from tests.evaluate.eval_testkit import BagOfWordsEmbedder, add_actions, plant_persona_set, topic_workspace

PERSONALIZED = ("recent", "mean_history", "history_embed", "history_tfidf")


def _split(path: Path) -> None:
    with Workspace(path) as ws:
        split_users(ws, ws.users(), SplitConfig())


def _evaluate(path: Path, **kw) -> dict:  # type: ignore[no-untyped-def]
    with Workspace(path) as ws:
        return run_evaluation(ws, EvalConfig(bootstrap=200, **kw), embedder=BagOfWordsEmbedder(), progress=False)


def _hr(report: dict, protocol: str, system: str, group: str = "all", metric: str = "hit@10") -> float:
    return report["results"][protocol][group][system][metric]["mean"]


def test_targets_and_candidates_exclude_the_users_own_texts(tmp_path: Path) -> None:
    path = topic_workspace(tmp_path / "ws", n_users=16)
    _split(path)
    with Workspace(path) as ws:
        data = load_data(ws, max_targets=5, seed=0)
        from rich.progress import Progress

        vecs = BagOfWordsEmbedder().encode([data.texts[int(t)] for t in data.pool])
        tasks = _build_tasks(data, sorted(data.users), EvalConfig(max_targets=5), vecs, Progress(disable=True))
        again = load_data(ws, max_targets=5, seed=0)
    assert all(len(u.targets) == 5 for u in data.users.values())
    assert {u: d.targets for u, d in again.users.items()} == {u: d.targets for u, d in data.users.items()}
    for task in tasks:
        u = data.users[task.user_id]
        own = {int(np.flatnonzero(data.pool == t)[0]) for t in set(u.future) | (set(u.history) & set(data.pool.tolist()))}
        assert not own & set(np.flatnonzero(task.allowed).tolist())
        for p in ("sampled", "hard"):
            for neg, t in zip(task.negatives[p], task.targets, strict=True):
                assert len(neg) == 99 and t not in neg and not own & set(neg.tolist())
        assert [t for t, r in zip(u.targets, u.repeat, strict=True) if r] == [t for t in u.targets if t in u.history]


def test_future_copied_into_history_is_found_near_perfectly(tmp_path: Path) -> None:
    path = topic_workspace(tmp_path / "ws", n_users=16)
    _split(path)
    before = _evaluate(path, systems="history_embed,history_tfidf")
    with Workspace(path) as ws:  # the leak: each user's future texts also appear in the history
        rows = []
        for uid in ws.users():
            cutoff = ws.cutoff(uid)
            rows += [(uid, cutoff - dt.timedelta(hours=1, seconds=i), a.kind, a.text)
                     for i, a in enumerate(ws.user_future_actions(uid))]
        add_actions(ws, rows, source="leak")
    after = _evaluate(path, systems="history_embed,history_tfidf")
    assert after["targets"]["repeats"] == after["targets"]["targets"]
    for p in ("sampled", "hard", "full"):
        for s in ("history_embed", "history_tfidf"):
            assert _hr(after, p, s) >= 0.95, (p, s)
            assert _hr(after, p, s, metric="mrr") > _hr(before, p, s, metric="mrr") + 0.3, (p, s)


def test_shuffled_targets_fall_to_chance(tmp_path: Path) -> None:
    path = topic_workspace(tmp_path / "ws", n_users=40, unique=True)
    _split(path)
    real = _evaluate(path)
    shuffled = _evaluate(path, shuffle_targets=True)
    n_targets = shuffled["targets"]["targets"]
    for p in ("sampled", "hard", "full"):
        n_cand = shuffled["protocols"][p]["candidates_per_target"]["mean"]
        chance = 10 / n_cand
        # 4 standard errors of a mean of n_targets Bernoulli(chance) hits, the tolerance of "at chance"
        tol = 4 * math.sqrt(chance * (1 - chance) / n_targets)
        assert _hr(shuffled, p, "random") == pytest.approx(chance, rel=0.02)
        for s in PERSONALIZED:
            assert abs(_hr(shuffled, p, s) - chance) <= tol, (p, s, _hr(shuffled, p, s), chance, tol)
        for s in ("mean_history", "history_embed", "history_tfidf"):
            assert _hr(real, p, s) > chance + 5 * tol, (p, s)
    assert (path / "reports" / "evaluate-shuffled.md").exists()  # the control does not overwrite the table
    assert not json.loads((path / "reports" / "evaluate.json").read_text())["config"]["shuffle_targets"]


def test_memories_personas_coverage_missing_and_paired(tmp_path: Path) -> None:
    from personaminer.memories import MemoryConfig, run_memories

    path = topic_workspace(tmp_path / "ws", n_users=12)
    _split(path)
    with Workspace(path) as ws:
        users = ws.users()
        run_memories(ws, users, MemoryConfig(mode="extractive", view="history"), embedder=BagOfWordsEmbedder(), progress=False)
        for i, u in enumerate(users):
            hist = [a.text for a in ws.history_actions(u)]
            if i == 0:
                plant_persona_set(ws, u, "single", [], status="failed")
            elif i == 1:
                continue  # no set at all
            else:
                sid = plant_persona_set(ws, u, "single", [("Interest", " ".join(hist[:6]))], tokens=50)
                if i < 5:  # quality scores for three of the sets
                    ws.con.execute("INSERT INTO set_scores VALUES (?, ?, 'single', 'embedding', 'k1', NULL, ?, ?)",
                                   [sid, u, json.dumps({"final": 0.1 * i, "cohesion": 0.5, "alignment": None}), 0.1 * i])
    r = _evaluate(path, systems="random,history_embed,memories=extractive,personas:single=single,"
                                "personas:tuned=model:lora")
    assert r["missing_systems"] == {"tuned": "no persona sets match 'model:lora'"}
    assert r["users"]["evaluated"] == 12 and r["users"]["common"] == 10
    assert r["systems"]["single"]["not_covered"] == {"failed set": 1, "no persona set": 1}
    assert r["systems"]["memories_extractive"]["covered_users"] == 12
    assert r["own_coverage"]["sampled"]["history_embed"]["users"] == 12
    assert r["results"]["sampled"]["all"]["single"]["users"] == 10
    assert r["baseline"] == "single" and set(r["paired"]["sampled"]["all"]) == {"random", "history_embed",
                                                                                 "memories_extractive"}
    assert r["systems"]["single"]["llm_tokens_per_user"] == 50  # extractive memories cost no tokens
    assert r["systems"]["random"]["representation_tokens_per_user"] == 0
    assert 0 < r["systems"]["single"]["representation_tokens_per_user"] < r["systems"][
        "history_embed"]["representation_tokens_per_user"]
    assert _hr(r, "sampled", "memories_extractive") > 0.5 and _hr(r, "sampled", "single") > 0.3
    pr = r["paired"]["sampled"]["all"]["random"]["hit@10"]
    assert pr["n"] == 10 and pr["diff"] < 0 and pr["p_wilcoxon"] < 0.05
    q = r["quality"]["single"]["embedding/k1"]
    assert q["sets"] == 3 and q["final"] == pytest.approx(0.3) and q["cohesion"] == 0.5 and q["alignment"] is None
    md = (path / "reports" / "evaluate.md").read_text()
    assert "## Protocol `hard`" in md and "| single |" in md and "tuned" in md
    assert "![HR@10 per system" in md and "(evaluate.svg)" in md
    svg = (path / "reports" / "evaluate.svg").read_text()
    assert svg.startswith("<?xml") and "hard: HR@10" in svg and "memories_extractive" in svg
    assert json.loads((path / "reports" / "evaluate.json").read_text())["config"]["seed"] == 0


def test_evaluate_refuses_leaked_memories(tmp_path: Path) -> None:
    from personaminer.memories import MemoryConfig, run_memories

    path = topic_workspace(tmp_path / "ws", n_users=4)
    with Workspace(path) as ws:  # memories built BEFORE the split see the whole timeline
        run_memories(ws, ws.users(), MemoryConfig(mode="extractive"), embedder=BagOfWordsEmbedder(), progress=False)
    _split(path)
    with pytest.raises(LeakageError, match="cutoff.*--history"):
        _evaluate(path)


def test_evaluate_cli(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    path = topic_workspace(tmp_path / "ws", n_users=8, days=5, per_day=4)
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "-w", str(path), "-q"])
    assert r.exit_code != 0 and "personaminer split" in str(r.exception)
    assert runner.invoke(app, ["split", "-w", str(path)]).exit_code == 0
    r = runner.invoke(app, ["evaluate", "-w", str(path), "--protocol", "sampled,full", "--systems",
                            "baselines", "--max-targets", "3", "--bootstrap", "50", "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads((path / "reports" / "evaluate.json").read_text())
    assert set(report["results"]) == {"sampled", "full"} and report["targets"]["per_user"] == 3
    assert "candidates/target" in r.output and (path / "reports" / "evaluate.md").exists()
    assert "history_tfidf" in report["systems"]
    r = runner.invoke(app, ["evaluate", "-w", str(path), "--protocol", "nope", "-q"])
    assert r.exit_code != 0 and "unknown protocol" in str(r.exception)


def test_role_restricts_users_not_pool_and_model_names_filter(tmp_path: Path) -> None:
    from personaminer.llm.catalog import CATALOG
    from personaminer.memories import MemoryConfig, run_memories

    path = topic_workspace(tmp_path / "ws", n_users=12)
    _split(path)
    runner = CliRunner()
    r = runner.invoke(app, ["personas", "-w", str(path), "--role", "test", "-b", "single", "-q"])
    assert r.exit_code != 0 and "train roles" in str(r.exception)  # no roles yet: a clear error
    r = runner.invoke(app, ["train", "roles", "-w", str(path), "--val-users", "2", "--test-users", "4"])
    assert r.exit_code == 0, r.output
    big, small = CATALOG["qwen2.5-coder-1.5b-instruct"].sha256, CATALOG["qwen2.5-coder-0.5b-instruct"].sha256
    with Workspace(path) as ws:
        test = ws.role_users("test")
        assert len(test) == 4 and len(ws.role_users("val")) == 2 and len(ws.role_users("train")) == 6
        run_memories(ws, ws.users(), MemoryConfig(mode="extractive", view="history"), embedder=BagOfWordsEmbedder(), progress=False)
        for u in ws.users():  # two models of the same builder: a spec must say which
            hist = " ".join(a.text for a in ws.history_actions(u)[:6])
            plant_persona_set(ws, u, "single", [("Interest", hist)], model=big)
            plant_persona_set(ws, u, "single", [("Interest", hist)], model=small)
    again = runner.invoke(app, ["train", "roles", "-w", str(path), "--val-users", "2", "--test-users", "4", "--seed", "7"])
    assert again.exit_code == 0
    with Workspace(path) as ws:
        assert ws.role_users("test") == test  # a user never changes role
    with pytest.raises(ValueError, match="several groups"):
        _evaluate(path, systems="random,personas:single=single")
    full = _evaluate(path, systems="random,history_embed,personas:big=single:1.5b,personas:small=single:0.5b")
    r = _evaluate(path, role="test", systems="random,history_embed,personas:big=single:1.5b,personas:small=single:0.5b")
    assert r["users"]["evaluated"] == 4 and sorted(r["common_users"]) == test
    assert full["users"]["evaluated"] == 12
    assert r["pool"] == full["pool"]  # the pool and its negatives come from every split user
    assert r["systems"]["big"]["model_name"] == "qwen2.5-coder-1.5b-instruct"
    assert r["systems"]["small"]["model_name"] == "qwen2.5-coder-0.5b-instruct"
    assert "| qwen2.5-coder-1.5b-instruct |" in (path / "reports" / "evaluate.md").read_text()


def test_failed_sets_at_chance_keep_the_user_and_cost_the_system(tmp_path: Path) -> None:
    from personaminer.memories import MemoryConfig, run_memories

    path = topic_workspace(tmp_path / "ws", n_users=10)
    _split(path)
    with Workspace(path) as ws:
        users = ws.users()
        run_memories(ws, users, MemoryConfig(mode="extractive", view="history"), embedder=BagOfWordsEmbedder(), progress=False)
        for i, u in enumerate(users):
            if i < 4:  # four failures
                plant_persona_set(ws, u, "model", [], status="failed", tokens=70)
            else:
                plant_persona_set(ws, u, "model", [("Interest", " ".join(a.text for a in ws.history_actions(u)[:6]))])
    missing = _evaluate(path, systems="random,history_embed,personas:m=model")
    chance = _evaluate(path, systems="random,history_embed,personas:m=model", failed_sets="chance")
    assert missing["users"]["common"] == 6 and chance["users"]["common"] == 10
    assert chance["systems"]["m"]["failed_sets_at_chance"] == 4 and chance["systems"]["m"]["not_covered"] == {}
    for p in ("sampled", "hard", "full"):
        own = chance["own_coverage"][p]["m"]["hit@10"]
        # six real users as before, four at the chance level of random
        expect = (6 * missing["own_coverage"][p]["m"]["hit@10"] + 4 * chance["own_coverage"][p]["random"]["hit@10"]) / 10
        assert own == pytest.approx(expect, abs=0.01), p
        assert _hr(chance, p, "m") < _hr(missing, p, "m")
    assert "failed sets at chance: 4" in (path / "reports" / "evaluate.md").read_text()
    with pytest.raises(ValueError, match="missing or chance"):
        EvalConfig(failed_sets="drop")


def test_one_day_users_get_no_role_and_no_history_memories(tmp_path: Path) -> None:
    """MovieLens-like users who acted on one day cannot be split: ``train roles --split-only``
    leaves them out, and ``memories --history`` over a sample skips them and says how many."""
    path = topic_workspace(tmp_path / "ws", n_users=6)
    with Workspace(path) as ws:
        add_actions(ws, [(f"z{u}", dt.datetime(2020, 3, 1, 10, k), "query", f"one day {u} {k}")
                         for u in range(3) for k in range(5)])
    _split(path)
    runner = CliRunner()
    r = runner.invoke(app, ["train", "roles", "-w", str(path), "--split-only", "--val-users", "1", "--test-users", "2"])
    assert r.exit_code == 0, r.output
    assert "6 of 9 sampled users have a split" in r.output
    with Workspace(path) as ws:
        held = ws.role_users("train") + ws.role_users("val") + ws.role_users("test")
        assert sorted(held) == [f"u{u:02d}" for u in range(6)]
    r = runner.invoke(app, ["memories", "-w", str(path), "--mode", "extractive", "--history", "--users", "9", "-q"])
    assert r.exit_code == 0, r.output
    assert "3 of 9 sampled users have no split" in r.output
    with Workspace(path) as ws:
        assert {u for (u,) in ws.con.execute("SELECT DISTINCT user_id FROM memories").fetchall()} == set(held)
    r = runner.invoke(app, ["memories", "-w", str(path), "--mode", "extractive", "--history", "--user", "z0", "-q"])
    assert r.exit_code != 0 and "has no split" in str(r.exception)  # an explicit user is an error, as before
