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


TOPICS = {
    "cooking": "pasta recipe garlic oven bake soup bread salad sauce grill",
    "cars": "engine tires brake honda toyota mechanic oil sedan truck gearbox",
    "travel": "flight hotel beach passport airport cruise luggage resort island visa",
    "health": "doctor symptoms fever vitamin clinic allergy diet pharmacy therapy sleep",
    "music": "guitar concert album lyrics piano band drums song chords festival",
    "finance": "mortgage loan credit bank stocks budget taxes savings insurance invest",
    "garden": "roses soil compost seeds lawn tulips pruning mulch shovel greenhouse",
    "pets": "puppy kitten vet leash aquarium parrot grooming litter kennel hamster",
}


def topic_workspace(path: Path, n_users: int = 24, days: int = 10, per_day: int = 6, seed: int = 0,
                    kind: str = "query", unique: bool = False) -> Path:
    """Users with one topic each: every text is two words of the user's topic plus a number, so
    history predicts the future. Topics go round robin over :data:`TOPICS` (several users per
    topic), or with ``unique`` every user gets private made-up words (no two users related)."""
    import random

    rng = random.Random(seed)
    rows = []
    topics = list(TOPICS)
    for u in range(n_users):
        words = ([f"t{u}w{k}" for k in range(10)] if unique else TOPICS[topics[u % len(topics)]].split())
        for d in range(days):
            for k in range(per_day):
                a, b = rng.sample(words, 2)
                rows.append((f"u{u:02d}", T0 + dt.timedelta(days=d, minutes=7 * k), kind, f"{a} {b} {rng.randint(0, 40)}"))
    with Workspace(path) as ws:
        add_actions(ws, rows)
    return path


class BagOfWordsEmbedder:
    """A deterministic stand-in for MiniLM: hashed bag of words, L2-normalised."""

    model_id = "bag-of-words-test"
    dim = 256

    def encode(self, texts):  # type: ignore[no-untyped-def]
        import hashlib

        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.md5(w.strip(":.").encode()).hexdigest(), 16)
                out[i, h % self.dim] += 1.0 if (h >> 8) % 2 else -1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out


def plant_persona_set(ws: Workspace, user: str, builder: str, personas: list[tuple[str, str]], *,
                      model: str = "m0", memory_set: str = "extractive", status: str = "ok", sample_index: int = 0,
                      adapter: str | None = None, tokens: int = 100) -> str:
    """Store a persona set as the persona stage would (evidence: the user's first memory)."""
    mids = [r[0] for r in ws.con.execute("SELECT memory_id FROM memories WHERE user_id = ? AND memory_set = ? "
                                         "ORDER BY day, position LIMIT 1", [user, memory_set]).fetchall()] \
        if ws.has_table("memories") else []
    set_id = f"s-{builder}-{model}-{adapter}-{user}-{sample_index}"
    config = json.dumps({"builder": builder, "memory_set": memory_set, "adapter": adapter, "samples": 1})
    ws.con.execute("INSERT INTO persona_sets VALUES (?, ?, ?, ?, ?, 0, 0.0, ?, 'p.v1', ?, ?, ?, 1, [], NULL, NULL, "
                   "NULL, 1, 1, ?, 0, NULL, NULL)", [set_id, user, builder, memory_set, sample_index, model, config, status,
                                          0 if status == "failed" else len(personas), tokens])
    if status != "failed":
        for i, (label, desc) in enumerate(personas):
            ws.con.execute("INSERT INTO personas VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [f"{set_id}-{i}", set_id, user, i, label, desc, mids or ["m?"], builder])
    return set_id
