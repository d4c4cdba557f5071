"""The persona stage driver: map a builder over users, store sets, check evidence, export.

The sets of one run form a named **collection** (``PersonaConfig.name``, default the builder), a
lineage output whose fingerprint hashes the builder, its config, prompt version, model and
embedder, and the fingerprint of the memory set read. A set's id hashes that fingerprint, the
user's memory ids and the sample, so a set built on changed memories gets a new id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from personaminer import lineage, tables, terminal
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.personas.base import MemoryItem, PersonaBuilder, PersonaConfig, set_ids
from personaminer.personas.cluster import ClusterBuilder
from personaminer.personas.model import ModelBuilder
from personaminer.personas.single import SingleBuilder
from personaminer.prompts import load_prompt
from personaminer.schema import PersonaSet
from personaminer.store import Workspace, WorkspaceError

BUILDERS: dict[str, type] = {"cluster": ClusterBuilder, "model": ModelBuilder, "single": SingleBuilder}

#: The stage's code version, part of every collection's fingerprint.
CODE = "personas/2"


def make_builder(name: str) -> PersonaBuilder:
    try:
        return BUILDERS[name]()  # type: ignore[no-any-return]
    except KeyError:
        raise ValueError(f"unknown builder {name!r}; choose one of {', '.join(BUILDERS)}") from None


def load_memory_items(ws: Workspace, user_id: str, memory_set: str) -> list[MemoryItem]:
    return [MemoryItem(*r) for r in tables.memories.items(ws.con, user_id, memory_set)]


def persona_output(ws: Workspace, config: PersonaConfig, builder: PersonaBuilder, *, embedder: Embedder,
                   llm: LLM | None) -> lineage.Output:
    """The lineage entry of the collection ``config`` builds (from its memory set, with these models)."""
    parent = lineage.fingerprint_of(ws.con, "memories", config.memory_set)
    if parent is None:
        raise WorkspaceError(f"no memory set {config.memory_set!r} in {ws.path}: run `personaminer memories` first "
                             f"(sets here: {', '.join(tables.memories.sets(ws.con)) or 'none'})")
    names = builder.prompts(config) if hasattr(builder, "prompts") else (builder.prompt,)
    prompt = "+".join(f"{p.name}.v{p.version}" for p in map(load_prompt, names))
    return lineage.Output("personas", config.collection, CODE, config.output_config(), (parent,),
                          prompt=prompt, model=llm.model_id if llm is not None else None,
                          embedder=embedder.model_id)


def write_set(ws: Workspace, ps: PersonaSet) -> None:
    """Store a set and its personas in one transaction (a failed set is stored without personas)."""
    with ws.transaction() as con:
        tables.personas.write_set(con, ps)


def check_evidence(ps: PersonaSet, memories: Sequence[MemoryItem]) -> None:
    """Refuse to store a set citing a memory that is not one of this user's (a bug guard)."""
    own = {m.memory_id for m in memories}
    for p in ps.personas:
        if foreign := [e for e in p.evidence if e not in own]:
            raise ValueError(f"persona {p.label!r} of user {ps.user_id} cites memories not of this user: {foreign}")


def run_personas(ws: Workspace, users: Sequence[str], config: PersonaConfig, *, embedder: Embedder,
                 llm: LLM | None, replace: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build ``config.samples`` persona sets per user with ``config.builder``; skip sets already stored.

    The summary's ``set_ids`` maps each user to the ids of its sets (stored now or before), by sample.
    """
    builder = make_builder(config.builder)
    out = persona_output(ws, config, builder, embedder=embedder, llm=llm)
    t0 = time.perf_counter()
    totals = {"users": 0, "users_without_memories": 0, "sets": 0, "sets_skipped": 0, "failed_sets": 0,
              "repaired_sets": 0, "personas": 0, "llm_requests": 0, "llm_model_calls": 0, "prompt_tokens": 0,
              "completion_tokens": 0, "unassigned_memories": 0, "subset_sets": 0}
    ids_by_user: dict[str, list[str]] = {}
    with ws.run("personas", {**config.to_dict(), "users": len(users), "fingerprint": out.fingerprint}) as run, \
            terminal.progress(TextColumn(f"personas [{config.builder}]"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), disable=not progress) as bar:
        outcome = lineage.claim(ws, out, replace=replace, run_id=run["run_id"])
        task = bar.add_task("users", total=len(users), stats="")
        for user_id in users:
            totals["users"] += 1
            memories = load_memory_items(ws, user_id, config.memory_set)
            if not memories:
                totals["users_without_memories"] += 1
                bar.update(task, advance=1)
                continue
            ids = ids_by_user[user_id] = set_ids(out.fingerprint, user_id, memories, config.samples)
            have = tables.personas.existing(ws.con, ids)
            if len(have) == len(ids):
                totals["sets_skipped"] += len(ids)
                bar.update(task, advance=1)
                continue
            for ps in builder.build(user_id, memories, config, embedder=embedder, llm=llm, lineage=out.fingerprint):
                if ps.set_id in have:
                    totals["sets_skipped"] += 1
                    continue
                check_evidence(ps, memories)
                write_set(ws, ps)
                _count(totals, ps)
            bar.update(task, advance=1, stats=f"{totals['personas']:,} personas")
        seconds = time.perf_counter() - t0
        summary = {"builder": config.builder, "collection": config.collection, "fingerprint": out.fingerprint,
                   "lineage": outcome, "config": config.to_dict(),
                   "model": llm.model_id if llm is not None else None, **totals,
                   "personas_per_set": round(totals["personas"] / max(1, totals["sets"] - totals["failed_sets"]), 2),
                   "seconds": round(seconds, 2),
                   "users_per_hour": round(totals["users"] / seconds * 3600, 1) if seconds else None,
                   "check": verify_personas(ws)}
        run.update(summary)
    ws.write_report("personas", summary)
    return {**summary, "set_ids": ids_by_user}


def _count(totals: dict[str, Any], ps: PersonaSet) -> None:
    totals["sets"] += 1
    totals["failed_sets"] += ps.status == "failed"
    totals["repaired_sets"] += ps.status == "repaired"
    totals["personas"] += len(ps.personas)
    totals["unassigned_memories"] += len(ps.unassigned)
    totals["subset_sets"] += ps.subset is not None
    for k in ("llm_requests", "llm_model_calls", "prompt_tokens", "completion_tokens"):
        totals[k] += getattr(ps, k)


def verify_personas(ws: Workspace) -> dict[str, Any]:
    """Every persona's evidence exists, belongs to the persona's user, and is non-empty."""
    out: dict[str, Any] = dict(tables.personas.verify(ws.con))
    out["ok"] = all(v == 0 for v in out.values())
    return out


def export_personas(ws: Workspace, to: str | Path) -> int:
    """Write one record per persona (with its evidence memories and their action ids) to JSONL or Parquet."""
    to = Path(to)
    fmt = {".jsonl": "JSON", ".json": "JSON", ".parquet": "PARQUET"}.get(to.suffix.lower())
    if fmt is None:
        raise ValueError(f"export to .jsonl or .parquet, not {to.suffix or to.name}")
    if not (ws.has_table("personas") and ws.has_table("memories")):
        raise ValueError(f"no personas in {ws.path}: run `personaminer personas` first")
    to.parent.mkdir(parents=True, exist_ok=True)
    n = tables.personas.export(ws.con, to.as_posix(), fmt)
    if fmt == "JSON":
        _escape_json_file(to)
    return n


def _escape_json_file(path: Path) -> None:
    """Write the terminal-active characters JSON may hold raw (C1 controls, bidi marks, U+2028/9) as
    ``\\uXXXX`` escapes: the same strings to a JSON reader, inert when the file is printed.
    (DuckDB already escapes the C0 controls.) In JSON such a character can only be inside a string."""
    from personaminer.terminal import has_unsafe

    table = {ord(ch): f"\\u{ord(ch):04x}" for ch in map(chr, range(0x7F, 0x2070)) if has_unsafe(ch)}
    tmp = path.with_name(path.name + ".tmp")
    with path.open("r", encoding="utf-8") as src, tmp.open("w", encoding="utf-8") as dst:
        for line in src:
            dst.write(line.translate(table))
    os.replace(tmp, path)
