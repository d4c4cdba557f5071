"""The evaluation protocol: the temporal split (per user, a cutoff; history before it, the future
to predict after it) and the held-out roles (train / val / test users).

Rules (all cut at a day boundary, so no user-day, and hence no memory, straddles the cutoff):

* ``frac`` (default): the last ``round(future_frac * n)`` of the user's ``n`` active days
  (days with at least one action) are the future, at least one, and at least one day of
  history is kept (half rounds up);
* ``days``: the user's last ``future_days`` active days are the future;
* ``date``: one global date: actions on or after it are the future.

A user that cannot be split (one active day, or nothing on one side of a global date) gets no
row and is reported with the reason. The split is a lineage output (kind ``split``): memories
built with ``view="history"`` read only :meth:`Workspace.history_actions` and name the split's
fingerprint as their parent, so a re-split with another rule (``replace``) deletes them and what
was built on them. :func:`check_no_leakage` proves over the stored memories and personas that
nothing cites the future.

Roles (:func:`assign_roles`) are drawn by a seeded hash of each user id and never move once
stored (:func:`store_roles`); ``personas --role`` and ``evaluate --role`` select by them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from personaminer import lineage, tables
from personaminer.datasets.base import InputError
from personaminer.errors import UserError
from personaminer.store import Workspace

Rule = Literal["frac", "days", "date"]


class SplitConflict(UserError, ValueError):
    """A split with another rule exists; replacing it would make built memories/personas stale."""


@dataclass
class SplitConfig:
    """How to cut each user's timeline into history and future.

    Attributes
    ----------
    rule: ``frac`` (last fraction of active days), ``days`` (last N active days) or ``date``
        (one global date).
    future_frac: for ``frac``: the fraction of a user's active days that is the future.
    future_days: for ``days``: how many of the user's last active days are the future.
    date: for ``date``: the first day of the future (ISO ``YYYY-MM-DD``), for every user.
    """

    rule: Rule = "frac"
    future_frac: float = 0.2
    future_days: int | None = None
    date: str | None = None

    def __post_init__(self) -> None:
        if self.rule == "frac":
            if not 0.0 < self.future_frac < 1.0:
                raise ValueError(f"future_frac must be in (0, 1), not {self.future_frac}")
        elif self.rule == "days":
            if self.future_days is None or self.future_days < 1:
                raise ValueError("rule 'days' needs future_days >= 1")
        elif self.rule == "date":
            if self.date is None:
                raise ValueError("rule 'date' needs a date (YYYY-MM-DD)")
            try:
                self.date = dt.date.fromisoformat(str(self.date)).isoformat()
            except ValueError as exc:
                raise ValueError(f"date must be YYYY-MM-DD, not {self.date!r}") from exc
        else:
            raise ValueError(f"rule must be frac, days or date, not {self.rule!r}")

    def params(self) -> dict[str, Any]:
        return {"frac": {"future_frac": self.future_frac}, "days": {"future_days": self.future_days},
                "date": {"date": self.date}}[self.rule]

    def key(self) -> str:
        """Canonical rule + parameters: two configs with the same key split identically."""
        return json.dumps({"rule": self.rule, **self.params()}, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CODE = "split/1"


def cut_user(days: Sequence[dt.date], config: SplitConfig) -> tuple[dt.date | None, str | None]:
    """The first future day for one user's sorted distinct active days, or (None, reason)."""
    n = len(days)
    if config.rule == "date":
        first = dt.date.fromisoformat(config.date)  # type: ignore[arg-type]
        if days[0] >= first:
            return None, "no history before the date"
        if days[-1] < first:
            return None, "no future on or after the date"
        return first, None
    if n < 2:
        return None, "fewer than 2 active days"
    if config.rule == "frac":
        n_future = max(1, math.floor(config.future_frac * n + 0.5))
    else:
        n_future = int(config.future_days)  # type: ignore[arg-type]
        if n_future >= n:
            return None, f"fewer than {n_future + 1} active days"
    n_future = min(n_future, n - 1)
    return days[n - n_future], None


def split_users(ws: Workspace, users: Sequence[str], config: SplitConfig, *, replace: bool = False) -> dict[str, Any]:
    """Write the split of ``users``; return the summary (also ``reports/split.json``).

    Users already split with the same rule are left as they are (idempotent). If any user in
    the workspace is split with another rule, this raises :class:`SplitConflict` unless
    ``replace``; with ``replace`` the new rule is applied to ``users`` *and* every user split
    before, so the workspace keeps one rule. Memories and personas built on the old split
    are not deleted: :func:`check_no_leakage` flags those that now cite the future.
    """
    key = config.key()
    existing = tables.protocol.split_keys(ws.con)
    other_rules = Counter(k for k in existing.values() if k != key)
    if other_rules and not replace:
        (old, n), = other_rules.most_common(1)
        raise SplitConflict(
            f"{sum(other_rules.values())} user(s) are already split with another rule ({old}); memories and "
            f"personas built on that split would be stale. Pass --replace to re-split them with {key}, then "
            "rebuild memories and personas for them")
    todo = set(users)
    if replace:
        todo |= {u for u, k in existing.items() if k != key}
    skipped = sorted(u for u in todo if existing.get(u) == key)
    todo = sorted(u for u in todo if existing.get(u) != key)
    per_user: dict[str, list[tuple[dt.date, int]]] = defaultdict(list)
    for uid, day, n in tables.actions.days_per_user(ws.con, todo):
        per_user[uid].append((day, n))
    unsplittable: dict[str, str] = {}
    written: list[list[Any]] = []
    out = lineage.Output("split", "split", CODE, {"rule_key": key})
    with ws.run("split", {**config.to_dict(), "users": len(users), "replace": replace}) as run:
        lineage.claim(ws, out, replace=replace, run_id=run["run_id"])
        for uid in todo:
            days = per_user.get(uid, [])
            if not days:
                unsplittable[uid] = "no actions"
                continue
            first, reason = cut_user([d for d, _ in days], config)
            if first is None:
                unsplittable[uid] = reason or "?"
                continue
            hist = [(d, n) for d, n in days if d < first]
            fut = [(d, n) for d, n in days if d >= first]
            written.append([uid, dt.datetime.combine(first, dt.time()), config.rule, json.dumps(config.params()), key,
                            sum(n for _, n in hist), sum(n for _, n in fut), len(hist), len(fut), run["run_id"]])
        with ws.transaction() as con:
            tables.protocol.replace_splits(con, todo, written)
        replaced = sorted(u for u in todo if u in existing)
        stats = tables.protocol.split_stats(ws.con, key)
        summary = {
            "rule": config.rule, "params": config.params(), "rule_key": key, "requested_users": len(users),
            "split": len(written), "already_split": len(skipped), "replaced": len(replaced),
            "unsplittable": len(unsplittable), "unsplittable_reasons": dict(Counter(unsplittable.values())),
            "unsplittable_users": dict(sorted(unsplittable.items())),
            "workspace_split_users": stats[0], "history_actions": stats[1] or 0, "future_actions": stats[2] or 0,
            "mean_history_days": round(stats[3], 2) if stats[3] is not None else None,
            "mean_future_days": round(stats[4], 2) if stats[4] is not None else None,
            "cutoff_range": [stats[5], stats[6]],
            "fingerprint": out.fingerprint,
        }
        if replaced:
            summary["leakage_check"] = check_no_leakage(ws)
        run.update({k: v for k, v in summary.items() if k != "unsplittable_users"})
    ws.write_report("split", summary)
    return summary


def split_user_ids(ws: Workspace) -> list[str]:
    """Users with a split, sorted."""
    return tables.protocol.split_users(ws.con) if ws.has_table("splits") else []


def check_no_leakage(ws: Workspace) -> dict[str, Any]:
    """Prove that no memory or persona evidence cites an action at or after its user's cutoff.

    Counts (all must be 0): ``memories_citing_future`` (a memory of a split user holding an
    action with ``ts >= cutoff_ts``, or ending at or after the cutoff), ``personas_citing_future``
    (a persona whose evidence includes such a memory), ``persona_sets_on_future`` (sets with
    such a persona). ``examples`` lists a few offending memory ids.
    """
    out: dict[str, Any] = {"memories_citing_future": 0, "personas_citing_future": 0, "persona_sets_on_future": 0,
                           "examples": []}
    if not (ws.has_table("splits") and ws.has_table("memories")):
        out["ok"] = True
        return out
    ids = tables.protocol.leaky_memories(ws.con)
    out["memories_citing_future"] = len(ids)
    out["examples"] = ids[:5]
    if ids and ws.has_table("personas"):
        out["personas_citing_future"], out["persona_sets_on_future"] = tables.protocol.personas_citing(ws.con, ids)
    out["ok"] = out["memories_citing_future"] == 0 and out["personas_citing_future"] == 0
    return out


# -- held-out roles -------------------------------------------------------------------------
def assign_roles(users: Sequence[str], *, val_users: int, test_users: int, seed: int) -> dict[str, str]:
    """Disjoint roles by a seeded hash of each user id: the first ``test_users`` are test, the
    next ``val_users`` val, the rest train."""
    import hashlib

    if val_users + test_users >= len(users):
        raise InputError(f"{len(users)} users leave none for training with {val_users} val and {test_users} test")
    order = sorted(users, key=lambda u: hashlib.sha256(f"{seed}\x1f{u}".encode()).hexdigest())
    roles = {u: "test" for u in order[:test_users]}
    roles.update({u: "val" for u in order[test_users:test_users + val_users]})
    roles.update({u: "train" for u in order[test_users + val_users:]})
    return roles


def store_roles(ws: Workspace, roles: dict[str, str], seed: int) -> dict[str, str]:
    """Record roles; a user keeps the role it already has (roles never move between runs)."""
    have = tables.protocol.roles(ws.con)
    with ws.transaction() as con:
        tables.protocol.add_roles(con, [(u, r, seed) for u, r in roles.items() if u not in have])
    return {**roles, **{u: have[u] for u in roles if u in have}}


def load_roles(ws: Workspace) -> dict[str, str]:
    return tables.protocol.roles(ws.con)
