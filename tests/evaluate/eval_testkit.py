"""Small synthetic workspaces for the evaluation tests (no real data, no LLM)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from personaminer import Workspace
from personaminer.schema import action_id

T0 = dt.datetime(2020, 1, 1, 9, 0)


def add_actions(ws: Workspace, rows: Iterable[tuple[str, dt.datetime, str, str]], source: str = "test") -> None:
    """Insert (user_id, ts, kind, text) rows as actions (item_id = text for non-query kinds)."""
    batch = []
    for seq, (uid, ts, kind, text) in enumerate(rows):
        item = None if kind in ("query", "click") else text
        aid = action_id(source, uid, ts.isoformat(sep=" "), kind, item, text, "{}")
        batch.append([aid, uid, ts, kind, text, item, json.dumps({}), source, seq])
    ws.con.executemany("INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", batch)


def make_workspace(path: Path, days: Mapping[str, int], per_day: int = 3, kind: str = "query") -> Path:
    """User u gets ``days[u]`` active days (every other calendar day), ``per_day`` actions each,
    with texts ``"<u> day <d> item <k>"``."""
    with Workspace(path) as ws:
        add_actions(ws, [(u, T0 + dt.timedelta(days=2 * d, minutes=5 * k), kind, f"{u} day {d} item {k}")
                         for u, n in days.items() for d in range(n) for k in range(per_day)])
    return path
