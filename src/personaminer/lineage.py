"""Lineage: every stored output knows exactly what produced it.

In the spirit of Hugging Face datasets' fingerprints, each named output of a stage (a memory set,
a persona collection, a score config, the split, a groups or verified-sets dataset) has a **fingerprint**:

    fingerprint = hash(kind, stage code version, stage config, prompt name and version,
                       model id (a local model's id is its file's sha256, plus its adapter's),
                       embedder id, the fingerprints of its parents)

and one row in the ``lineage`` table (its config and parents). Every row the stage writes carries
the fingerprint (``memories.lineage``, ``memory_days.lineage``, ``persona_sets.lineage``; a score's
``config_key`` *is* its fingerprint), and ids are derived from it: a persona set's id hashes its
collection's fingerprint (which hashes the memory set's), the user's memory ids and the sample, so
changed memories give new set ids, never a stale hit.

A run asks for a name (:func:`claim`): a new name is registered; the same name with the same
fingerprint resumes; the same name with another fingerprint is refused (:class:`LineageConflict`,
which says what differs) unless ``replace``, which deletes that output **and everything built on
it** (its descendants in the lineage graph) before registering the new one.

Bump a stage's code version (``CODE`` in its module) when its output changes for the same config.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from personaminer import tables
from personaminer.errors import UserError

if TYPE_CHECKING:
    import duckdb

    from personaminer.store import Workspace

LEGACY = "legacy:"  #: prefix of the fingerprint of an output built before lineage was tracked


def is_legacy(fingerprint: str) -> bool:
    return fingerprint.startswith(LEGACY)

_PREFIX = {"memories": "M", "personas": "P", "scores": "Q", "split": "T", "groups": "G", "verified": "V"}
_NOUN = {"memories": "memory set", "personas": "persona collection", "scores": "score config", "split": "split",
         "groups": "groups dataset", "verified": "verified-sets dataset"}
_FLAG = {"memories": "--set NAME", "personas": "--name NAME", "groups": "--out DIR", "split": "", "scores": "",
         "verified": "--out DIR"}


class LineageConflict(UserError, ValueError):
    """A name is already taken by an output with another fingerprint (and ``replace`` was not given)."""


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Output:
    """A named output of a stage, with what produced it."""

    kind: str
    name: str
    code: str
    config: dict[str, Any]
    parents: tuple[str, ...] = ()
    prompt: str | None = None  #: ``name.vVERSION``
    model: str | None = None
    embedder: str | None = None
    payload: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", {
            "kind": self.kind, "code": self.code, "config": json.loads(json.dumps(self.config, default=str)),
            "parents": list(self.parents), "prompt": self.prompt, "model": self.model, "embedder": self.embedder})

    @property
    def fingerprint(self) -> str:
        return _PREFIX[self.kind] + _hash(self.payload)[:20]


def claim(ws: Workspace, out: Output, *, replace: bool = False, run_id: str | None = None) -> str:
    """Register ``out`` under its name; ``new``, ``resume`` or ``replaced`` (see the module doc)."""
    con = ws.con
    have = tables.lineage.get(con, out.kind, out.name)
    if have is not None and have["fingerprint"] == out.fingerprint:
        return "resume"
    if have is not None and not replace:
        raise LineageConflict(_conflict(con, out, have))
    with ws.transaction():
        outcome = "new"
        if have is not None:
            drop(con, out.kind, out.name)
            outcome = "replaced"
        tables.lineage.put(con, out.kind, out.name, out.fingerprint, list(out.parents), out.payload, out.code, run_id)
    return outcome


def drop(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> dict[str, int]:
    """Delete an output's rows, and recursively every output built on it (call inside a transaction).

    Returns how many outputs of each kind went. Persona sets built on a memory set go with it
    even when they predate lineage (their ``memory_set`` names it).
    """
    gone: dict[str, int] = {}
    have = tables.lineage.get(con, kind, name)
    if have is not None:
        for child_kind, child_name, _ in tables.lineage.children(con, have["fingerprint"]):
            for k, n in drop(con, child_kind, child_name).items():
                gone[k] = gone.get(k, 0) + n
    if kind == "memories":
        tables.memories.delete_set(con, name)
        tables.personas.delete_sets(con, "memory_set", name)
    elif kind == "personas":
        tables.personas.delete_sets(con, "collection", name)
    elif kind == "scores":
        tables.scores.delete_config(con, name)
    tables.lineage.delete(con, kind, name)
    gone[kind] = gone.get(kind, 0) + 1
    return gone


def descendants(con: duckdb.DuckDBPyConnection, fingerprint: str) -> list[tuple[str, str]]:
    """(kind, name) of every output built, directly or not, on ``fingerprint``."""
    out: list[tuple[str, str]] = []
    for kind, name, fp in tables.lineage.children(con, fingerprint):
        out.append((kind, name))
        out += descendants(con, fp)
    return out


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}." if prefix or k != "config" else ""))
        return out
    return {prefix.rstrip("."): d}


def _conflict(con: duckdb.DuckDBPyConnection, out: Output, have: dict[str, Any]) -> str:
    noun = _NOUN[out.kind]
    built = descendants(con, have["fingerprint"])
    what = f"; --replace also deletes what was built on it ({len(built)} output(s))" if built else ""
    alt = f"pass {_FLAG[out.kind]} for a new {noun}, or " if _FLAG[out.kind] else ""
    if is_legacy(have["fingerprint"]):
        return (f"{noun} {out.name!r} was built before this version tracked what produced its rows, so it cannot "
                f"be extended safely: {alt}--replace to rebuild it{what}")
    old, new = _flat(have["config"]), _flat(out.payload)
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and k != "kind"]
    shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    return (f"{noun} {out.name!r} exists with another config ({shown}); its rows would be stale under the new one: "
            f"{alt}--replace to delete it and rebuild{what}")


def register_legacy(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Register the memory sets of a workspace older than lineage as :data:`LEGACY` (readable, not extendable)."""
    done = []
    for name in tables.lineage.legacy_memory_sets(con):
        fp = LEGACY + hashlib.sha256(name.encode()).hexdigest()[:16]
        tables.lineage.put(con, "memories", name, fp, [], {"legacy": True}, "0", None)
        done.append(f"memory set {name!r} registered as legacy")
    return done


def fingerprint_of(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> str | None:
    row = tables.lineage.get(con, kind, name)
    return None if row is None else row["fingerprint"]
