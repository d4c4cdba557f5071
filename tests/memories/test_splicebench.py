"""The spliced-day segmentation benchmark: joins, re-timing, truth and scoring."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.memories import MemoryConfig, build_memories
from personaminer.memories.splicebench import make_days, predicted_starts, score, sessions, splice
from personaminer.memories.steps import make_steps
from personaminer.schema import Action

T0 = dt.datetime(2006, 3, 1, 14, 0)


def session(user: str, texts: list[str], start: dt.datetime, step_s: float = 60) -> list[Action]:
    return [Action(action_id=f"{user}{i}", user_id=user, ts=start + dt.timedelta(seconds=i * step_s), kind="query",
                   text=t, source="test", seq=i) for i, t in enumerate(texts)]


def test_splice_retimes_and_marks_the_join() -> None:
    a = session("u", ["golf clubs", "golf balls", "golf shoes"], T0, step_s=120)
    b = session("v", ["cheap flights", "hotel deals"], T0 + dt.timedelta(days=40), step_s=30)
    day = splice("two users", a, b, "splice-x")
    assert day is not None and day.truth == [3] and day.parts == [("u", "2006-03-01"), ("v", "2006-04-10")]
    ts = [x.ts for x in day.actions]
    assert ts == sorted(ts) and {t.date() for t in ts} == {T0.date()}
    assert ts[3] - ts[2] == dt.timedelta(seconds=120), "the join pause is the first session's median pause"
    assert {x.user_id for x in day.actions} == {"splice-x"}
    assert len({x.action_id for x in day.actions}) == 5
    assert [x.text for x in day.actions] == [*(x.text for x in a), *(x.text for x in b)]


def test_splice_refuses_a_join_inside_a_step() -> None:
    a = [Action(action_id="x1", user_id="u", ts=T0, kind="view", text="shoe", item_id="i1", source="t", seq=0)]
    b = [Action(action_id="y1", user_id="v", ts=T0, kind="purchase", text="shoe", item_id="i1", source="t", seq=0)]
    assert splice("two users", a, b, "s") is None  # view -> purchase of one item is one step


def test_sessions_cut_at_pauses() -> None:
    acts = session("u", ["a", "b", "c"], T0, step_s=60) + session("u", ["d"], T0 + dt.timedelta(hours=2))
    assert [len(s) for s in sessions(acts, 30)] == [3, 1]


def test_score_by_hand() -> None:
    a = session("u", ["a1", "a2", "a3"], T0)
    b = session("v", ["b1", "b2"], T0)
    day = splice("two users", a, b, "s")
    assert day is not None
    r = score([day, day], [[3], [1, 3]])  # exact; then one false boundary inside the first session
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 0)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 1.0 and r["f1"] == pytest.approx(0.8)
    assert r["false_boundaries_per_session"] == pytest.approx(1 / 4)
    assert score([day], [[]])["recall"] == 0.0


def test_make_days_on_real_aol(aol_workspace: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    with Workspace(aol_workspace, read_only=True) as ws:
        cross = make_days(ws, n_days=6, kind="two users", seed=0, max_users=60)
        same = make_days(ws, n_days=4, kind="one user, distant days", seed=0, max_users=60)
        again = make_days(ws, n_days=6, kind="two users", seed=0, max_users=60)
    assert len(cross) == 6 and len(same) >= 1
    assert [d.parts for d in cross] == [d.parts for d in again], "seeded"
    assert all(d.parts[0][0] != d.parts[1][0] for d in cross)
    for d in same:
        (u1, d1), (u2, d2) = d.parts
        assert u1 == u2 and abs((dt.date.fromisoformat(d2) - dt.date.fromisoformat(d1)).days) >= 30
    for d in cross + same:
        assert 3 <= len(make_steps(d.actions[: d.truth[0]])) <= 15
    # the extractive mode on a spliced day: every action covered once, starts readable
    day = cross[0]
    [res] = build_memories(day.actions, MemoryConfig(mode="extractive"), embedder=embedder)
    assert [x for m in res.memories for x in m.action_ids] == [a.action_id for a in day.actions]
    starts = predicted_starts(day, res.memories)
    assert all(0 < s < len(day.actions) for s in starts)
