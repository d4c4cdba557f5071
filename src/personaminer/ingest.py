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

import datetime as dt
import logging
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import Progress

from personaminer import terminal
from personaminer.datasets import detect_format, make_adapter
from personaminer.datasets.base import (
    ACTION_ID_SQL,
    CSV_REJECT_REASONS,
    REASON_SQL,
    STAGING_COLUMNS,
    ArrowChunk,
    InputError,
    SqlChunk,
    detail_sql,
    sql_str,
)
from personaminer.errors import UserError
from personaminer.store import Workspace

log = logging.getLogger(__name__)

_STAGE = "_staging"

#: The default plausibility window starts here (behavioral logs from before the web are mistakes);
#: it ends one day after the ingest runs (a time in the future is a mistake too).
DEFAULT_MIN_TS = dt.datetime(1990, 1, 1)
#: Action text longer than this is cut to it, and the original length recorded in
#: ``attrs.text_truncated_from``; every prompt cuts each action's text further.
MAX_TEXT_CHARS = 2000
#: A user id longer than this is no id (``oversized field``); the unmapped fields of a row may hold
#: at most ``ATTRS_FACTOR * max_text_chars`` characters of JSON.
MAX_USER_CHARS = 512
ATTRS_FACTOR = 16
#: A quarantined row keeps at most this many characters of its raw input (and says how many it had).
MAX_RAW_CHARS = 10_000


@dataclass
class IngestConfig:
    """Everything that decides what an ingest does (recorded in ``runs``)."""

    path: str
    format: str = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    min_ts: str = DEFAULT_MIN_TS.isoformat(sep=" ")
    max_ts: str | None = None  #: None: one day after the ingest starts
    max_text_chars: int = MAX_TEXT_CHARS


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


class StrictModeError(UserError, RuntimeError):
    """``--strict`` was given and some rows were quarantined (nothing was written)."""


def ingest(path: str | Path, workspace: Workspace | str | Path = "personaminer-workspace", *,
           format: str = "auto", mapping: dict[str, str] | None = None, strict: bool = False,
           progress: bool = True, min_ts: str | dt.date | None = None, max_ts: str | dt.date | None = None,
           max_text_chars: int = MAX_TEXT_CHARS, **options: Any) -> IngestSummary:
    """Ingest ``path`` into ``workspace`` and return what happened.

    ``format`` is one of :func:`personaminer.datasets.formats` or ``auto``. ``mapping`` maps
    action fields to column names for the generic formats (``{"user_id": "uid", ...}``).
    Extra keyword ``options`` go to the adapter (for example ``ts_format``, ``ts_unit``). With
    ``strict=True`` any quarantined row raises :class:`StrictModeError` and nothing is stored.

    ``min_ts`` .. ``max_ts`` is the plausibility window (default 1990-01-01 to one day after now):
    a time outside it is quarantined as ``implausible timestamp``. ``max_text_chars`` caps an
    action's text (a longer one is cut, its length kept in ``attrs.text_truncated_from``).
    """
    config = IngestConfig(path=str(path), format=format, mapping=dict(mapping or {}), options=options,
                          strict=strict, min_ts=_when(min_ts or DEFAULT_MIN_TS, "min_ts").isoformat(sep=" "),
                          max_ts=None if max_ts is None else _when(max_ts, "max_ts").isoformat(sep=" "),
                          max_text_chars=max_text_chars)
    if max_text_chars < 1:
        raise InputError(f"max_text_chars must be at least 1, not {max_text_chars}")
    own = not isinstance(workspace, Workspace)
    ws = Workspace(workspace) if own else workspace
    try:
        return _ingest(ws, Path(path), config, progress)
    finally:
        if own:
            ws.close()


def _when(value: str | dt.date, name: str) -> dt.datetime:
    """A window bound from an ISO date or time (UTC)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{name} must be an ISO date or time such as 2006-03-01, not {value!r}") from None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _ingest(ws: Workspace, path: Path, config: IngestConfig, progress: bool) -> IngestSummary:
    fmt = config.format
    detected = fmt == "auto"
    if detected:
        fmt = detect_format(path)
        config.format = fmt
        log.info("format auto-detected: %s", fmt)
    adapter = make_adapter(fmt, path, mapping=config.mapping, **config.options)
    if config.max_ts is None:
        config.max_ts = (dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
                         + dt.timedelta(days=1)).isoformat(sep=" ")
    params: dict[str, Any] = {
        "min_ts": _when(config.min_ts, "min_ts"), "max_ts": _when(config.max_ts, "max_ts"),
        "max_text": config.max_text_chars, "max_raw": MAX_RAW_CHARS, "max_user": MAX_USER_CHARS,
        "max_attrs": ATTRS_FACTOR * config.max_text_chars}
    if params["min_ts"] >= params["max_ts"]:
        raise InputError(f"the plausibility window is empty: min_ts {config.min_ts} is not before max_ts {config.max_ts}")
    detail = detail_sql(getattr(adapter, "ts_unit", "s"))
    con = ws.con
    t0 = time.perf_counter()
    with ws.run("ingest", asdict(config)) as run:
        con.execute(f"DROP TABLE IF EXISTS {_STAGE}")
        cols = ", ".join(f"{name} {_duck_type(name)}" for name in STAGING_COLUMNS)
        con.execute(f"CREATE TABLE {_STAGE} ({cols}, seq BIGINT, reason VARCHAR)")
        rows = 0
        with _progress(progress) as bar:
            label = f"ingest [bold]{fmt}[/] {escape(path.name)}"
            task = bar.add_task(label, total=None)
            for index, chunk in enumerate(_read_chunks(adapter, path)):
                rows += _stage_chunk(ws, chunk, index, params, detail)
                if index == 0:
                    _check_plausible(ws, fmt, path)
                bar.update(task, completed=rows, description=f"{label}: {rows:,} rows")
        summary = _commit(ws, run["run_id"], path, fmt, detected, rows, config.strict, t0)
        run.update(summary.to_dict())
    ws.write_report("ingest", summary.to_dict())
    return summary


def _read_chunks(adapter: Any, path: Path) -> Iterator[SqlChunk | ArrowChunk]:
    """The adapter's chunks; a read that fails half-way (a truncated archive) is one clear error."""
    import tarfile

    chunks = adapter.chunks()
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except InputError:
            raise
        except (EOFError, zlib.error, tarfile.TarError, OSError) as exc:  # gzip.BadGzipFile is an OSError
            raise InputError(f"cannot read {path}: {exc} (the file looks truncated or corrupt: fetch or unpack it "
                             "again; nothing was stored)") from exc
        yield chunk


#: What the staging step cuts before validation: over-long text (recorded in ``attrs``) and raw input.
_CAPS_SQL = """
    CASE WHEN length(s.text) > $max_text THEN left(s.text, $max_text) ELSE s.text END AS text,
    CASE WHEN length(s.text) > $max_text
         THEN CAST(json_merge_patch(coalesce(s.attrs, '{}'), json_object('text_truncated_from', length(s.text)))
                   AS VARCHAR)
         ELSE s.attrs END AS attrs,
    CASE WHEN length(s.raw) > $max_raw
         THEN left(s.raw, $max_raw) || ' ... [' || length(s.raw) || ' characters in all]' ELSE s.raw END AS raw
"""

#: Rows too large to be an action: checked before the shared rules, after the adapter's own errors.
_OVERSIZED_SQL = """
    CASE WHEN error IS NOT NULL THEN NULL
         WHEN length(user_id) > $max_user THEN 'the user id has ' || length(user_id) || ' characters (at most '
              || $max_user || ')'
         WHEN length(item_id) > $max_text THEN 'the item id has ' || length(item_id) || ' characters (at most '
              || $max_text || ')'
         WHEN length(attrs) > $max_attrs THEN 'the other fields hold ' || length(attrs) || ' characters of JSON '
              || '(at most ' || $max_attrs || ')'
    END
"""


def _bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The named parameters ``sql`` uses (DuckDB refuses extra ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def _stage_chunk(ws: Workspace, chunk: SqlChunk | ArrowChunk, index: int, params: dict[str, Any],
                 detail: str) -> int:
    """Validate one chunk and append it to the staging table; returns its row count."""
    con = ws.con
    names = ", ".join("_detail" if n == "detail" else n for n in STAGING_COLUMNS)
    seq = f"CAST({index} AS BIGINT) * 1099511627776 + ord"  # chunk index in the high bits
    before = con.execute(f"SELECT count(*) FROM {_STAGE}").fetchall()[0][0]
    if isinstance(chunk, ArrowChunk):
        con.register("_chunk", chunk.table)
        source = f"({chunk.select})" if chunk.select else "_chunk"
    else:
        source = f"({chunk.sql})"
    sql = (f"INSERT INTO {_STAGE} SELECT {names}, {seq}, reason FROM ("
           f"  SELECT *, {detail} AS _detail FROM ("
           f"    SELECT *, {REASON_SQL} AS reason FROM ("
           f"      SELECT * REPLACE (coalesce(error, CASE WHEN _big IS NOT NULL THEN 'oversized field' END) AS error,"
           f"                        coalesce(detail, _big) AS detail) FROM ("
           f"        SELECT *, {_OVERSIZED_SQL} AS _big FROM ("
           f"          SELECT s.* REPLACE ({_CAPS_SQL}), try_cast(trim(s.ts_raw) AS DOUBLE) AS _num"
           f"          FROM {source} s)))))")
    try:
        if isinstance(chunk, SqlChunk):
            for stmt in chunk.setup:
                con.execute(stmt, _bind(stmt, params))
        con.execute(sql, _bind(sql, params))
    except Exception as exc:  # duckdb raises many subclasses; all but a failing disk mean the input is unusable
        if _machine_fault(exc):
            raise
        raise InputError(f"cannot read {chunk.source_file}: {str(exc).splitlines()[0]}") from exc
    finally:
        if isinstance(chunk, ArrowChunk):
            con.unregister("_chunk")
    if isinstance(chunk, SqlChunk) and chunk.rejects:
        errors, scans = chunk.rejects
        con.execute(
            f"INSERT INTO {_STAGE} ({', '.join(STAGING_COLUMNS)}, seq, reason) "
            f"SELECT s.file_path, e.line, NULL, e.line, "
            f"CASE WHEN length(e.csv_line) > {MAX_RAW_CHARS} THEN left(e.csv_line, {MAX_RAW_CHARS}) || ' ... [' "
            f"|| length(e.csv_line) || ' characters in all]' ELSE e.csv_line END, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            f"e.error_type, first(e.error_message), {seq.replace('ord', 'e.line')}, "
            f"CASE {_reject_cases()} ELSE lower(e.error_type) END "
            f"FROM {errors} e JOIN {scans} s USING (scan_id, file_id) "
            f"GROUP BY s.file_path, e.line, e.csv_line, e.error_type")
        con.execute(f"DROP TABLE IF EXISTS {errors}")
        con.execute(f"DROP TABLE IF EXISTS {scans}")
    return con.execute(f"SELECT count(*) FROM {_STAGE}").fetchall()[0][0] - before


def _machine_fault(exc: BaseException) -> bool:
    """A failure of the machine (disk full, out of memory), not of the input: never blamed on the input."""
    text = str(exc)
    return isinstance(exc, OSError | MemoryError) or any(
        s in text for s in ("No space left on device", "Could not write file", "Out of Memory", "out of memory"))


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
    with ws.transaction():
        con.execute(
            f"CREATE TEMP TABLE _valid AS SELECT {ACTION_ID_SQL} AS action_id, user_id, ts, kind, text, item_id, "
            f"attrs, source, seq FROM (SELECT *, {sql_str(fmt)} AS source FROM {_STAGE} WHERE reason IS NULL)")
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
    return terminal.progress(disable=not enabled, transient=False)
