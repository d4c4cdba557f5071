"""The temporal split: rules, idempotence, refusal to change rule, history-only reads, leak check."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personaminer import Workspace
from personaminer.cli import app
from personaminer.evaluate import SplitConfig, SplitConflict, check_no_leakage, split_users
from personaminer.evaluate.split import cut_user
from tests.evaluate.eval_testkit import T0, make_workspace

runner = CliRunner()


def _splits(ws: Workspace) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in ws.con.execute(
        "SELECT user_id, cutoff_ts, rule, n_history_actions, n_future_actions, history_days, future_days "
        "FROM splits").fetchall()}


def test_cut_rules_on_day_lists() -> None:
    days = [dt.date(2020, 1, d) for d in range(1, 11)]
    assert cut_user(days, SplitConfig())[0] == dt.date(2020, 1, 9)  # 10 days -> last 2
    assert cut_user(days[:3], SplitConfig())[0] == dt.date(2020, 1, 3)  # 0.6 rounds to 1
    assert cut_user(days[:2], SplitConfig(future_frac=0.9))[0] == dt.date(2020, 1, 2)  # keep one day of history
    assert cut_user(days[:1], SplitConfig()) == (None, "fewer than 2 active days")
    assert cut_user(days, SplitConfig(rule="days", future_days=3))[0] == dt.date(2020, 1, 8)
    assert cut_user(days[:3], SplitConfig(rule="days", future_days=3))[0] is None
    assert cut_user(days, SplitConfig(rule="date", date="2020-01-05"))[0] == dt.date(2020, 1, 5)
    assert cut_user(days, SplitConfig(rule="date", date="2020-01-01"))[1] == "no history before the date"
    assert cut_user(days, SplitConfig(rule="date", date="2020-02-01"))[1] == "no future on or after the date"
    with pytest.raises(ValueError):
        SplitConfig(future_frac=1.0)
    with pytest.raises(ValueError):
        SplitConfig(rule="date", date="05/01/2020")


def test_split_writes_counts_and_reports_unsplittable(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", {"a": 10, "b": 5, "c": 1})
    with Workspace(path) as ws:
        s = split_users(ws, ws.users(), SplitConfig())
        rows = _splits(ws)
    assert s["split"] == 2 and s["unsplittable"] == 1
    assert s["unsplittable_users"] == {"c": "fewer than 2 active days"}
    assert set(rows) == {"a", "b"}
    # a: 10 active days every other day from T0; the future is days 8 and 9 (0-based)
    cutoff, rule, n_hist, n_fut, h_days, f_days = rows["a"]
    assert cutoff == dt.datetime.combine((T0 + dt.timedelta(days=16)).date(), dt.time())
    assert (rule, n_hist, n_fut, h_days, f_days) == ("frac", 24, 6, 8, 2)
    assert rows["b"][4:] == (4, 1)
    assert json.loads((path / "reports" / "split.json").read_text())["unsplittable_reasons"] == {
        "fewer than 2 active days": 1}


def test_the_history_view_is_explicit(tmp_path: Path) -> None:
    from personaminer.store import WorkspaceError

    path = make_workspace(tmp_path / "ws", {"a": 10, "c": 1})
    with Workspace(path) as ws:
        everything = ws.user_actions("a")
        assert ws.user_future_actions("a") == []  # not split yet
        with pytest.raises(WorkspaceError, match="personaminer split"):
            ws.history_actions("a")
        split_users(ws, ["a", "c"], SplitConfig())
        cutoff = ws.cutoff("a")
        hist, fut = ws.history_actions("a"), ws.user_future_actions("a")
        assert cutoff is not None and len(hist) == 24 and len(fut) == 6
        assert all(a.ts < cutoff for a in hist) and all(a.ts >= cutoff for a in fut)
        assert [a.action_id for a in hist + fut] == [a.action_id for a in everything]
        assert ws.user_actions("a") == everything  # no silent filtering: all actions, split or not
        assert len(ws.user_actions("c")) == 3 and ws.user_future_actions("c") == []  # unsplit user unchanged


def test_rerun_is_noop_and_another_rule_is_refused(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", {"a": 10, "b": 5})
    with Workspace(path) as ws:
        split_users(ws, ["a"], SplitConfig())
        before = _splits(ws)
        again = split_users(ws, ["a", "b"], SplitConfig())  # same rule: a kept, b added
        assert again["already_split"] == 1 and again["split"] == 1
        assert _splits(ws)["a"] == before["a"]
        with pytest.raises(SplitConflict, match="--replace"):
            split_users(ws, ["a"], SplitConfig(rule="days", future_days=1))
        assert _splits(ws)["a"] == before["a"]  # nothing written
        r = split_users(ws, ["a"], SplitConfig(rule="days", future_days=1), replace=True)
        rows = _splits(ws)
    assert r["replaced"] == 2  # b too: the workspace keeps one rule
    assert {v[1] for v in rows.values()} == {"days"} and rows["a"][4:] == (9, 1)


def _plant_memories(ws: Workspace, user: str, action_ids: list[str], memory_id: str) -> None:
    ts = ws.con.execute("SELECT min(ts), max(ts) FROM actions WHERE action_id IN (SELECT unnest(?::VARCHAR[]))",
                        [action_ids]).fetchall()[0]
    ws.con.execute("INSERT INTO memories VALUES (?, 'x', ?, ?, 0, ?, ?, ?, 'summary', [], 'extractive', "
                   "'extractive', NULL, NULL, false, NULL)", [memory_id, user, ts[0].date(), ts[0], ts[1], action_ids])
    ws.con.execute("INSERT INTO personas VALUES (?, ?, ?, 0, 'L', 'D.', ?, 'single')",
                   [f"p-{memory_id}", f"s-{memory_id}", user, [memory_id]])


def test_leak_check_passes_on_history_and_catches_a_planted_leak(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", {"a": 10})
    with Workspace(path) as ws:
        split_users(ws, ["a"], SplitConfig())
        hist = [a.action_id for a in ws.history_actions("a")]
        fut = [a.action_id for a in ws.user_future_actions("a")]
        _plant_memories(ws, "a", hist[-3:], "m-ok")
        assert check_no_leakage(ws)["ok"]
        _plant_memories(ws, "a", fut[:2], "m-leak")
        out = check_no_leakage(ws)
    assert not out["ok"]
    assert out["memories_citing_future"] == 1 and out["personas_citing_future"] == 1
    assert out["examples"] == ["m-leak"]


def test_extractive_memories_after_split_read_history_only(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer.memories import MemoryConfig, run_memories

    path = make_workspace(tmp_path / "ws", {"a": 10, "b": 4})
    with Workspace(path) as ws:
        split_users(ws, ["a", "b"], SplitConfig())
        run_memories(ws, ["a", "b"], MemoryConfig(mode="extractive", view="history"), embedder=embedder,
                     progress=False)
        n_days = ws.con.execute("SELECT count(*) FROM memory_days").fetchall()[0][0]
        assert n_days == 8 + 3
        assert check_no_leakage(ws)["ok"]
        # the other view is a choice too, and the leak check sees what it read
        run_memories(ws, ["a", "b"], MemoryConfig(mode="extractive", memory_set="everything"), embedder=embedder,
                     progress=False)
        assert not check_no_leakage(ws)["ok"]


def test_a_resplit_deletes_what_was_built_on_the_old_split(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer.memories import MemoryConfig, run_memories

    path = make_workspace(tmp_path / "ws", {"a": 10, "b": 4})
    with Workspace(path) as ws:
        split_users(ws, ["a", "b"], SplitConfig())
        run_memories(ws, ["a", "b"], MemoryConfig(mode="extractive", view="history", memory_set="h"),
                     embedder=embedder, progress=False)
        run_memories(ws, ["a", "b"], MemoryConfig(mode="extractive", memory_set="all"), embedder=embedder,
                     progress=False)
        split_users(ws, ["a", "b"], SplitConfig(rule="days", future_days=1), replace=True)
        left = {r[0] for r in ws.con.execute("SELECT DISTINCT memory_set FROM memories").fetchall()}
        assert left == {"all"}  # the history set named the old split as its parent; the other did not
        assert ws.con.execute("SELECT count(*) FROM lineage WHERE kind = 'memories' AND name = 'h'"
                              ).fetchall()[0][0] == 0


def test_split_cli(tmp_path: Path) -> None:
    path = make_workspace(tmp_path / "ws", {"a": 10, "b": 5, "c": 1})
    r = runner.invoke(app, ["split", "-w", str(path), "--future-days", "1", "--future-frac", "0.3"])
    assert r.exit_code != 0 and "one split rule" in str(r.exception)
    r = runner.invoke(app, ["split", "-w", str(path)])
    assert r.exit_code == 0, r.output
    assert "not split: fewer than 2 active days" in r.output
    r = runner.invoke(app, ["split", "-w", str(path), "--date", "2020-01-05"])
    assert r.exit_code != 0 and "--replace" in str(r.exception)
    r = runner.invoke(app, ["split", "-w", str(path), "--date", "2020-01-05", "--replace"])
    assert r.exit_code == 0, r.output
    with Workspace(path, read_only=True) as ws:
        assert {row[1] for row in _splits(ws).values()} == {"date"}
