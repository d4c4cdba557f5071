"""The persona stage driver: map a builder over users, store sets, check evidence, export."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from personaminer import terminal
from personaminer.datasets.base import sql_str
from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.personas.base import MemoryItem, PersonaBuilder, PersonaConfig, new_set
from personaminer.personas.cluster import ClusterBuilder
from personaminer.personas.model import ModelBuilder
from personaminer.personas.single import SingleBuilder
from personaminer.schema import PERSONA_SETS_DDL, PERSONAS_DDL, PersonaSet
from personaminer.store import Workspace

BUILDERS: dict[str, type] = {"cluster": ClusterBuilder, "model": ModelBuilder, "single": SingleBuilder}


def make_builder(name: str) -> PersonaBuilder:
    try:
        return BUILDERS[name]()  # type: ignore[no-any-return]
    except KeyError:
        raise ValueError(f"unknown builder {name!r}; choose one of {', '.join(BUILDERS)}") from None


def ensure_tables(ws: Workspace) -> None:
    ws.con.execute(PERSONA_SETS_DDL)
    ws.con.execute(PERSONAS_DDL)


def load_memory_items(ws: Workspace, user_id: str, memory_set: str) -> list[MemoryItem]:
    rows = ws.con.execute("SELECT memory_id, day, summary FROM memories WHERE user_id = ? AND memory_set = ? "
                          "ORDER BY day, position", [user_id, memory_set]).fetchall()
    return [MemoryItem(*r) for r in rows]


def write_set(ws: Workspace, ps: PersonaSet) -> None:
    """Store a set and its personas in one transaction (a failed set is stored without personas)."""
    con = ws.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("INSERT INTO persona_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            ps.set_id, ps.user_id, ps.builder, ps.memory_set, ps.sample_index, ps.seed, ps.temperature, ps.model,
            ps.prompt, json.dumps(ps.config), ps.status, len(ps.personas), ps.n_memories, ps.unassigned, ps.subset,
            ps.note, ps.raw, ps.llm_requests, ps.llm_model_calls, ps.prompt_tokens, ps.completion_tokens])
        for p in ps.personas:
            con.execute("INSERT INTO personas VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [p.persona_id, p.set_id, p.user_id, p.position, p.label, p.description, p.evidence, p.builder])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def check_evidence(ps: PersonaSet, memories: Sequence[MemoryItem]) -> None:
    """Refuse to store a set citing a memory that is not one of this user's (a bug guard)."""
    own = {m.memory_id for m in memories}
    for p in ps.personas:
        if foreign := [e for e in p.evidence if e not in own]:
            raise ValueError(f"persona {p.label!r} of user {ps.user_id} cites memories not of this user: {foreign}")


def run_personas(ws: Workspace, users: Sequence[str], config: PersonaConfig, *, embedder: Embedder,
                 llm: LLM | None, progress: bool = True) -> dict[str, Any]:
    """Build ``config.samples`` persona sets per user with ``config.builder``; skip sets already stored."""
    ensure_tables(ws)
    builder = make_builder(config.builder)
    existing = {r[0] for r in ws.con.execute("SELECT set_id FROM persona_sets").fetchall()}
    t0 = time.perf_counter()
    totals = {"users": 0, "users_without_memories": 0, "sets": 0, "sets_skipped": 0, "failed_sets": 0,
              "repaired_sets": 0, "personas": 0, "llm_requests": 0, "llm_model_calls": 0, "prompt_tokens": 0,
              "completion_tokens": 0, "unassigned_memories": 0, "subset_sets": 0}
    with ws.run("personas", {**config.to_dict(), "users": len(users)}) as run, terminal.progress(
            TextColumn(f"personas [{config.builder}]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("users", total=len(users), stats="")
        for user_id in users:
            totals["users"] += 1
            memories = load_memory_items(ws, user_id, config.memory_set)
            if not memories:
                totals["users_without_memories"] += 1
                bar.update(task, advance=1)
                continue
            model_id = llm.model_id if llm is not None else None
            ids = [new_set(config.builder, user_id, config, s, model_id, None).set_id for s in range(config.samples)]
            if all(i in existing for i in ids):
                totals["sets_skipped"] += len(ids)
                bar.update(task, advance=1)
                continue
            for ps in builder.build(user_id, memories, config, embedder=embedder, llm=llm):
                if ps.set_id in existing:
                    totals["sets_skipped"] += 1
                    continue
                check_evidence(ps, memories)
                write_set(ws, ps)
                totals["sets"] += 1
                totals["failed_sets"] += ps.status == "failed"
                totals["repaired_sets"] += ps.status == "repaired"
                totals["personas"] += len(ps.personas)
                totals["unassigned_memories"] += len(ps.unassigned)
                totals["subset_sets"] += ps.subset is not None
                for k in ("llm_requests", "llm_model_calls", "prompt_tokens", "completion_tokens"):
                    totals[k] += getattr(ps, k)
            bar.update(task, advance=1, stats=f"{totals['personas']:,} personas")
        seconds = time.perf_counter() - t0
        summary = {"builder": config.builder, "config": config.to_dict(),
                   "model": llm.model_id if llm is not None else None, **totals,
                   "personas_per_set": round(totals["personas"] / max(1, totals["sets"] - totals["failed_sets"]), 2),
                   "seconds": round(seconds, 2),
                   "users_per_hour": round(totals["users"] / seconds * 3600, 1) if seconds else None,
                   "check": verify_personas(ws)}
        run.update(summary)
    ws.write_report("personas", summary)
    return summary


def verify_personas(ws: Workspace) -> dict[str, Any]:
    """Every persona's evidence exists, belongs to the persona's user, and is non-empty."""
    con = ws.con
    out = {
        "empty_evidence": con.execute("SELECT count(*) FROM personas WHERE len(evidence) = 0").fetchall()[0][0],
        "missing_or_foreign_evidence": con.execute("""
            SELECT count(*) FROM (SELECT p.user_id, unnest(p.evidence) AS memory_id FROM personas p) e
            LEFT JOIN memories m ON m.memory_id = e.memory_id
            WHERE m.memory_id IS NULL OR m.user_id <> e.user_id""").fetchall()[0][0],
        "personas_without_set": con.execute(
            "SELECT count(*) FROM personas p ANTI JOIN persona_sets s ON s.set_id = p.set_id").fetchall()[0][0],
    }
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
    query = """
        SELECT p.persona_id, p.set_id, p.user_id, p.position, p.label, p.description, p.builder,
               s.memory_set, s.sample_index, s.model, s.prompt, s.status AS set_status,
               list({'memory_id': m.memory_id, 'day': m.day, 'summary': m.summary, 'action_ids': m.action_ids}
                    ORDER BY m.day, m.position) AS evidence
        FROM personas p JOIN persona_sets s USING (set_id)
        JOIN (SELECT persona_id, unnest(evidence) AS memory_id FROM personas) e USING (persona_id)
        JOIN memories m ON m.memory_id = e.memory_id
        GROUP BY ALL ORDER BY p.user_id, p.set_id, p.position"""
    to.parent.mkdir(parents=True, exist_ok=True)
    ws.con.execute(f"COPY ({query}) TO {sql_str(to.as_posix())} (FORMAT {fmt})")
    if fmt == "JSON":
        _escape_json_file(to)
    return int(ws.con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])


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
