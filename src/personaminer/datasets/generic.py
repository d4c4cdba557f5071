"""Generic tables: CSV/TSV, JSON Lines and Parquet with a column mapping.

The mapping names the input column for each action field::

    --map user_id=uid --map ts=time --map text=query [--map kind=event] [--map item_id=sku]

``user_id``, ``ts`` and ``text`` are required. Without a ``kind`` column every row gets the
constant ``--option kind=...`` (default ``query``). Unmapped columns go to ``attrs``.
Timestamps are parsed as ISO 8601 (an offset is converted to UTC), as Unix seconds, or with
``--option ts_format=...`` (strptime codes).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from personaminer.datasets.base import (
    ArrowChunk,
    InputError,
    RowBuffer,
    SqlChunk,
    csv_chunk,
    read_header,
    require_file,
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


def ts_sql(col: str, ts_format: str | None) -> str:
    """SQL parsing a VARCHAR time to a UTC TIMESTAMP (NULL when it does not parse)."""
    if ts_format:
        return f"try_strptime({col}, {sql_str(ts_format)})::TIMESTAMP"
    return (f"coalesce(try_cast({col} AS TIMESTAMPTZ)::TIMESTAMP, "
            f"to_timestamp(try_cast({col} AS DOUBLE))::TIMESTAMP)")


def parse_ts(value: Any, ts_format: str | None) -> dt.datetime | None:
    """Python twin of :func:`ts_sql` for JSON Lines values."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)
        text = str(value).strip()
        if ts_format:
            parsed = dt.datetime.strptime(text, ts_format)
        else:
            try:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return dt.datetime.fromtimestamp(float(text), dt.UTC).replace(tzinfo=None)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed
    except (ValueError, OverflowError, OSError):
        return None


class GenericAdapter:
    """A CSV/TSV, JSONL or Parquet file with a column mapping."""

    def __init__(self, path: str | Path, *, format: str, mapping: dict[str, str], ts_format: str | None = None,
                 kind: str = "query", delimiter: str | None = None, batch_rows: int = 50_000) -> None:
        self.path = require_file(Path(path))
        if self.path.is_dir():
            raise InputError(f"{self.path} is a folder: --format {format} reads one file")
        self.name = format
        self.mapping = mapping
        self.ts_format = ts_format
        self.kind = kind
        self.delimiter = delimiter or ("\t" if self.path.suffix in (".tsv", ".tab") else ",")
        self.batch_rows = batch_rows

    def chunks(self) -> Iterator[SqlChunk | ArrowChunk]:
        if self.name == "jsonl":
            yield from self._jsonl()
            return
        if self.name == "parquet":
            try:
                columns = pq.read_schema(self.path).names
            except Exception as exc:
                raise InputError(f"{self.path} is not a readable Parquet file ({exc})") from exc
        else:
            columns = read_header(self.path, self.delimiter)
        check_mapping(self.mapping, columns, self.path)
        m = self.mapping
        col = lambda name: f't."{name}"'  # noqa: E731
        extra = [c for c in columns if c not in m.values()]
        attrs = ", ".join(f"{sql_str(c)}: {col(c)}" for c in extra)
        kind = f"lower(trim(CAST({col(m['kind'])} AS VARCHAR)))" if "kind" in m else sql_str(self.kind)
        row = "t.__row" if self.name != "parquet" else "(t.file_row_number + 1)"
        select = f"""
            {sql_str(str(self.path))} AS source_file, {row + ' + 1' if self.name != 'parquet' else 'NULL::BIGINT'} AS line,
            {row} AS row_number, {row} AS ord, CAST(to_json(t) AS VARCHAR) AS raw,
            nullif(trim(CAST({col(m['user_id'])} AS VARCHAR)), '') AS user_id,
            {ts_sql(f"CAST({col(m['ts'])} AS VARCHAR)", self.ts_format)} AS ts,
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
        checked = False
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
                if not isinstance(record, dict):
                    buf.add(line=lineno, row_number=lineno, raw=shown, error="invalid json",
                            detail="each line must be a JSON object")
                    continue
                if not checked:  # check the mapping against the first record's keys
                    check_mapping(m, list(record), self.path)
                    checked = True
                user = record.get(m["user_id"])
                ts_value = record.get(m["ts"])
                text = record.get(m["text"])
                kind = str(record.get(m["kind"], "")).strip().lower() if "kind" in m else self.kind
                item = record.get(m["item_id"]) if "item_id" in m else None
                buf.add(line=lineno, row_number=lineno, raw=shown,
                        user_id=None if user is None else str(user).strip(),
                        ts=parse_ts(ts_value, self.ts_format), ts_raw=None if ts_value is None else str(ts_value),
                        kind=kind, text=None if text is None else str(text).strip(),
                        item_id=None if item in (None, "") else str(item),
                        attrs={k: v for k, v in record.items() if k not in m.values()})
                if buf.full():
                    yield buf.flush()  # type: ignore[misc]
        last = buf.flush()
        if last is not None:
            yield last
