"""MovieLens in RecBole's atomic format (``ml-100k.inter`` + ``ml-100k.item``).

Each rating is one ``rating`` action. Its ``text`` is ``Title (year) | genres``, with the
rating value, genres and year also in ``attrs``; ``item_id`` is the movie id. Timestamps are
Unix seconds (UTC). MovieLens records when a rating was *entered*, often many in one sitting:
``seq`` keeps the file order to break ties.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from personaminer.datasets.base import InputError, SqlChunk, csv_chunk, epoch_sql, read_header, require_file, sql_str

NAME = "movielens"


def _strip_types(header: list[str]) -> list[str]:
    return [h.split(":")[0] for h in header]


class MovieLensAdapter:
    """Reads a RecBole atomic MovieLens dataset: a folder, or the ``.inter`` file itself."""

    name = NAME

    def __init__(self, path: str | Path) -> None:
        self.path = require_file(Path(path))
        p = self.path
        inters = sorted(p.glob("*.inter")) if p.is_dir() else [p]
        if len(inters) != 1 or inters[0].suffix != ".inter":
            raise InputError(f"{p}: expected one RecBole .inter file (ml-100k.inter) or a folder holding one")
        self.inter = require_file(inters[0])
        self.item = self.inter.with_suffix(".item")
        if not self.item.exists():
            raise InputError(f"{self.item} not found: MovieLens ratings need the .item file beside the .inter file")

    def chunks(self) -> Iterator[SqlChunk]:
        inter_cols = _strip_types(read_header(self.inter, "\t"))
        item_cols = _strip_types(read_header(self.item, "\t"))
        for need, have, f in ((["user_id", "item_id", "rating", "timestamp"], inter_cols, self.inter),
                              (["item_id", "movie_title"], item_cols, self.item)):
            if missing := [c for c in need if c not in have]:
                raise InputError(f"{f} lacks columns {', '.join(missing)}: not a RecBole MovieLens file")
        year = "nullif(trim(i.release_year), '')" if "release_year" in item_cols else "NULL"
        genres = "nullif(trim(i.class), '')" if "class" in item_cols else "NULL"
        item_schema = ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in item_cols)
        items = (f"(SELECT * FROM read_csv({sql_str(self.item)}, delim='\\t', header=false, skip=1, "
                 f"all_varchar=true, quote='', auto_detect=false, "
                 f"columns={{{item_schema}}}))")
        select = f"""
            {sql_str(str(self.inter))} AS source_file, t.__row + 1 AS line, t.__row AS row_number, t.__row AS ord,
            concat_ws(chr(9), t.user_id, t.item_id, t.rating, t.timestamp) AS raw,
            nullif(trim(t.user_id), '') AS user_id,
            {epoch_sql('try_cast(t.timestamp AS DOUBLE)')} AS ts, t.timestamp AS ts_raw,
            'rating' AS kind,
            CASE WHEN i.movie_title IS NOT NULL THEN trim(i.movie_title)
                 || coalesce(' (' || {year} || ')', '') || coalesce(' | ' || replace({genres}, ' ', ', '), '') END AS text,
            nullif(trim(t.item_id), '') AS item_id,
            CAST(to_json({{'rating': try_cast(t.rating AS DOUBLE), 'year': {year},
                          'genres': string_split({genres}, ' ')}}) AS VARCHAR) AS attrs,
            CASE WHEN try_cast(t.rating AS DOUBLE) IS NULL THEN 'invalid value'
                 WHEN i.item_id IS NULL THEN 'unknown item' END AS error,
            CASE WHEN try_cast(t.rating AS DOUBLE) IS NULL THEN 'rating is not a number'
                 WHEN i.item_id IS NULL THEN 'item ' || t.item_id || ' is not in ' || {sql_str(self.item.name)} END
                 AS detail
        """
        chunk = csv_chunk(self.inter, select, columns=inter_cols, delim="\t", quote="",
                          extra_from=f"LEFT JOIN {items} i ON i.item_id = t.item_id")
        chunk.sql += " ORDER BY t.__row"
        yield chunk
