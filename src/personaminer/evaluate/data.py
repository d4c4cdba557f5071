"""What evaluation reads: per user, history and future interaction texts, targets, the candidate pool.

An *interaction* is an action of the target kinds (``query`` when the workspace has queries,
as AOL does; otherwise every kind except ``click``: the items viewed, liked, carted, bought,
rated). Its text is the action's ``text`` (the query; the item's title line), compared after
:func:`norm` (lower case, whitespace collapsed). Texts are the unit everywhere: a target, a
candidate, a history entry.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from personaminer import tables
from personaminer.store import Workspace


def norm(text: str) -> str:
    """The comparison key of a text: lower case, runs of whitespace collapsed."""
    return " ".join(text.lower().split())


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any parts (stable across runs and Python processes)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")


@dataclass
class UserData:
    """One split user's interactions, as indices into :attr:`EvalData.texts`."""

    user_id: str
    history: list[int]  #: history interactions in time order (repeats kept)
    future: list[int]  #: distinct future texts in first-occurrence order
    targets: list[int] = field(default_factory=list)  #: up to T of ``future`` (seeded sample)
    repeat: list[bool] = field(default_factory=list)  #: per target: does it occur in the history?
    history_age: list[float] = field(default_factory=list)  #: per history entry: days before the cutoff

    @property
    def history_set(self) -> set[int]:
        return set(self.history)

    def distinct_history(self) -> list[int]:
        return list(dict.fromkeys(self.history))

    def distinct_ages(self) -> list[float]:
        """Per :meth:`distinct_history` text: days from its latest occurrence to the cutoff."""
        latest: dict[int, float] = {}
        for i, age in zip(self.history, self.history_age, strict=True):
            latest[i] = min(age, latest.get(i, age))
        return [latest[i] for i in self.distinct_history()]


@dataclass
class EvalData:
    """Texts, the future pool and the evaluated users of one workspace."""

    kinds: list[str]
    texts: list[str]  #: distinct normalized texts (history and future of every split user)
    users: dict[str, UserData]  #: every split user with history and future interactions
    pool: np.ndarray  #: text indices of the future pool: every distinct future text of every split user
    history_counts: Counter[int]  #: interactions per text over all split users' histories (popularity)
    skipped: dict[str, str]  #: split users left out, with the reason
    future_owners: dict[int, int] = field(default_factory=dict)  #: text -> number of users with it in the future

    def pool_position(self) -> dict[int, int]:
        return {int(t): i for i, t in enumerate(self.pool)}


def target_kinds(ws: Workspace) -> list[str]:
    """``query`` when the split users' actions include queries, else every kind but ``click``."""
    kinds = tables.protocol.split_kinds(ws.con)
    if "query" in kinds:
        return ["query"]
    return [k for k in kinds if k != "click"]


def load_data(ws: Workspace, *, max_targets: int = 20, seed: int = 0, kinds: Sequence[str] | None = None) -> EvalData:
    """Read every split user's interactions; choose each user's targets (seeded, stable per user)."""
    kinds = list(kinds) if kinds else target_kinds(ws)
    rows = tables.protocol.split_interactions(ws.con, kinds)
    index: dict[str, int] = {}
    texts: list[str] = []
    hist: dict[str, list[int]] = {}
    ages: dict[str, list[float]] = {}
    fut: dict[str, dict[int, None]] = {}
    for uid, text, is_future, age in rows:
        key = norm(text)
        if not key:
            continue
        i = index.get(key)
        if i is None:
            i = index[key] = len(texts)
            texts.append(key)
        if is_future:
            fut.setdefault(uid, {})[i] = None
        else:
            hist.setdefault(uid, []).append(i)
            ages.setdefault(uid, []).append(float(age))
    split = tables.protocol.split_users(ws.con)
    users: dict[str, UserData] = {}
    skipped: dict[str, str] = {}
    counts: Counter[int] = Counter()
    owners: Counter[int] = Counter()
    for uid in split:
        h, f = hist.get(uid, []), list(fut.get(uid, {}))
        counts.update(h)
        owners.update(f)
        if not h:
            skipped[uid] = f"no history interactions ({', '.join(kinds)})"
            continue
        if not f:
            skipped[uid] = f"no future interactions ({', '.join(kinds)})"
            continue
        u = UserData(uid, h, f, history_age=ages[uid])
        chosen = f if len(f) <= max_targets else sorted(random.Random(stable_seed(seed, uid)).sample(f, max_targets),
                                                        key=f.index)
        hs = set(h)
        u.targets, u.repeat = chosen, [t in hs for t in chosen]
        users[uid] = u
    pool = np.array(sorted(owners), dtype=np.int64)
    return EvalData(kinds=kinds, texts=texts, users=users, pool=pool, history_counts=counts, skipped=skipped,
                    future_owners=dict(owners))
