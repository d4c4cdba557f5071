"""AOL 2006 query log.

Two layouts are read, both streamed:

* **per-user text files** (``aol_top1000_users``): one ``<AnonID>.txt`` per user, in a folder or
  a ``.tar.gz``. Records are separated by a blank line; a record is ``query<TAB>QueryTime``
  followed by one clicked URL per line. A record becomes one ``query`` action plus one
  ``click`` action per URL (same timestamp; the click comes after its query in ``seq``).
* **the original release** (``user-ct-test-collection-NN.txt[.gz]``): tab-separated
  ``AnonID, Query, QueryTime, ItemRank, ClickURL`` with a header. Consecutive rows that repeat
  the same (AnonID, Query, QueryTime) are the same query with several clicks: one query
  action, one click action per row with a URL.

A click action's ``text`` names the clicked site (the URL's host without ``www.``); the full
URL is in ``attrs.url`` and is also the ``item_id``. AOL times carry no zone; they are stored
as given and treated as UTC.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa

from personaminer.datasets.base import ArrowChunk, InputError, blank_sql, require_file

NAME = "aol"
ORIGINAL_HEADER = b"AnonID\tQuery\tQueryTime\tItemRank\tClickURL"


def site_name(url: str) -> str:
    """The clicked site as a reader would name it: ``http://www.nytimes.com/x`` -> ``nytimes.com``.

    Python twin of the SQL in :data:`SELECT_SQL` that the adapter runs (the tests check both agree).
    """
    candidate = url if "://" in url else "http://" + url
    try:
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    return host or url.strip()


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown(raw: bytes) -> str:
    """Raw bytes as text for the quarantine table (invalid bytes shown as ``\\xNN``)."""
    return raw.decode("utf-8", errors="backslashreplace")


_RAW_SCHEMA = pa.schema([("source_file", pa.string()), ("line", pa.int64()), ("user_id", pa.string()),
                         ("kind", pa.string()), ("body", pa.string()), ("ts_raw", pa.string()),
                         ("query", pa.string()), ("rank", pa.string()), ("error", pa.string()),
                         ("detail", pa.string())])

#: DuckDB turns the raw AOL lines into staging rows (vectorized: times, site names, JSON).
_TS_SQL = "try_strptime(ts_raw, '%Y-%m-%d %H:%M:%S')"
_SITE_SQL = ("coalesce(nullif(regexp_replace(lower(regexp_extract(trim(body), "
             "'^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?(?:[^@/?#]*@)?([^/:?#]+)', 1)), '^www\\.', ''), ''), trim(body))")
SELECT_SQL = f"""
    SELECT source_file, line, NULL::BIGINT AS row_number, row_number() OVER () - 1 AS ord,
           CASE WHEN kind = 'click' THEN body ELSE coalesce(body || chr(9) || ts_raw, body) END AS raw,
           user_id, {_TS_SQL} AS ts, ts_raw, kind,
           CASE WHEN kind = 'click' THEN {_SITE_SQL} ELSE trim(body) END AS text,
           CASE WHEN kind = 'click' THEN left(trim(body), $max_text) END AS item_id,
           CASE WHEN kind = 'click' AND rank IS NULL
                THEN CAST(to_json({{'query': left(query, $max_text), 'url': left(trim(body), $max_text)}}) AS VARCHAR)
                WHEN kind = 'click' THEN CAST(to_json({{'query': left(query, $max_text),
                                                       'rank': try_cast(rank AS INTEGER),
                                                       'url': left(trim(body), $max_text)}}) AS VARCHAR) END AS attrs,
           CASE WHEN error IS NOT NULL THEN error
                WHEN kind = 'click' AND ({blank_sql('query')} OR {_TS_SQL} IS NULL) THEN 'orphan click'
           END AS error,
           CASE WHEN error IS NOT NULL THEN detail
                WHEN kind = 'click' AND ({blank_sql('query')} OR {_TS_SQL} IS NULL)
                THEN 'the query line of this record was quarantined, so the click has no time' END AS detail
    FROM _chunk
"""


class _Lines:
    """Column lists of raw AOL lines, flushed as Arrow chunks."""

    def __init__(self, source_file: str, batch_rows: int) -> None:
        self.source_file, self.batch_rows = source_file, batch_rows
        self.cols: list[list[object]] = [[] for _ in _RAW_SCHEMA]

    def add(self, name: str, line: int, user_id: str | None, kind: str | None, body: str | None,
            ts_raw: str | None = None, query: str | None = None, *, rank: str | None = None,
            error: str | None = None, detail: str | None = None) -> None:
        for col, value in zip(self.cols, (name, line, user_id, kind, body, ts_raw, query, rank, error, detail),
                              strict=True):
            col.append(value)

    def full(self) -> bool:
        return len(self.cols[0]) >= self.batch_rows

    def flush(self) -> ArrowChunk | None:
        if not self.cols[0]:
            return None
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(self.cols, _RAW_SCHEMA, strict=True)],
                                     schema=_RAW_SCHEMA)
        self.cols = [[] for _ in _RAW_SCHEMA]
        return ArrowChunk(table=table, source_file=self.source_file, select=SELECT_SQL)


class AolAdapter:
    """Reads the AOL query log from a ``.tar.gz``, a folder, or single files."""

    name = NAME

    def __init__(self, path: str | Path, *, batch_rows: int = 50_000) -> None:
        self.path = require_file(Path(path))
        self.batch_rows = batch_rows

    # -- which files ---------------------------------------------------------------------
    def _members(self) -> Iterator[tuple[str, bytes | io.BufferedIOBase]]:
        """(display name, content) for every input file, streamed."""
        p = self.path
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not files:
                raise InputError(f"{p} holds no files: expected AOL <AnonID>.txt files")
            for f in files:
                yield str(f), f.read_bytes() if f.stat().st_size < 64 << 20 else f.open("rb")
        elif p.name.endswith((".tar.gz", ".tgz", ".tar")):
            try:
                with tarfile.open(p, "r:*") as tar:
                    for m in tar:
                        if m.isfile() and not Path(m.name).name.startswith("."):
                            fh = tar.extractfile(m)
                            if fh is not None:
                                yield f"{p.name}:{m.name}", fh.read()
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise InputError(f"{p} is not a readable tar archive ({exc}); unpack it or fix the file") from exc
        elif p.suffix == ".gz":
            yield str(p), gzip.open(p, "rb")
        else:
            yield str(p), p.open("rb")

    def chunks(self) -> Iterator[ArrowChunk]:
        out = _Lines(str(self.path), self.batch_rows)
        for name, content in self._members():
            if isinstance(content, bytes):
                first = content[: len(ORIGINAL_HEADER)]
                lines: Iterable[bytes] = content.split(b"\n")
            else:
                first = content.peek(len(ORIGINAL_HEADER))[: len(ORIGINAL_HEADER)] if hasattr(content, "peek") else b""
                lines = _lines(content)
            parse = self._parse_original if first.startswith(ORIGINAL_HEADER) else self._parse_user_file
            yield from parse(name, lines, out)
        rest = out.flush()
        if rest is not None:
            yield rest

    # -- per-user text files -------------------------------------------------------------
    def _parse_user_file(self, name: str, lines: Iterable[bytes], out: _Lines) -> Iterator[ArrowChunk]:
        """Split records and hand raw strings to DuckDB; only structure is checked here."""
        user_id = Path(name.split(":")[-1]).stem
        query: str | None = None  # the current record's query text (None: the head was quarantined)
        ts_raw: str | None = None
        in_record = False
        for lineno, raw in enumerate(lines, start=1):
            raw = raw.rstrip(b"\r")
            if not raw.strip():
                in_record = False
                continue
            text = _decode(raw)
            is_head = not in_record or b"\t" in raw  # a tab inside a record also recovers a lost blank line
            in_record = True
            if text is None:
                what = "query" if is_head else "clicked-URL"
                out.add(name, lineno, user_id, None, _shown(raw), error="invalid encoding",
                        detail=f"the {what} line is not valid UTF-8")
                if is_head:
                    query = ts_raw = None
            elif not is_head:
                out.add(name, lineno, user_id, "click", text, ts_raw, query)
            elif text.count("\t") != 1:
                out.add(name, lineno, user_id, None, text, error="wrong column count",
                        detail=f"expected query<TAB>time (2 fields), found {text.count(chr(9)) + 1}")
                query = ts_raw = None
            else:
                query, ts_raw = text.split("\t")
                out.add(name, lineno, user_id, "query", query, ts_raw)
            if out.full():
                yield out.flush()  # type: ignore[misc]

    # -- the original tab-separated release ----------------------------------------------
    def _parse_original(self, name: str, lines: Iterable[bytes], out: _Lines) -> Iterator[ArrowChunk]:
        previous: tuple[bytes, bytes, bytes] | None = None
        for lineno, raw in enumerate(lines, start=1):
            raw = raw.rstrip(b"\r")
            if lineno == 1 or not raw:
                continue
            text = _decode(raw)
            if text is None:
                out.add(name, lineno, None, None, _shown(raw), error="invalid encoding",
                        detail="the line is not valid UTF-8")
                previous = None
                continue
            fields = text.split("\t")
            if len(fields) == 3:
                fields += ["", ""]
            if len(fields) != 5:
                out.add(name, lineno, None, None, text, error="wrong column count",
                        detail=f"expected 5 tab-separated fields, found {len(fields)}")
                previous = None
                continue
            user_id, query, ts_raw, rank, url = fields
            key = (user_id, query, ts_raw)
            if key != previous or not url:  # repeated rows of one query are its further clicks
                out.add(name, lineno, user_id, "query", query, ts_raw)
            previous = key
            if url:
                out.add(name, lineno, user_id, "click", url, ts_raw, query, rank=rank.strip() or None)
            if out.full():
                yield out.flush()  # type: ignore[misc]


def _lines(fh: io.BufferedIOBase) -> Iterator[bytes]:
    with fh:
        for raw in fh:
            yield raw.rstrip(b"\n")
