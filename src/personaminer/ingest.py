"""Ingest: stream any supported input into the workspace's ``actions`` and ``quarantine``.

The pipeline is the same for every format:

1. the adapter streams chunks of staging rows (:mod:`personaminer.datasets.base`);
2. each chunk is validated by the shared rules and appended to a staging table on disk;
3. valid rows get their content-hash ``action_id``; rows already in ``actions`` (a re-ingest)
   and repeated rows within the input are counted and kept once; the rest are inserted;
4. rows with a reason go to ``quarantine`` (also idempotent).

All heavy lifting runs inside DuckDB, which spills to the workspace's ``tmp/`` folder, so
memory stays bounded by the workspace's ``memory_limit`` plus one chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from personaminer.datasets import detect_format, make_adapter
from personaminer.datasets.base import (
    ACTION_ID_SQL,
    CSV_REJECT_REASONS,
    REASON_SQL,
    STAGING_COLUMNS,
    ArrowChunk,
    InputError,
    SqlChunk,
)
from personaminer.store import Workspace

log = logging.getLogger(__name__)

_STAGE = "_staging"


@dataclass
class IngestConfig:
    """Everything that decides what an ingest does (recorded in ``runs``)."""

    path: str
    format: str = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False


@dataclass
class IngestSummary:
    """What an ingest did; also written to ``reports/ingest.json``."""

    run_id: str
    path: str
    format: str
    format_detected: bool
    rows_read: int
    actions_valid: int
    actions_inserted: int
    already_present: int
    duplicates_in_input: int
    quarantined: int
    quarantine_new: int
    quarantine_reasons: dict[str, int]
    actions_by_kind: dict[str, int]
    users: int
    seconds: float
    rows_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StrictModeError(RuntimeError):
    """``--strict`` was given and some rows were quarantined (nothing was written)."""


def ingest(path: str | Path, workspace: Workspace | str | Path = "personaminer-workspace", *,
           format: str = "auto", mapping: dict[str, str] | None = None, strict: bool = False,
           progress: bool = True, **options: Any) -> IngestSummary:
    """Ingest ``path`` into ``workspace`` and return what happened.

    ``format`` is one of :func:`personaminer.datasets.formats` or ``auto``. ``mapping`` maps
    action fields to column names for the generic formats (``{"user_id": "uid", ...}``).
    Extra keyword ``options`` go to the adapter (for example ``ts_format``). With
    ``strict=True`` any quarantined row raises :class:`StrictModeError` and nothing is stored.
    """
    own = not isinstance(workspace, Workspace)
    ws = Workspace(workspace) if own else workspace
    try:
        return _ingest(ws, Path(path), format, mapping or {}, strict, progress, options)
    finally:
        if own:
            ws.close()


def _ingest(ws: Workspace, path: Path, fmt: str, mapping: dict[str, str], strict: bool, progress: bool,
            options: dict[str, Any]) -> IngestSummary:
    detected = fmt == "auto"
    if detected:
        fmt = detect_format(path)
        log.info("format auto-detected: %s", fmt)
    adapter = make_adapter(fmt, path, mapping=mapping, **options)
    config = IngestConfig(path=str(path), format=fmt, mapping=mapping, options=options, strict=strict)
    con = ws.con
    t0 = time.perf_counter()
    with ws.run("ingest", asdict(config)) as run:
        con.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        cols = ", ".join(f"{name} {_duck_type(name)}" for name in STAGING_COLUMNS)
        con.execute(f"CREATE TABLE {_STAGE} ({cols}, seq BIGINT, reason VARCHAR)")
        rows = 0
        with _progress(progress) as bar:
            task = bar.add_task(f"ingest [bold]{fmt}[/] {path.name}", total=None)
            for index, chunk in enumerate(adapter.chunks()):
                rows += _stage_chunk(ws, chunk, index)
                if index == 0:
                    _check_plausible(ws, fmt, path)
                bar.update(task, completed=rows, description=f"ingest [bold]{fmt}[/] {path.name}: {rows:,} rows")
        summary = _commit(ws, run["run_id"], path, fmt, detected, rows, strict, t0)
        run.update(summary.to_dict())
    ws.write_report("ingest", summary.to_dict())
    return summary


def _stage_chunk(ws: Workspace, chunk: SqlChunk | ArrowChunk, index: int) -> int:
    """Validate one chunk and append it to the staging table; returns its row count."""
    con = ws.con
    names = ", ".join(STAGING_COLUMNS)
    seq = f"CAST({index} AS BIGINT) * 1099511627776 + ord"  # chunk index in the high bits
    before = con.execute(f"SELECT count(*) FROM {_STAGE}").fetchall()[0][0]
    if isinstance(chunk, ArrowChunk):
        con.register("_chunk", chunk.table)
        source = f"({chunk.select})" if chunk.select else "_chunk"
    else:
        for stmt in chunk.setup:
            con.execute(stmt)
        source = f"({chunk.sql})"
    try:
        con.execute(
            f"INSERT INTO {_STAGE} SELECT {names}, {seq}, reason FROM "
            f"(SELECT *, {REASON_SQL} AS reason FROM {source})")
    except Exception as exc:  # duckdb raises many subclasses; all mean the input is unusable
        raise InputError(f"cannot read {chunk.source_file}: {str(exc).splitlines()[0]}") from exc
    finally:
        if isinstance(chunk, ArrowChunk):
            con.unregister("_chunk")
    if isinstance(chunk, SqlChunk) and chunk.rejects:
        errors, scans = chunk.rejects
        con.execute(
            f"INSERT INTO {_STAGE} ({names}, seq, reason) "
            f"SELECT s.file_path, e.line, NULL, e.line, e.csv_line, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            f"e.error_type, first(e.error_message), {seq.replace('ord', 'e.line')}, "
            f"CASE {_reject_cases()} ELSE lower(e.error_type) END "
            f"FROM {errors} e JOIN {scans} s USING (scan_id, file_id) "
            f"GROUP BY s.file_path, e.line, e.csv_line, e.error_type")
        con.execute(f"DROP TABLE IF EXISTS {errors}")
        con.execute(f"DROP TABLE IF EXISTS {scans}")
    return con.execute(f"SELECT count(*) FROM {_STAGE}").fetchall()[0][0] - before


def _check_plausible(ws: Workspace, fmt: str, path: Path, min_rows: int = 20) -> None:
    """Stop early when the first chunk has no valid row at all: almost surely the wrong format."""
    total, valid = ws.con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM {_STAGE}").fetchall()[0]
    if total >= min_rows and valid == 0:
        top = ws.con.execute(
            f"SELECT reason FROM {_STAGE} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
        try:
            guess = f"; it looks like --format {detect_format(path)}"
        except InputError:
            guess = ""
        ws.con.execute(f"DROP TABLE {_STAGE}")
        raise InputError(f"none of the first {total:,} rows of {path.name} is a valid {fmt} action "
                         f"(most common fault: {top}){guess}: check --format and --map; nothing was stored")


def _reject_cases() -> str:
    return " ".join(f"WHEN e.error_type = '{k}' THEN '{v}'" for k, v in CSV_REJECT_REASONS.items())


def _commit(ws: Workspace, run_id: str, path: Path, fmt: str, detected: bool, rows: int, strict: bool,
            t0: float) -> IngestSummary:
    con = ws.con
    reasons = dict(con.execute(
        f"SELECT reason, count(*) FROM {_STAGE} WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC").fetchall())
    quarantined = sum(reasons.values())
    if strict and quarantined:
        con.execute(f"DROP TABLE {_STAGE}")
        detail = ", ".join(f"{n:,} {r}" for r, n in reasons.items())
        raise StrictModeError(f"--strict: {quarantined:,} rows would be quarantined ({detail}); nothing was stored")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"CREATE TEMP TABLE _valid AS SELECT {ACTION_ID_SQL} AS action_id, user_id, ts, kind, text, item_id, "
            f"attrs, source, seq FROM (SELECT *, '{fmt}' AS source FROM {_STAGE} WHERE reason IS NULL)")
        valid, distinct = con.execute("SELECT count(*), count(DISTINCT action_id) FROM _valid").fetchall()[0]
        present = con.execute(
            "SELECT count(DISTINCT v.action_id) FROM _valid v SEMI JOIN actions a ON a.action_id = v.action_id"
        ).fetchall()[0][0]
        con.execute(
            "INSERT INTO actions SELECT action_id, user_id, ts, kind, text, item_id, CAST(attrs AS JSON), source, seq "
            "FROM (SELECT *, row_number() OVER (PARTITION BY action_id ORDER BY seq) AS rn FROM _valid) v "
            "WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.action_id = v.action_id)")
        q_before = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
        con.execute(
            "INSERT INTO quarantine SELECT quarantine_id, ?, source_file, line, row_number, raw, reason, detail FROM ("
            "  SELECT 'q' || substr(sha256(concat_ws(chr(31), source_file, coalesce(CAST(line AS VARCHAR), ''), "
            "         coalesce(CAST(row_number AS VARCHAR), ''), coalesce(raw, ''), reason, coalesce(user_id, ''), "
            "         coalesce(kind, ''))), 1, 20) AS quarantine_id, *, "
            f"         row_number() OVER (PARTITION BY quarantine_id ORDER BY seq) AS rn FROM {_STAGE} "
            "  WHERE reason IS NOT NULL) q "
            "WHERE rn = 1 AND NOT EXISTS (SELECT 1 FROM quarantine x WHERE x.quarantine_id = q.quarantine_id)",
            [run_id])
        q_new = con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] - q_before
        kinds = dict(con.execute("SELECT kind, count(DISTINCT action_id) FROM _valid GROUP BY 1 ORDER BY 2 DESC").fetchall())
        users = con.execute("SELECT count(DISTINCT user_id) FROM _valid").fetchall()[0][0]
        con.execute("DROP TABLE _valid")
        con.execute(f"DROP TABLE {_STAGE}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    seconds = time.perf_counter() - t0
    inserted = distinct - present
    return IngestSummary(
        run_id=run_id, path=str(path), format=fmt, format_detected=detected, rows_read=rows,
        actions_valid=valid, actions_inserted=inserted, already_present=present,
        duplicates_in_input=valid - distinct, quarantined=quarantined, quarantine_new=q_new,
        quarantine_reasons=reasons, actions_by_kind=kinds, users=users, seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds else 0.0)


def _duck_type(name: str) -> str:
    return {"line": "BIGINT", "row_number": "BIGINT", "ord": "BIGINT", "ts": "TIMESTAMP"}.get(name, "VARCHAR")


def _progress(enabled: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)
