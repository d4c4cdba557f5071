"""Generic tables: CSV/TSV, JSON Lines and Parquet with a column mapping.

The mapping names the input column for each action field::

    --map user_id=uid --map ts=time --map text=query [--map kind=event] [--map item_id=sku]

``user_id``, ``ts`` and ``text`` are required. Without a ``kind`` column every row gets the
constant ``--option kind=...`` (default ``query``). Unmapped columns go to ``attrs``.
Timestamps are parsed as ISO 8601 (an offset is converted to UTC), as Unix epoch numbers
(seconds, or ``--option ts_unit=ms|us|ns``), or with ``--option ts_format=...`` (strptime codes).
A mapped field must hold one value per row: a Parquet list, struct or map column is refused,
and a JSON array or object in a JSON Lines record quarantines that record (``wrong value type``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from personaminer.datasets.base import (
    EPOCH_LIMIT_S,
    EPOCH_UNITS,
    ArrowChunk,
    InputError,
    RowBuffer,
    SqlChunk,
    csv_chunk,
    epoch_sql,
    read_header,
    require_file,
    sql_ident,
    sql_str,
)

REQUIRED = ("user_id", "ts", "text")
FIELDS = ("user_id", "ts", "text", "kind", "item_id")


def check_mapping(mapping: dict[str, str], columns: list[str], path: Path) -> None:
    """Raise :class:`InputError` naming what is wrong with a mapping."""
    if unknown := [k for k in mapping if k not in FIELDS]:
        raise InputError(f"unknown field(s) in --map: {', '.join(unknown)}; map any of {', '.join(FIELDS)}")
    if missing := [k for k in REQUIRED if k not in mapping]:
        raise InputError(f"--map is missing {', '.join(missing)} (e.g. --map {missing[0]}=COLUMN); "
                         f"columns in {path.name}: {', '.join(columns)}")
    if absent := [v for v in mapping.values() if v not in columns]:
        raise InputError(f"--map names column(s) not in {path.name}: {', '.join(absent)}; "
                         f"its columns are: {', '.join(columns)}")


def ts_sql(col: str, ts_format: str | None, ts_unit: str = "s") -> str:
    """SQL parsing a VARCHAR time to a UTC TIMESTAMP (NULL when it does not parse)."""
    if ts_format:
        return f"try_strptime({col}, {sql_str(ts_format)})::TIMESTAMP"
    return f"coalesce(try_cast({col} AS TIMESTAMPTZ)::TIMESTAMP, {epoch_sql(f'try_cast({col} AS DOUBLE)', ts_unit)})"


def _epoch(value: float, unit: str) -> dt.datetime | None:
    seconds = value / EPOCH_UNITS[unit]
    if not math.isfinite(seconds) or abs(seconds) >= EPOCH_LIMIT_S:
        return None
    return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)


def parse_ts(value: Any, ts_format: str | None, ts_unit: str = "s") -> dt.datetime | None:
    """Python twin of :func:`ts_sql` for JSON Lines values (None when it is no time)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return _epoch(float(value), ts_unit)
        text = str(value).strip()
        if ts_format:
            parsed = dt.datetime.strptime(text, ts_format)
        else:
            try:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return _epoch(float(text), ts_unit)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed
    except (ValueError, OverflowError, OSError):
        return None


def _scalar_fault(value: Any) -> str | None:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return None


class GenericAdapter:
    """A CSV/TSV, JSONL or Parquet file with a column mapping."""

    def __init__(self, path: str | Path, *, format: str, mapping: dict[str, str], ts_format: str | None = None,
                 ts_unit: str = "s", kind: str = "query", delimiter: str | None = None,
                 batch_rows: int = 50_000) -> None:
        self.path = require_file(Path(path))
        if self.path.is_dir():
            raise InputError(f"{self.path} is a folder: --format {format} reads one file")
        if ts_unit not in EPOCH_UNITS:
            raise InputError(f"--option ts_unit must be one of {', '.join(EPOCH_UNITS)}, not {ts_unit!r}")
        self.name = format
        self.mapping = mapping
        self.ts_format = ts_format
        self.ts_unit = ts_unit
        self.kind = kind
        self.delimiter = delimiter or ("\t" if self.path.suffix in (".tsv", ".tab") else ",")
        self.batch_rows = batch_rows

    def chunks(self) -> Iterator[SqlChunk | ArrowChunk]:
        if self.name == "jsonl":
            yield from self._jsonl()
            return
        if self.name == "parquet":
            schema = parquet_schema(self.path)
            columns = schema.names
            check_mapping(self.mapping, columns, self.path)
            for fld, column in self.mapping.items():
                typ = schema.field(column).type
                if pa.types.is_nested(typ):
                    raise InputError(f"--map {fld}={column}: {column} in {self.path.name} is a {typ} column, but "
                                     f"{fld} takes one value per row: map a scalar column, or flatten this one first")
        else:
            columns = read_header(self.path, self.delimiter)
            check_mapping(self.mapping, columns, self.path)
        m = self.mapping
        col = lambda name: f"t.{sql_ident(name)}"  # noqa: E731
        extra = [c for c in columns if c not in m.values()]
        attrs = ", ".join(f"{sql_str(c)}: {col(c)}" for c in extra)
        kind = f"lower(trim(CAST({col(m['kind'])} AS VARCHAR)))" if "kind" in m else sql_str(self.kind)
        row = "t.__row" if self.name != "parquet" else "(t.file_row_number + 1)"
        select = f"""
            {sql_str(str(self.path))} AS source_file, {row + ' + 1' if self.name != 'parquet' else 'NULL::BIGINT'} AS line,
            {row} AS row_number, {row} AS ord, CAST(to_json(t) AS VARCHAR) AS raw,
            nullif(trim(CAST({col(m['user_id'])} AS VARCHAR)), '') AS user_id,
            {ts_sql(f"CAST({col(m['ts'])} AS VARCHAR)", self.ts_format, self.ts_unit)} AS ts,
            CAST({col(m['ts'])} AS VARCHAR) AS ts_raw,
            {kind} AS kind, trim(CAST({col(m['text'])} AS VARCHAR)) AS text,
            {f"nullif(trim(CAST({col(m['item_id'])} AS VARCHAR)), '')" if 'item_id' in m else 'NULL'} AS item_id,
            {f"CAST(to_json({{{attrs}}}) AS VARCHAR)" if extra else 'NULL'} AS attrs,
            NULL AS error, NULL AS detail
        """
        if self.name == "parquet":
            yield SqlChunk(sql=f"SELECT {select} FROM read_parquet({sql_str(self.path)}, file_row_number=true) t",
                           source_file=str(self.path))
        else:
            chunk = csv_chunk(self.path, select, columns=columns, delim=self.delimiter)
            chunk.sql += " ORDER BY t.__row"
            yield chunk

    def _jsonl(self) -> Iterator[ArrowChunk]:
        m = self.mapping
        buf = RowBuffer(str(self.path), self.batch_rows)
        seen: set[str] = set()  # mapped keys found in at least one record
        records = 0
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                raw = raw.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                shown = raw.decode("utf-8", errors="backslashreplace")
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    buf.add(line=lineno, row_number=lineno, raw=shown, error="invalid encoding",
                            detail="the line is not valid UTF-8")
                    continue
                except json.JSONDecodeError as exc:
                    buf.add(line=lineno, row_number=lineno, raw=shown, error="invalid json", detail=str(exc))
                    continue
                except RecursionError:
                    buf.add(line=lineno, row_number=lineno, raw=shown, error="invalid json",
                            detail="nested deeper than the JSON reader allows")
                    continue
                if not isinstance(record, dict):
                    buf.add(line=lineno, row_number=lineno, raw=shown, error="invalid json",
                            detail="each line must be a JSON object")
                    continue
                records += 1
                seen.update(c for c in m.values() if c in record)
                self._add_record(buf, record, lineno, shown)
                if buf.full():
                    self._check_keys(seen, records)
                    yield buf.flush()  # type: ignore[misc]
        if records:
            self._check_keys(seen, records)
        last = buf.flush()
        if last is not None:
            yield last

    def _add_record(self, buf: RowBuffer, record: dict[str, Any], lineno: int, shown: str) -> None:
        """One JSON object as a staging row: absent keys become empty fields (the shared rules then
        name the fault), an array or object where one value belongs quarantines the record."""
        m = self.mapping
        for fld, column in m.items():
            if fault := _scalar_fault(record.get(column)):
                buf.add(line=lineno, row_number=lineno, raw=shown, error="wrong value type",
                        detail=f"{fld} ({column!r}) is {fault}, not a single value")
                return
        absent = [c for c in m.values() if c not in record]

        def text(value: Any) -> str | None:
            return None if value is None else str(value).strip()

        ts_value = record.get(m["ts"])
        kind = text(record.get(m["kind"])) if "kind" in m else self.kind
        item = record.get(m["item_id"]) if "item_id" in m else None
        buf.add(line=lineno, row_number=lineno, raw=shown, user_id=text(record.get(m["user_id"])),
                ts=parse_ts(ts_value, self.ts_format, self.ts_unit), ts_raw=text(ts_value),
                kind=None if kind is None else kind.lower(), text=text(record.get(m["text"])),
                item_id=None if item in (None, "") else str(item),
                attrs={k: v for k, v in record.items() if k not in m.values()},
                detail=f"the record has no key {', '.join(map(repr, absent))}" if absent else None)

    def _check_keys(self, seen: set[str], records: int) -> None:
        """A mapped key that no record read so far holds is a wrong mapping, not bad rows."""
        if never := [f"{f}={c}" for f, c in self.mapping.items() if c not in seen]:
            raise InputError(f"--map {', '.join(never)}: none of the first {records:,} records of {self.path.name} "
                             "has that key: check the mapping; nothing was stored")


def parquet_schema(path: Path) -> pa.Schema:
    """The schema of a Parquet file, or an :class:`InputError` saying it is not one."""
    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]}): check the file, "
                         "or pass the --format it really has") from exc
