"""MerRec (Mercari US marketplace events, 2023), CSV or Parquet with its 25 columns.

``kind`` comes from ``event_id``; ``text`` is the listing ``name`` followed by its category
path (``c0 > c1 > c2``) and brand. Price, condition, size, colour, session and sequence
ids go to ``attrs``; ``item_id`` is the listing id. Times carry no zone and are stored as UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from personaminer.datasets.base import InputError, SqlChunk, csv_chunk, read_header, require_file, sql_str

NAME = "merrec"

COLUMNS = [
    "user_id", "stime", "session_id", "sequence_id", "sequence_length", "event_id", "item_id", "product_id",
    "name", "price", "c0_name", "c0_id", "c1_name", "c1_id", "c2_name", "c2_id", "brand_name", "brand_id",
    "item_condition_id", "item_condition_name", "size_name", "size_id", "color", "shipper_id", "shipper_name",
]

#: MerRec ``event_id`` -> action kind.
EVENT_KINDS = {
    "item_view": "view",
    "item_like": "like",
    "item_add_to_cart_tap": "cart",
    "offer_make": "offer",
    "buy_start": "checkout",
    "buy_comp": "purchase",
}


def _v(col: str) -> str:
    return f"nullif(trim(CAST(t.{col} AS VARCHAR)), '')"


def _select(source_file: str, row_sql: str, line_sql: str = "NULL::BIGINT") -> str:
    kinds = " ".join(f"WHEN '{e}' THEN '{k}'" for e, k in EVENT_KINDS.items())
    path = f"concat_ws(' > ', {_v('c0_name')}, {_v('c1_name')}, {_v('c2_name')})"
    attrs = ", ".join(f"'{k}': {_v(k)}" for k in [
        "price", "session_id", "sequence_id", "product_id", "brand_name", "item_condition_name", "size_name",
        "color", "shipper_name", "event_id"])
    return f"""
        {sql_str(source_file)} AS source_file, {line_sql} AS line, {row_sql} AS row_number, {row_sql} AS ord,
        CAST(to_json(t) AS VARCHAR) AS raw,
        {_v('user_id')} AS user_id,
        try_strptime({_v('stime')}, '%Y-%m-%d %H:%M:%S') AS ts, {_v('stime')} AS ts_raw,
        CASE {_v('event_id')} {kinds} END AS kind,
        CASE WHEN {_v('name')} IS NOT NULL THEN
            {_v('name')} || CASE WHEN {path} <> '' THEN ' | ' || {path} ELSE '' END
                         || coalesce(' | brand: ' || {_v('brand_name')}, '') END AS text,
        {_v('item_id')} AS item_id,
        CAST(to_json({{'category': nullif({path}, ''), {attrs}}}) AS VARCHAR) AS attrs,
        CASE WHEN {_v('event_id')} IS NOT NULL AND {_v('event_id')} NOT IN ({', '.join(sql_str(e) for e in EVENT_KINDS)})
             THEN 'unknown event' END AS error,
        CASE WHEN {_v('event_id')} NOT IN ({', '.join(sql_str(e) for e in EVENT_KINDS)})
             THEN 'event_id ' || {_v('event_id')} || ' is not one of {", ".join(EVENT_KINDS)}' END AS detail
    """


class MerRecAdapter:
    """Reads MerRec event files (``.csv`` or ``.parquet``; a folder of them works too)."""

    name = NAME

    def __init__(self, path: str | Path) -> None:
        self.path = require_file(Path(path))

    def _files(self) -> list[Path]:
        if self.path.is_dir():
            files = sorted(f for f in self.path.rglob("*") if f.suffix in (".csv", ".parquet"))
            if not files:
                raise InputError(f"{self.path} holds no .csv or .parquet MerRec files")
            return files
        return [self.path]

    def chunks(self) -> Iterator[SqlChunk]:
        for f in self._files():
            if f.suffix == ".parquet":
                yield SqlChunk(
                    sql=f"SELECT {_select(str(f), 'file_row_number + 1')} FROM "
                        f"read_parquet({sql_str(f)}, file_row_number=true) t",
                    source_file=str(f))
                continue
            header = read_header(f)
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise InputError(f"{f} is not a MerRec file: missing columns {', '.join(missing)} "
                                 "(use --format csv with --map for other layouts)")
            yield csv_chunk(f, _select(str(f), "t.__row", "t.__row + 1"), columns=header)
