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

import datetime as dt
import gzip
import io
import re
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from personaminer.datasets.base import ArrowChunk, InputError, RowBuffer, require_file

NAME = "aol"
_TS = re.compile(rb"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ORIGINAL_HEADER = b"AnonID\tQuery\tQueryTime\tItemRank\tClickURL"


def site_name(url: str) -> str:
    """The clicked site as a reader would name it: ``http://www.nytimes.com/x`` -> ``nytimes.com``."""
    candidate = url if "://" in url else "http://" + url
    try:
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    return host or url.strip()


def parse_time(raw: bytes) -> dt.datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` exactly, else None."""
    if not _TS.match(raw):
        return None
    try:
        return dt.datetime.strptime(raw.decode("ascii"), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _shown(raw: bytes) -> str:
    """Raw bytes as text for the quarantine table (invalid bytes shown as ``\\xNN``)."""
    return raw.decode("utf-8", errors="backslashreplace")


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
        buf = RowBuffer(str(self.path), self.batch_rows)
        for name, content in self._members():
            if isinstance(content, bytes):
                first = content[: len(ORIGINAL_HEADER)]
                lines: Iterable[bytes] = content.split(b"\n")
            else:
                first = content.peek(len(ORIGINAL_HEADER))[: len(ORIGINAL_HEADER)] if hasattr(content, "peek") else b""
                lines = _lines(content)
            parse = self._parse_original if first.startswith(ORIGINAL_HEADER) else self._parse_user_file
            yield from parse(name, lines, buf)
        last = buf.flush()
        if last is not None:
            yield last

    # -- per-user text files -------------------------------------------------------------
    def _parse_user_file(self, name: str, lines: Iterable[bytes], buf: RowBuffer) -> Iterator[ArrowChunk]:
        user_id = Path(name.split(":")[-1]).stem
        query: str | None = None  # the current record's query, None when it was quarantined
        ts: dt.datetime | None = None
        in_record = False
        for lineno, raw in enumerate(lines, start=1):
            raw = raw.rstrip(b"\r")
            if not raw.strip():
                in_record = False
                continue
            if not in_record or b"\t" in raw:  # a record head (also recovers a lost blank line)
                in_record = True
                query, ts = self._head(buf, name, lineno, raw, user_id)
            else:
                self._click(buf, name, lineno, raw, user_id, query, ts)
            if buf.full():
                yield buf.flush()  # type: ignore[misc]

    def _head(self, buf: RowBuffer, name: str, lineno: int, raw: bytes, user_id: str
              ) -> tuple[str | None, dt.datetime | None]:
        text = _decode(raw)
        if text is None:
            buf.add(source_file=name, line=lineno, raw=_shown(raw), user_id=user_id, error="invalid encoding",
                    detail="the query line is not valid UTF-8")
            return None, None
        fields = raw.split(b"\t")
        if len(fields) != 2:
            buf.add(source_file=name, line=lineno, raw=text, user_id=user_id, error="wrong column count",
                    detail=f"expected query<TAB>time (2 fields), found {len(fields)}")
            return None, None
        query, ts_raw = text.split("\t")
        ts = parse_time(fields[1].strip())
        buf.add(source_file=name, line=lineno, raw=text, user_id=user_id, ts=ts, ts_raw=ts_raw,
                kind="query", text=query.strip())
        return (query.strip(), ts) if ts is not None and query.strip() else (None, None)

    def _click(self, buf: RowBuffer, name: str, lineno: int, raw: bytes, user_id: str,
               query: str | None, ts: dt.datetime | None) -> None:
        url = _decode(raw)
        if url is None:
            buf.add(source_file=name, line=lineno, raw=_shown(raw), user_id=user_id, error="invalid encoding",
                    detail="the clicked-URL line is not valid UTF-8")
        elif query is None or ts is None:
            buf.add(source_file=name, line=lineno, raw=url, user_id=user_id, error="orphan click",
                    detail="the query line of this record was quarantined, so the click has no time")
        else:
            url = url.strip()
            buf.add(source_file=name, line=lineno, user_id=user_id, ts=ts, ts_raw=ts.isoformat(sep=" "),
                    kind="click", text=site_name(url), item_id=url, attrs={"url": url, "query": query})

    # -- the original tab-separated release ----------------------------------------------
    def _parse_original(self, name: str, lines: Iterable[bytes], buf: RowBuffer) -> Iterator[ArrowChunk]:
        previous: tuple[bytes, bytes, bytes] | None = None
        for lineno, raw in enumerate(lines, start=1):
            raw = raw.rstrip(b"\r")
            if lineno == 1 or not raw:
                continue
            text = _decode(raw)
            if text is None:
                buf.add(source_file=name, line=lineno, raw=_shown(raw), error="invalid encoding",
                        detail="the line is not valid UTF-8")
                previous = None
                continue
            fields = raw.split(b"\t")
            if len(fields) == 3:
                fields += [b"", b""]
            if len(fields) != 5:
                buf.add(source_file=name, line=lineno, raw=text, error="wrong column count",
                        detail=f"expected 5 tab-separated fields, found {len(fields)}")
                previous = None
                continue
            anon, query_b, time_b, rank_b, url_b = fields
            user_id, query, ts_raw = anon.decode(), query_b.decode().strip(), time_b.decode()
            ts = parse_time(time_b.strip())
            key = (anon, query_b, time_b)
            if key != previous or not url_b:
                buf.add(source_file=name, line=lineno, raw=text, user_id=user_id, ts=ts, ts_raw=ts_raw,
                        kind="query", text=query)
            previous = key
            if url_b:
                url = url_b.decode().strip()
                buf.add(source_file=name, line=lineno, raw=text, user_id=user_id, ts=ts, ts_raw=ts_raw,
                        kind="click", text=site_name(url), item_id=url,
                        attrs={"url": url, "query": query, "rank": int(rank_b) if rank_b.strip().isdigit() else None})
            if buf.full():
                yield buf.flush()  # type: ignore[misc]


def _lines(fh: io.BufferedIOBase) -> Iterator[bytes]:
    with fh:
        for raw in fh:
            yield raw.rstrip(b"\n")
