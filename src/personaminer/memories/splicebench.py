"""A segmentation benchmark with known answers: spliced days (generated from a workspace, never stored).

A *session* is a run of one user's actions of one day with no pause longer than ``gap_minutes``.
A spliced day joins two whole sessions in time order, so the true boundary between them is known:

=========================  ===============================================================================
kind                       the two sessions
=========================  ===============================================================================
``two users``              sessions of two different users of the workspace
``one user, distant days``  two sessions of one user, at least ``min_days_apart`` days apart (the hard case:
                           the same person's recurring interests)
=========================  ===============================================================================

The second session is re-timed to start right after the first ends, after the first session's own
median pause between steps, so no time gap betrays the splice: only the content can. All actions
get a synthetic user id and fresh action ids; kinds, texts, items and attributes are kept.

:func:`score` compares a segmentation's memory starts with the splice points, by action position.
The benchmark's assumption, stated wherever it is reported: **a session is one intent**. A
segmenter that splits inside a session pays in precision, so the precision reported is a lower
bound of the true one (a real session can hold two intents); recall is exact. The same
assumption holds for every mode compared, and the report also gives boundaries per session.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from personaminer.memories.build import days_of
from personaminer.memories.steps import make_steps
from personaminer.schema import Action, IntentMemory, action_id
from personaminer.store import Workspace

KINDS = ("two users", "one user, distant days")


@dataclass
class SplicedDay:
    """Two sessions joined; ``truth`` holds the action positions where a session starts (not 0)."""

    kind: str
    parts: list[tuple[str, str]]  #: (original user id, original day) of each session
    actions: list[Action]
    truth: list[int]

    @property
    def user_id(self) -> str:
        return self.actions[0].user_id


def sessions(actions: Sequence[Action], gap_minutes: float) -> list[list[Action]]:
    """A user's actions (time-ordered) cut into sessions: per day, at pauses over ``gap_minutes``."""
    out: list[list[Action]] = []
    for day_actions in days_of(actions).values():
        cur = [day_actions[0]]
        for a in day_actions[1:]:
            if (a.ts - cur[-1].ts).total_seconds() / 60 > gap_minutes:
                out.append(cur)
                cur = []
            cur.append(a)
        out.append(cur)
    return out


def _pause(session: list[Action]) -> dt.timedelta:
    """The median pause between the session's steps (0 for a one-time session such as an order)."""
    steps = make_steps(session)
    gaps = [(b.first.ts - a.actions[-1].ts).total_seconds() for a, b in zip(steps, steps[1:], strict=False)]
    return dt.timedelta(seconds=statistics.median(gaps) if gaps else 0.0)


def splice(kind: str, first: list[Action], second: list[Action], name: str) -> SplicedDay | None:
    """Join two sessions into one day of the synthetic user ``name``; None if the join point would
    fall inside a step (e.g. the same item continued), where no segmenter could place it."""
    day = first[0].ts.date()
    base = dt.datetime.combine(day, dt.time(8, 0))
    shift1 = base - first[0].ts
    start2 = first[-1].ts + shift1 + _pause(first)
    shift2 = start2 - second[0].ts
    out: list[Action] = []
    for part, shift in ((first, shift1), (second, shift2)):
        for a in part:
            ts = a.ts + shift
            if ts.date() != day:
                return None
            attrs = json.dumps(a.attrs, sort_keys=True)
            out.append(Action(action_id=action_id("splice", name, ts.isoformat(), a.kind, a.item_id, a.text, attrs),
                              user_id=name, ts=ts, kind=a.kind, text=a.text, item_id=a.item_id, attrs=a.attrs,
                              source=a.source, seq=len(out)))
    cut = len(first)
    pos = 0
    for st in make_steps(out):
        if pos < cut < pos + len(st.actions):
            return None
        pos += len(st.actions)
    if len({a.action_id for a in out}) < len(out):
        return None
    return SplicedDay(kind, [(first[0].user_id, first[0].ts.date().isoformat()),
                             (second[0].user_id, second[0].ts.date().isoformat())], out, [cut])


def make_days(ws: Workspace, *, n_days: int, kind: str, seed: int = 0, gap_minutes: float = 30.0,
              min_steps: int = 3, max_steps: int = 15, min_days_apart: int = 30, max_users: int = 400
              ) -> list[SplicedDay]:
    """``n_days`` spliced days of ``kind`` from a workspace (seeded; fewer when the data has fewer).

    Eligible sessions have ``min_steps`` to ``max_steps`` steps. Users are drawn from a seeded
    sample of at most ``max_users``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    rng = random.Random(f"{seed}:{kind}")
    users = ws.users(sample=max_users, seed=seed)
    pool: dict[str, list[list[Action]]] = {}
    for u in users:
        ok = [s for s in sessions(ws.user_actions(u), gap_minutes) if min_steps <= len(make_steps(s)) <= max_steps]
        if ok:
            pool[u] = ok
    names = sorted(pool)
    out: list[SplicedDay] = []
    tries = 0
    need = 2 if kind == "two users" else 1
    while len(out) < n_days and tries < 50 * n_days and len(names) >= need:
        tries += 1
        if kind == "two users":
            u, v = rng.sample(names, 2)
            first, second = rng.choice(pool[u]), rng.choice(pool[v])
        else:
            u = rng.choice(names)
            first = rng.choice(pool[u])
            far = [s for s in pool[u] if abs((s[0].ts.date() - first[0].ts.date()).days) >= min_days_apart]
            if not far:
                continue
            second = rng.choice(far)
            if second[0].ts < first[0].ts:
                first, second = second, first
        used = {p for d in out for p in d.parts}
        if (first[0].user_id, first[0].ts.date().isoformat()) in used:
            continue
        day = splice(kind, first, second, f"splice-{kind.split()[0]}-{len(out):03d}")
        if day is not None:
            out.append(day)
    return out


def predicted_starts(day: SplicedDay, memories: Sequence[IntentMemory]) -> list[int]:
    """Action positions (not 0) where a memory of the spliced day starts."""
    pos = {a.action_id: i for i, a in enumerate(day.actions)}
    return sorted(p for p in (min(pos[x] for x in m.action_ids) for m in memories) if p > 0)


def score(days: Sequence[SplicedDay], predictions: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Boundary precision, recall and F1 (micro over days; exact position), boundaries per session
    and actions per memory."""
    tp = fp = fn = 0
    n_mem = n_act = 0
    for d, pred in zip(days, predictions, strict=True):
        truth, p = set(d.truth), set(pred)
        tp += len(truth & p)
        fp += len(p - truth)
        fn += len(truth - p)
        n_mem += len(p) + 1
        n_act += len(d.actions)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    sessions_n = sum(len(d.truth) + 1 for d in days)
    return {"days": len(days), "precision": prec, "recall": rec, "f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "false_boundaries_per_session": fp / sessions_n if sessions_n else 0.0,
            "actions_per_memory": n_act / n_mem if n_mem else 0.0}
