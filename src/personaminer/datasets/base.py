"""The adapter contract: every source format becomes *staging rows*.

An adapter turns its input into a stream of chunks. A chunk is either a DuckDB SQL query
(for formats DuckDB reads natively and fast: CSV, Parquet) or an Arrow table (for formats we
parse in Python: AOL's per-user text files, JSONL). Both carry the same columns,
:data:`STAGING_COLUMNS`. The ingest driver validates every staging row with one shared rule
set (:data:`REASON_SQL`), so every format fails the same way for the same fault: a row with a
``reason`` goes to ``quarantine``, the others become actions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from personaminer.errors import UserError

#: Columns every chunk provides, in this order.
STAGING_COLUMNS: dict[str, pa.DataType] = {
    "source_file": pa.string(),  # file (or archive member) the row came from
    "line": pa.int64(),  # physical line in that file, where known
    "row_number": pa.int64(),  # 1-based data row (CSV/Parquet rows as the reader returns them)
    "ord": pa.int64(),  # input order within the chunk; becomes ``seq``
    "raw": pa.string(),  # the input as read; kept only for quarantined rows
    "user_id": pa.string(),
    "ts": pa.timestamp("us"),  # parsed UTC time, NULL when it did not parse
    "ts_raw": pa.string(),  # the time as written in the input
    "kind": pa.string(),
    "text": pa.string(),
    "item_id": pa.string(),
    "attrs": pa.string(),  # canonical JSON (sorted keys)
    "error": pa.string(),  # a structural fault the adapter found itself
    "detail": pa.string(),  # more words about that fault
}

STAGING_SCHEMA = pa.schema(list(STAGING_COLUMNS.items()))

#: A character that carries nothing a reader could see: whitespace, Unicode separators, control and
#: format characters (zero-width spaces, byte order marks, bidi marks). A user id, a time or a text
#: made only of these counts as missing.
BLANK_RE = r"[\s\p{Z}\p{C}]"


def blank_sql(expr: str) -> str:
    """SQL: ``expr`` is NULL or holds only :data:`BLANK_RE` characters."""
    return f"({expr} IS NULL OR regexp_replace({expr}, '{BLANK_RE}', '', 'g') = '')"


#: Epoch units a numeric time may be written in, and their size in seconds.
EPOCH_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
EPOCH_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
#: Beyond this many seconds from 1970 a number is no time at all (about the year 5138); DuckDB's own
#: limit is far above it, so no conversion can fail on a row.
EPOCH_LIMIT_S = 1e11


def epoch_sql(num: str, unit: str = "s") -> str:
    """SQL: the TIMESTAMP of a DOUBLE ``num`` of epoch ``unit`` units; NULL when not finite or out of range."""
    if unit not in EPOCH_UNITS:
        raise InputError(f"ts_unit must be one of {', '.join(EPOCH_UNITS)}, not {unit!r}")
    f = EPOCH_UNITS[unit]
    x = f"({num}) / {f!r}"
    return f"to_timestamp(CASE WHEN abs({x}) < {EPOCH_LIMIT_S!r} THEN {x} END)::TIMESTAMP"


#: The shared validation rules, in priority order; NULL means the row is a valid action. It reads the
#: staging columns plus ``_num`` (the time as a number, if it is one) and the parameters ``$min_ts``
#: and ``$max_ts`` (the plausibility window).
REASON_SQL = f"""
CASE
    WHEN error IS NOT NULL THEN error
    WHEN {blank_sql('user_id')} THEN 'missing user'
    WHEN {blank_sql('ts_raw')} THEN 'missing timestamp'
    WHEN (ts IS NULL OR NOT isfinite(ts)) AND NOT coalesce(isfinite(_num), false) THEN 'unparseable timestamp'
    WHEN ts IS NULL OR NOT isfinite(ts) OR ts < $min_ts OR ts > $max_ts THEN 'implausible timestamp'
    WHEN {blank_sql('text')} THEN 'empty text'
    WHEN kind IS NULL OR NOT regexp_full_match(kind, '[a-z][a-z0-9_]*') THEN 'invalid kind'
END
"""


def detail_sql(ts_unit: str = "s") -> str:
    """SQL: the words stored with a quarantined row, when the adapter gave none.

    For an implausible time it names the window and, for a number, how it reads in every other
    epoch unit that lands inside the window (milliseconds written in a seconds column, ...).
    Reads ``reason``, ``_num``, ``ts``, ``ts_raw`` and the parameters ``$min_ts``, ``$max_ts``.
    """
    window = "strftime($min_ts, '%Y-%m-%d') || ' .. ' || strftime($max_ts, '%Y-%m-%d')"
    fmt = "'%Y-%m-%d %H:%M:%S'"
    hints = " ".join(
        f"WHEN {epoch_sql('_num', u)} BETWEEN $min_ts AND $max_ts THEN '; read as epoch {EPOCH_UNIT_NAMES[u]} it is ' "
        f"|| strftime({epoch_sql('_num', u)}, {fmt}) || ' (generic formats: --option ts_unit={u})'"
        for u in EPOCH_UNITS if u != ts_unit)
    return f"""
    CASE
        WHEN detail IS NOT NULL THEN detail
        WHEN reason = 'implausible timestamp' AND _num IS NOT NULL THEN
            left(ts_raw, 40) || ' read as epoch {EPOCH_UNIT_NAMES.get(ts_unit, ts_unit)} is '
            || coalesce(strftime(ts, {fmt}), 'beyond the year 5000')
            || ', outside the plausible window ' || {window} || coalesce(CASE {hints} END, '')
        WHEN reason = 'implausible timestamp' THEN
            left(ts_raw, 40) || ' is outside the plausible window ' || {window}
            || ' (widen it with --min-ts / --max-ts)'
        WHEN reason = 'unparseable timestamp' AND _num IS NOT NULL THEN left(ts_raw, 40) || ' is not a finite number'
        WHEN reason = 'missing user' AND user_id IS NOT NULL THEN 'the user id has no visible character'
        WHEN reason = 'empty text' AND text IS NOT NULL THEN 'the text has no visible character'
    END
    """


#: SQL twin of :func:`personaminer.schema.action_id` (the tests check they agree).
ACTION_ID_SQL = (
    "'a' || substr(sha256(concat_ws(chr(31), source, user_id, strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), "
    "kind, coalesce(item_id, ''), text, coalesce(attrs, '{}'))), 1, 20)"
)

#: DuckDB CSV reject types mapped to the quarantine reasons we document.
CSV_REJECT_REASONS = {
    "TOO MANY COLUMNS": "wrong column count",
    "MISSING COLUMNS": "wrong column count",
    "INVALID ENCODING": "invalid encoding",
    "INVALID UNICODE": "invalid encoding",
    "UNQUOTED VALUE": "malformed quoting",
    "LINE SIZE OVER MAXIMUM": "line too long",
    "CAST": "wrong value type",
}


class InputError(UserError, ValueError):
    """A problem with the input as a whole (missing file, wrong format, bad mapping).

    The CLI prints its message as a one-line error; the message must say what to do.
    """


@dataclass
class SqlChunk:
    """A chunk DuckDB produces itself.

    ``sql`` is a SELECT returning :data:`STAGING_COLUMNS`. ``rejects`` names the DuckDB
    ``store_rejects`` tables (errors, scans) that the query fills with malformed CSV lines.
    """

    sql: str
    source_file: str
    rejects: tuple[str, str] | None = None
    setup: list[str] = field(default_factory=list)


@dataclass
class ArrowChunk:
    """A chunk parsed in Python: an Arrow table, registered in DuckDB as ``_chunk``.

    Without ``select`` the table must have :data:`STAGING_SCHEMA`. With ``select`` (a SELECT
    over ``_chunk`` returning :data:`STAGING_COLUMNS`) the Python side may hand over raw
    strings and leave the per-value work (time parsing, JSON) to DuckDB, which is much faster.
    """

    table: pa.Table
    source_file: str
    select: str | None = None


Chunk = SqlChunk | ArrowChunk


class Adapter(Protocol):
    """A source format. ``chunks`` must stream: never hold the whole input in memory."""

    name: str

    def chunks(self) -> Iterator[Chunk]: ...


def canonical_json(attrs: dict[str, Any]) -> str:
    """Deterministic JSON for ``attrs`` (sorted keys, no NULL values), part of the action id."""
    return json.dumps({k: v for k, v in attrs.items() if v is not None and v != ""},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class RowBuffer:
    """Collects staging rows in Python and emits Arrow chunks of bounded size."""

    def __init__(self, source_file: str, batch_rows: int = 50_000) -> None:
        self.source_file = source_file
        self.batch_rows = batch_rows
        self._cols: dict[str, list[Any]] = {name: [] for name in STAGING_COLUMNS}
        self._n = 0

    def add(self, *, line: int | None = None, row_number: int | None = None, raw: str | None = None,
            user_id: str | None = None, ts: dt.datetime | None = None, ts_raw: str | None = None,
            kind: str | None = None, text: str | None = None, item_id: str | None = None,
            attrs: dict[str, Any] | None = None, error: str | None = None, detail: str | None = None,
            source_file: str | None = None) -> None:
        c = self._cols
        c["source_file"].append(source_file or self.source_file)
        c["line"].append(line)
        c["row_number"].append(row_number)
        c["ord"].append(self._n)
        c["raw"].append(raw)
        c["user_id"].append(user_id)
        c["ts"].append(ts)
        c["ts_raw"].append(ts_raw)
        c["kind"].append(kind)
        c["text"].append(text)
        c["item_id"].append(item_id)
        c["attrs"].append(canonical_json(attrs) if attrs else None)
        c["error"].append(error)
        c["detail"].append(detail)
        self._n += 1

    def __len__(self) -> int:
        return len(self._cols["ord"])

    def full(self) -> bool:
        return len(self) >= self.batch_rows

    def flush(self) -> ArrowChunk | None:
        if not len(self):
            return None
        table = pa.Table.from_pydict(self._cols, schema=STAGING_SCHEMA)
        self._cols = {name: [] for name in STAGING_COLUMNS}
        return ArrowChunk(table=table, source_file=self.source_file)


def require_file(path: Path, what: str = "input") -> Path:
    """Check that ``path`` is a readable, non-empty file or a folder; raise :class:`InputError` if not.

    A FIFO, socket or device is refused before it is opened (opening a FIFO would wait forever).
    """
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path} (check the path)") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror} (check the path and its permissions)") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        what_is = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise InputError(f"{path} is {what_is}, not a regular file: save the log to a file and ingest that")
    if stat.S_ISREG(mode):
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror} (check its permissions)") from exc
        if path.stat().st_size == 0:
            raise InputError(f"{path} is empty: nothing to ingest")
    return path


def sql_str(value: str | Path) -> str:
    """A SQL string literal of any text (for the places DuckDB takes no parameter: file names in
    ``read_csv``/``COPY``, settings). Quotes are doubled; a NUL, which no literal can hold, is refused."""
    text = str(value)
    if "\x00" in text:
        raise InputError(f"a NUL character cannot be part of a path or setting: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A SQL identifier (a column name from the input's header, whatever it holds)."""
    if "\x00" in name:
        raise InputError(f"a column name holds a NUL character: {name!r}")
    return '"' + name.replace('"', '""') + '"'


_scan_counter = 0


def csv_chunk(path: Path, select: str, *, columns: list[str] | None = None, delim: str = ",",
              header: bool = True, where: str = "", extra_from: str = "", quote: str = '"') -> SqlChunk:
    """A :class:`SqlChunk` reading one CSV with DuckDB, malformed lines captured as rejects.

    ``select`` is the SELECT list producing :data:`STAGING_COLUMNS` from the table alias
    ``t`` (all columns read as VARCHAR; ``t.__row`` is the 1-based data row number).
    ``columns`` fixes the expected column names (the header is then skipped, not trusted).
    """
    global _scan_counter
    _scan_counter += 1
    errors, scans = f"_rejects_{_scan_counter}", f"_rejects_scan_{_scan_counter}"
    opts = [f"delim={sql_str(delim)}", f"header={'true' if header else 'false'}", "all_varchar=true",
            "store_rejects=true", f"rejects_table={sql_str(errors)}", f"rejects_scan={sql_str(scans)}",
            f"quote={sql_str(quote)}", f"escape={sql_str(quote)}", "strict_mode=true", "null_padding=false", "auto_detect=false"]
    if columns is None:
        raise InputError(f"internal: csv_chunk needs the column names of {path}")
    cols = ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in columns)
    opts.append(f"columns={{{cols}}}")
    sql = (f"SELECT {select} FROM (SELECT *, row_number() OVER () AS __row "
           f"FROM read_csv({sql_str(path)}, {', '.join(opts)})) t {extra_from} {where}")
    return SqlChunk(sql=sql, source_file=str(path), rejects=(errors, scans))


def read_header(path: Path, delim: str = ",") -> list[str]:
    """The header line of a delimited text file, as column names (quotes stripped)."""
    import csv

    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:  # -sig: drop a BOM
        try:
            row = next(csv.reader(fh, delimiter=delim), None)
        except csv.Error as exc:
            raise InputError(f"{path}: cannot read its header line ({exc})") from exc
    if not row:
        raise InputError(f"{path} has no header line")
    return [c.strip() for c in row]
