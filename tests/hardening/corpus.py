"""The corruption corpus: broken inputs of many kinds, built at test time from copies of the shared files.

Nothing here is copied into the repository: every case is generated from a small slice of the real
data under ``../shared/datasets`` when the test runs. A *kind* writes one corrupted input (and the
clean twin it was made from) and states, independently of the code under test, what a correct
ingest must do with it:

* ``drop``: the rows of the clean twin whose actions must be absent (the rows the kind broke);
  every other action of the clean twin must be present, with the same id;
* ``quarantine``: the exact quarantine rows, as ``(reason, line, row_number)``;
* ``error``: or, for a fault of the input as a whole, the one-line :class:`InputError` (a regex)
  that must refuse it, storing nothing;
* ``check``: further assertions (the times of a ``ts_unit`` case, a truncation record...).

:func:`run_kind` classifies what happened (``correct``, ``traceback``, ``refused``: a whole input
refused where one row was at fault, ``bad stored``, ``good lost``, ``wrong quarantine``), so the
same corpus both tests the code (``tests/hardening/test_corpus.py``) and measures any checkout
(``benchmarks/corruption_corpus.py``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASK = (1 << 40) - 1  # ingest keeps the chunk index in the high bits of ``seq``


def shared_root() -> Path:
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("PERSONAMINER_SHARED_DATASETS", repo.parent / "shared" / "datasets"))


@dataclass
class Case:
    """One corrupted input and what a correct ingest does with it."""

    path: Path
    format: str = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    clean: Path | None = None  #: the uncorrupted twin (ingested with the same format and mapping)
    clean_options: dict[str, Any] | None = None
    row_offset: int = 0  #: row key of an action = (seq & MASK) + row_offset
    drop: set[int] = field(default_factory=set)
    quarantine: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None
    check: Callable[..., None] | None = None


@dataclass
class Outcome:
    kind: str
    verdict: str  # correct | traceback | refused | bad stored | good lost | wrong quarantine | wrong
    detail: str = ""


KINDS: dict[str, Callable[[Sources, Path], Case]] = {}


def kind(name: str) -> Callable[[Callable[[Sources, Path], Case]], Callable[[Sources, Path], Case]]:
    def register(fn: Callable[[Sources, Path], Case]) -> Callable[[Sources, Path], Case]:
        assert name not in KINDS, name
        KINDS[name] = fn
        return fn

    return register


# -- the real data, read once ------------------------------------------------------------------
class Sources:
    """Small slices of the shared datasets (read at test time, never stored in the repository)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or shared_root()
        self._cache: dict[str, Any] = {}

    def available(self) -> list[str]:
        names = ["aol_top1000_users", "merrec_head_sample", "instacart_593_users", "movielens_100k"]
        return [n for n in names if (self.root / n).exists()]

    def aol_records(self, n: int = 14) -> tuple[str, list[list[bytes]]]:
        """(user id, records): the first ``n`` records of the first user, each [query<TAB>time, url...]."""
        if "aol" not in self._cache:
            with tarfile.open(self.root / "aol_top1000_users" / "user_search_logs.tar.gz") as tar:
                member = next(m for m in tar if m.isfile() and m.name.endswith(".txt"))
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
            records = [r.split(b"\n") for r in data.split(b"\n\n") if r.strip()]
            self._cache["aol"] = (Path(member.name).stem, [[x for x in r if x] for r in records])
        user, records = self._cache["aol"]
        return user, records[:n]

    def query_rows(self, n: int = 30) -> list[dict[str, Any]]:
        """``n`` real AOL queries as generic rows: uid, time (ISO, UTC), epoch, q, event, n_clicks."""
        import datetime as dt

        user, records = self.aol_records(400)
        rows = []
        for rec in records:
            query, when = rec[0].decode("utf-8").split("\t")
            t = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
            rows.append({"uid": user, "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "epoch": int(t.timestamp()),
                         "q": query, "event": "query", "n_clicks": len(rec) - 1})
            if len(rows) == n:
                break
        return rows

    def lines(self, dataset: str, name: str, n: int) -> list[bytes]:
        """The header and first ``n`` data lines of a shared file."""
        key = f"{dataset}/{name}/{n}"
        if key not in self._cache:
            with (self.root / dataset / name).open("rb") as fh:
                self._cache[key] = [fh.readline().rstrip(b"\n") for _ in range(n + 1)]
        return list(self._cache[key])

    def file(self, dataset: str, name: str) -> Path:
        return self.root / dataset / name


# -- writing inputs ----------------------------------------------------------------------------
def _csv_field(value: Any) -> str:
    s = str(value)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n\r') else s


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str], sep: str = ",") -> Path:
    body = [sep.join(columns)] + [sep.join(_csv_field(r[c]) for c in columns) for r in rows]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(end.join(lines) + end)
    return path


GEN_MAP = {"user_id": "uid", "ts": "time", "text": "q", "kind": "event"}
EPOCH_MAP = {"user_id": "uid", "ts": "epoch", "text": "q", "kind": "event"}
COLS = ["uid", "time", "epoch", "q", "event", "n_clicks"]


def _generic_csv(src: Sources, tmp: Path, edit: Callable[[list[dict[str, Any]]], None], *,
                 mapping: dict[str, str] = GEN_MAP, k: int = 6, reason: str | None = None,
                 **case: Any) -> Case:
    """A generic CSV of 30 real queries; ``edit`` corrupts the rows (data row ``k`` by default)."""
    rows = src.query_rows()
    clean = write_csv(tmp / "clean.csv", rows, COLS)
    bad = [dict(r) for r in rows]
    edit(bad)
    path = write_csv(tmp / "log.csv", bad, COLS)
    if reason is not None:
        case.setdefault("drop", {k})
        case.setdefault("quarantine", [(reason, k + 1, k)])
    return Case(path=path, format="csv", mapping=dict(mapping), clean=clean, **case)


def _set(k: int, **values: Any) -> Callable[[list[dict[str, Any]]], None]:
    def edit(rows: list[dict[str, Any]]) -> None:
        rows[k - 1].update(values)

    return edit


# ---------------------------------------------------------------------------------------------
# Generic CSV
# ---------------------------------------------------------------------------------------------
@kind("csv: NaN epoch")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, epoch="NaN"), mapping=EPOCH_MAP, reason="unparseable timestamp")


@kind("csv: inf epoch")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, epoch="inf"), mapping=EPOCH_MAP, reason="unparseable timestamp")


@kind("csv: 1e20 epoch")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, epoch="1e20"), mapping=EPOCH_MAP, reason="implausible timestamp")


@kind("csv: -1e18 epoch")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, epoch="-1e18"), mapping=EPOCH_MAP, reason="implausible timestamp")


def _detail_has(text: str) -> Callable[..., None]:
    def check(ws: Any, summary: Any, baseline: dict[int, str]) -> None:
        details = [r[0] or "" for r in ws.con.execute("SELECT detail FROM quarantine").fetchall()]
        assert details and all(text in d for d in details), details

    return check


@kind("csv: epoch milliseconds in a seconds column")
def _(src: Sources, tmp: Path) -> Case:
    rows = src.query_rows()
    return _generic_csv(src, tmp, _set(6, epoch=rows[5]["epoch"] * 1000), mapping=EPOCH_MAP,
                        reason="implausible timestamp", check=_detail_has("milliseconds"))


@kind("csv: epoch microseconds in a seconds column")
def _(src: Sources, tmp: Path) -> Case:
    rows = src.query_rows()
    return _generic_csv(src, tmp, _set(6, epoch=rows[5]["epoch"] * 1_000_000), mapping=EPOCH_MAP,
                        reason="implausible timestamp", check=_detail_has("microseconds"))


@kind("csv: epoch milliseconds with ts_unit=ms")
def _(src: Sources, tmp: Path) -> Case:
    def edit(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            r["epoch"] = r["epoch"] * 1000

    # Same times as the clean twin in seconds, so the same action ids; but n_clicks/time stay, epoch moves
    # to attrs only when unmapped: here it is the mapped ts column, so the ids are equal.
    return _generic_csv(src, tmp, edit, mapping=EPOCH_MAP, options={"ts_unit": "ms"}, clean_options={})


@kind("csv: year 1900")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, time="1900-01-01T00:00:00Z"), reason="implausible timestamp")


@kind("csv: year 2100")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, time="2100-06-01T00:00:00Z"), reason="implausible timestamp")


@kind("csv: year 1900 inside a widened window")
def _(src: Sources, tmp: Path) -> Case:
    def check(ws: Any, summary: Any, baseline: dict[int, str]) -> None:
        assert summary.quarantined == 0 and summary.actions_valid == 30
        assert str(ws.con.execute("SELECT min(ts) FROM actions").fetchall()[0][0]) == "1900-01-01 00:00:00"

    case = _generic_csv(src, tmp, _set(6, time="1900-01-01T00:00:00Z"), drop={6}, check=check)
    case.options = {"min_ts": "1800-01-01"}
    return case


@kind("csv: text of tabs only")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, q="\t\t"), reason="empty text")


@kind("csv: text of zero-width spaces only")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, q="\u200b\u200b\ufeff"), reason="empty text")


@kind("csv: text of Unicode spaces only")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, q="\u00a0\u3000\u2028 \u2003"), reason="empty text")


@kind("csv: empty user")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, uid=""), reason="missing user")


@kind("csv: user of zero-width spaces only")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, uid="\u200b"), reason="missing user")


@kind("csv: empty timestamp")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, time=""), reason="missing timestamp")


@kind("csv: words as timestamp")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, time="yesterday"), reason="unparseable timestamp")


@kind("csv: invalid kind")
def _(src: Sources, tmp: Path) -> Case:
    return _generic_csv(src, tmp, _set(6, event="Not A Kind!"), reason="invalid kind")


def _csv_lines(src: Sources, tmp: Path, edit: Callable[[list[bytes]], None], **case: Any) -> Case:
    """The generic CSV as lines; ``edit`` works on bytes (line 1 is the header)."""
    clean = write_csv(tmp / "clean.csv", src.query_rows(), COLS)
    lines = clean.read_bytes().rstrip(b"\n").split(b"\n")
    edit(lines)
    path = tmp / "log.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return Case(path=path, format="csv", mapping=dict(GEN_MAP), clean=clean, **case)


@kind("csv: one row with an extra field")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[6] += b",extra"

    return _csv_lines(src, tmp, edit, drop={6}, quarantine=[("wrong column count", 7, None)])


@kind("csv: one row missing a field")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[6] = lines[6].rsplit(b",", 1)[0]

    return _csv_lines(src, tmp, edit, drop={6}, quarantine=[("wrong column count", 7, None)])


@kind("csv: invalid UTF-8 byte")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[6] = lines[6].replace(b",query,", b"\xff,query,", 1)

    return _csv_lines(src, tmp, edit, drop={6}, quarantine=[("invalid encoding", 7, None)])


@kind("csv: unterminated quote on the last row")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        uid, time, epoch, *_ = lines[30].split(b",")
        lines[30] = b",".join([uid, time, epoch, b'"unterminated', b"query", b"0"])

    return _csv_lines(src, tmp, edit, drop={30}, quarantine=[("malformed quoting", 31, None)])


@kind("csv: repeated rows")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines.extend(lines[1:4])

    return _csv_lines(src, tmp, edit, duplicates=3)


@kind("csv: UTF-8 byte order mark")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[0] = b"\xef\xbb\xbf" + lines[0]

    return _csv_lines(src, tmp, edit)


@kind("csv: CRLF line ends")
def _(src: Sources, tmp: Path) -> Case:
    case = _csv_lines(src, tmp, lambda lines: None)
    case.path.write_bytes(case.path.read_bytes().replace(b"\n", b"\r\n"))
    return case


MAX_TEXT = 2000  # the documented default cap on action text


@kind("csv: 100,000-character text")
def _(src: Sources, tmp: Path) -> Case:
    long = ("lorem ipsum " * 10_000)[:100_000]

    def check(ws: Any, summary: Any, baseline: dict[int, str]) -> None:
        rows = ws.con.execute("SELECT text, attrs->>'text_truncated_from' FROM actions "
                              "WHERE length(text) >= 1000").fetchall()
        assert len(rows) == 1 and len(rows[0][0]) == MAX_TEXT and rows[0][1] == "100000", rows
        assert summary.actions_valid == 30

    return _generic_csv(src, tmp, _set(6, q=long), drop={6}, check=check)


@kind("tsv: NaN epoch")
def _(src: Sources, tmp: Path) -> Case:
    rows = src.query_rows()
    clean = write_csv(tmp / "clean.tsv", rows, COLS, sep="\t")
    rows[5]["epoch"] = "nan"
    path = write_csv(tmp / "log.tsv", rows, COLS, sep="\t")
    return Case(path=path, format="tsv", mapping=dict(EPOCH_MAP), clean=clean, drop={6},
                quarantine=[("unparseable timestamp", 7, 6)])


# ---------------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------------
def _jsonl(src: Sources, tmp: Path, edit: Callable[[list[bytes]], None], **case: Any) -> Case:
    rows = src.query_rows()
    clean = write_lines(tmp / "clean.jsonl", [json.dumps(r).encode() for r in rows])
    lines = clean.read_bytes().rstrip(b"\n").split(b"\n")
    edit(lines)
    path = write_lines(tmp / "log.jsonl", lines)
    return Case(path=path, format="jsonl", mapping=dict(case.pop("mapping", GEN_MAP)),
                clean=None if "error" in case else clean, row_offset=1, **case)


def _json_edit(k: int, fn: Callable[[dict[str, Any]], Any]) -> Callable[[list[bytes]], None]:
    def edit(lines: list[bytes]) -> None:
        record = json.loads(lines[k - 1])
        out = fn(record)
        lines[k - 1] = out if isinstance(out, bytes) else json.dumps(record).encode()

    return edit


@kind("jsonl: the first record lacks the text key")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(1, lambda r: r.pop("q")), drop={1}, quarantine=[("empty text", 1, 1)])


@kind("jsonl: the first record lacks the user key")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(1, lambda r: r.pop("uid")), drop={1}, quarantine=[("missing user", 1, 1)])


@kind("jsonl: a mapped key that no record has")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, lambda lines: None, mapping={**GEN_MAP, "text": "query_text"},
                  error=r"query_text")


@kind("jsonl: 100,000-deep nesting")
def _(src: Sources, tmp: Path) -> Case:
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    return _jsonl(src, tmp, _json_edit(6, lambda r: deep), drop={6}, quarantine=[("invalid json", 6, 6)])


@kind("jsonl: an array instead of an object")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: json.dumps(list(r.values())).encode()), drop={6},
                  quarantine=[("invalid json", 6, 6)])


@kind("jsonl: a truncated record")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: json.dumps(r).encode()[:-7]), drop={6},
                  quarantine=[("invalid json", 6, 6)])


@kind("jsonl: text is a list")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: r.update(q=["a", "b"])), drop={6},
                  quarantine=[("wrong value type", 6, 6)])


@kind("jsonl: text is an object")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: r.update(q={"x": 1})), drop={6},
                  quarantine=[("wrong value type", 6, 6)])


@kind("jsonl: timestamp is true")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: r.update(time=True)), drop={6},
                  quarantine=[("unparseable timestamp", 6, 6)])


@kind("jsonl: timestamp is NaN")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: json.dumps({**r, "time": float("nan")}).encode()), drop={6},
                  quarantine=[("unparseable timestamp", 6, 6)])


@kind("jsonl: timestamp 1e400")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: json.dumps(r).encode().replace(
        json.dumps(r["time"]).encode(), b"1e400")), drop={6}, quarantine=[("unparseable timestamp", 6, 6)])


@kind("jsonl: epoch milliseconds as a number")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: r.update(time=r["epoch"] * 1000)), drop={6},
                  quarantine=[("implausible timestamp", 6, 6)], check=_detail_has("milliseconds"))


@kind("jsonl: invalid UTF-8 byte")
def _(src: Sources, tmp: Path) -> Case:
    return _jsonl(src, tmp, _json_edit(6, lambda r: json.dumps(r).encode().replace(b'"q": "', b'"q": "\xff')),
                  drop={6}, quarantine=[("invalid encoding", 6, 6)])


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------
def _parquet(src: Sources, tmp: Path, edit: Callable[[list[dict[str, Any]]], Any] | None = None,
             table: Callable[[list[dict[str, Any]]], Any] | None = None, **case: Any) -> Case:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = src.query_rows()
    clean = tmp / "clean.parquet"
    pq.write_table(pa.Table.from_pylist(rows), clean)
    bad = [dict(r) for r in rows]
    if edit is not None:
        edit(bad)
    path = tmp / "log.parquet"
    pq.write_table(table(bad) if table is not None else pa.Table.from_pylist(bad), path)
    return Case(path=path, format=case.pop("format", "parquet"), mapping=dict(case.pop("mapping", GEN_MAP)),
                clean=None if "error" in case else clean, **case)


@kind("parquet: null user")
def _(src: Sources, tmp: Path) -> Case:
    return _parquet(src, tmp, _set(6, uid=None), drop={6}, quarantine=[("missing user", None, 6)])


@kind("parquet: year 2100")
def _(src: Sources, tmp: Path) -> Case:
    return _parquet(src, tmp, _set(6, time="2100-01-01T00:00:00Z"), drop={6},
                    quarantine=[("implausible timestamp", None, 6)])


@kind("parquet: a list column mapped to text")
def _(src: Sources, tmp: Path) -> Case:
    def edit(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            r["q"] = r["q"].split()

    return _parquet(src, tmp, edit, error=r"(?i)q.*(list|scalar)")


@kind("parquet: a struct column mapped to text")
def _(src: Sources, tmp: Path) -> Case:
    def edit(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            r["q"] = {"text": r["q"], "n": 1}

    return _parquet(src, tmp, edit, error=r"(?i)q.*(struct|scalar)")


@kind("parquet: native timestamp column")
def _(src: Sources, tmp: Path) -> Case:
    import datetime as dt

    import pyarrow as pa

    def table(rows: list[dict[str, Any]]) -> Any:
        for r in rows:
            r["time"] = dt.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%SZ")
        return pa.Table.from_pylist(rows)

    def check(ws: Any, summary: Any, baseline: dict[int, str]) -> None:
        assert summary.actions_valid == 30 and summary.quarantined == 0

    return _parquet(src, tmp, table=table, check=check)


@kind("parquet: a CSV file named .parquet (auto)")
def _(src: Sources, tmp: Path) -> Case:
    path = write_csv(tmp / "log.parquet", src.query_rows(), COLS)
    return Case(path=path, format="auto", error=r"(?i)parquet")


@kind("parquet: epoch milliseconds with ts_unit=ms")
def _(src: Sources, tmp: Path) -> Case:
    def edit(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            r["epoch"] = r["epoch"] * 1000

    return _parquet(src, tmp, edit, mapping=EPOCH_MAP, options={"ts_unit": "ms"}, clean_options={})


# ---------------------------------------------------------------------------------------------
# AOL (per-user text files and the original release)
# ---------------------------------------------------------------------------------------------
def _aol(src: Sources, tmp: Path, edit: Callable[[list[list[bytes]]], None] | None, *, record: int = 4,
         reasons: tuple[str, str] | None = None, **case: Any) -> Case:
    """The first user's first 14 records as ``<AnonID>.txt``; ``edit`` corrupts record ``record``.

    Row keys count non-blank lines from 1, so record r's lines are a contiguous run of keys.
    ``reasons`` = (verdict of the query line, verdict of each of its click lines).
    """
    user, records = src.aol_records()
    clean_dir, bad_dir = tmp / "clean", tmp / "log"
    clean_dir.mkdir()
    bad_dir.mkdir()
    clean = clean_dir / f"{user}.txt"
    clean.write_bytes(b"\n\n".join(b"\n".join(r) for r in records) + b"\n")
    bad = [list(r) for r in records]
    if edit is not None:
        edit(bad)
    path = bad_dir / f"{user}.txt"
    path.write_bytes(b"\n\n".join(b"\n".join(r) for r in bad) + b"\n")
    if reasons is not None:
        first = 1 + sum(len(r) for r in records[: record - 1])
        lines = [1 + sum(len(r) + 1 for r in records[: record - 1]) + i for i in range(len(records[record - 1]))]
        case.setdefault("drop", set(range(first, first + len(records[record - 1]))))
        case.setdefault("quarantine", [(reasons[0] if i == 0 else reasons[1], ln, None) for i, ln in enumerate(lines)])
    return Case(path=path, format="aol", clean=clean, row_offset=1, **case)


def _aol_head(record: int, fn: Callable[[bytes, bytes], bytes]) -> Callable[[list[list[bytes]]], None]:
    def edit(records: list[list[bytes]]) -> None:
        query, when = records[record - 1][0].split(b"\t")
        records[record - 1][0] = fn(query, when)

    return edit


def _aol_record_with_clicks(src: Sources) -> int:
    _, records = src.aol_records()
    return next(i for i, r in enumerate(records, start=1) if i >= 3 and len(r) >= 3)


@kind("aol: a query line with three fields")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)
    return _aol(src, tmp, _aol_head(r, lambda q, w: q + b"\t" + w + b"\textra"), record=r,
                reasons=("wrong column count", "orphan click"))


@kind("aol: a time that is not a time")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)
    return _aol(src, tmp, _aol_head(r, lambda q, w: q + b"\tsoon"), record=r,
                reasons=("unparseable timestamp", "orphan click"))


@kind("aol: the year 1900")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)
    return _aol(src, tmp, _aol_head(r, lambda q, w: q + b"\t1900" + w[4:]), record=r,
                reasons=("implausible timestamp", "implausible timestamp"))


@kind("aol: invalid UTF-8 in a query")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)
    return _aol(src, tmp, _aol_head(r, lambda q, w: q + b"\xff\xfe\t" + w), record=r,
                reasons=("invalid encoding", "orphan click"))


@kind("aol: an empty query")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)
    return _aol(src, tmp, _aol_head(r, lambda q, w: b"\xe2\x80\x8b\t" + w), record=r,
                reasons=("empty text", "orphan click"))


@kind("aol: a 10 MB query")
def _(src: Sources, tmp: Path) -> Case:
    r = _aol_record_with_clicks(src)

    def check(ws: Any, summary: Any, baseline: dict[int, str]) -> None:
        longest = ws.con.execute("SELECT max(length(text)), max(length(CAST(attrs AS VARCHAR))) FROM actions"
                                 ).fetchall()[0]
        assert longest[0] == MAX_TEXT and longest[1] < 3 * MAX_TEXT, longest
        assert summary.quarantined == 0 and summary.actions_valid == sum(len(x) for x in src.aol_records()[1])

    first = 1 + sum(len(x) for x in src.aol_records()[1][: r - 1])
    n = len(src.aol_records()[1][r - 1])
    return _aol(src, tmp, _aol_head(r, lambda q, w: b"x" * 10_000_000 + b"\t" + w), record=r,
                drop=set(range(first, first + n)), check=check)


@kind("aol: a lost blank line between records")
def _(src: Sources, tmp: Path) -> Case:
    def edit(records: list[list[bytes]]) -> None:
        records[3] = records[3] + records.pop(4)

    return _aol(src, tmp, edit)


@kind("aol: a truncated .tar.gz")
def _(src: Sources, tmp: Path) -> Case:
    data = (src.root / "aol_top1000_users" / "user_search_logs.tar.gz").read_bytes()
    path = tmp / "user_search_logs.tar.gz"
    path.write_bytes(data[: len(data) // 3])
    return Case(path=path, format="aol", error=r"(?i)(truncated|corrupt|not a readable)")


def _original_release(src: Sources) -> bytes:
    user, records = src.aol_records()
    out = [b"AnonID\tQuery\tQueryTime\tItemRank\tClickURL"]
    for rec in records:
        query, when = rec[0].split(b"\t")
        out += [b"\t".join([user.encode(), query, when, str(i).encode(), url]) for i, url in enumerate(rec[1:], 1)]
        if len(rec) == 1:
            out.append(b"\t".join([user.encode(), query, when]))
    return b"\n".join(out) + b"\n"


@kind("aol: a truncated original-release .gz")
def _(src: Sources, tmp: Path) -> Case:
    data = gzip.compress(_original_release(src) * 50)
    path = tmp / "user-ct-test-collection-01.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    return Case(path=path, format="aol", error=r"(?i)(truncated|corrupt)")


@kind("aol: a folder with no files")
def _(src: Sources, tmp: Path) -> Case:
    (tmp / "empty").mkdir()
    return Case(path=tmp / "empty", format="aol", error=r"(?i)no files")


# ---------------------------------------------------------------------------------------------
# MerRec
# ---------------------------------------------------------------------------------------------
MERREC = ("merrec_head_sample", "merrec_head.csv")


def _merrec(src: Sources, tmp: Path, edit: Callable[[list[bytes]], None], **case: Any) -> Case:
    lines = src.lines(*MERREC, 40)
    clean = write_lines(tmp / "clean.csv", lines)
    bad = list(lines)
    edit(bad)
    return Case(path=write_lines(tmp / "log.csv", bad), format="merrec", clean=clean, **case)


def _merrec_field(k: int, column: str, value: bytes) -> Callable[[list[bytes]], None]:
    import csv

    def edit(lines: list[bytes]) -> None:
        header = lines[0].decode().split(",")
        row = next(csv.reader([lines[k].decode()]))
        row[header.index(column)] = value.decode()
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(row)
        lines[k] = out.getvalue().encode()

    return edit


@kind("merrec: unknown event")
def _(src: Sources, tmp: Path) -> Case:
    return _merrec(src, tmp, _merrec_field(6, "event_id", b"item_teleport"), drop={6},
                   quarantine=[("unknown event", 7, 6)])


@kind("merrec: unparseable stime")
def _(src: Sources, tmp: Path) -> Case:
    return _merrec(src, tmp, _merrec_field(6, "stime", b"2023-13-45 99:99:99"), drop={6},
                   quarantine=[("unparseable timestamp", 7, 6)])


@kind("merrec: stime in 2100")
def _(src: Sources, tmp: Path) -> Case:
    return _merrec(src, tmp, _merrec_field(6, "stime", b"2100-05-04 19:21:12"), drop={6},
                   quarantine=[("implausible timestamp", 7, 6)])


@kind("merrec: an extra field")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[6] += b",extra"

    return _merrec(src, tmp, edit, drop={6}, quarantine=[("wrong column count", 7, None)])


@kind("merrec: empty item name")
def _(src: Sources, tmp: Path) -> Case:
    return _merrec(src, tmp, _merrec_field(6, "name", b""), drop={6}, quarantine=[("empty text", 7, 6)])


@kind("merrec: missing user")
def _(src: Sources, tmp: Path) -> Case:
    return _merrec(src, tmp, _merrec_field(6, "user_id", b""), drop={6}, quarantine=[("missing user", 7, 6)])


# ---------------------------------------------------------------------------------------------
# Instacart (sample layout: one row per ordered product)
# ---------------------------------------------------------------------------------------------
INSTACART = "instacart_593_users"
IC_ROWS = 3000


def _instacart(src: Sources, tmp: Path, edit: Callable[[list[list[str]]], None] | None = None,
               raw_edit: Callable[[list[bytes]], None] | None = None, **case: Any) -> Case:
    lines = src.lines(INSTACART, "orders_products_sample.csv", IC_ROWS)
    folders = []
    for name in ("clean", "log"):
        d = tmp / name
        d.mkdir()
        for f in ("products.csv", "aisles.csv", "departments.csv"):
            os.symlink(src.file(INSTACART, f), d / f)
        folders.append(d)
    write_lines(folders[0] / "orders_products_sample.csv", lines)
    bad = list(lines)
    if edit is not None:
        rows = [b.decode().split(",") for b in bad]
        edit(rows)
        bad = [",".join(r).encode() for r in rows]
    if raw_edit is not None:
        raw_edit(bad)
    write_lines(folders[1] / "orders_products_sample.csv", bad)
    return Case(path=folders[1], format="instacart", clean=folders[0], **case)


IC_COLS = ["row_index", "order_id", "user_id", "order_number", "order_dow", "order_hour_of_day",
           "days_since_prior_order", "product_id", "add_to_cart_order", "reordered"]


def _ic_orders(src: Sources) -> list[tuple[str, str, list[int]]]:
    """(user, order_id, data rows) of the slice, in file order."""
    lines = src.lines(INSTACART, "orders_products_sample.csv", IC_ROWS)
    out: dict[tuple[str, str], list[int]] = {}
    for k, line in enumerate(lines[1:], start=1):
        f = line.decode().split(",")
        out.setdefault((f[2], f[1]), []).append(k)
    return [(u, o, rows) for (u, o), rows in out.items()]


def _ic_last_order(src: Sources, min_rows: int = 3) -> list[int]:
    """Rows of a user's last order in the slice (whose user has a later user after it)."""
    orders = _ic_orders(src)
    for (u, _, rows), (u2, _, _) in zip(orders, orders[1:], strict=False):
        if u != u2 and len(rows) >= min_rows:
            return rows
    raise AssertionError("no suitable order")


def _ic_set(rows: list[int], column: str, value: str) -> Callable[[list[list[str]]], None]:
    def edit(data: list[list[str]]) -> None:
        for k in rows:
            data[k][IC_COLS.index(column)] = value

    return edit


@kind("instacart: one row with an extra field")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[10] += b",extra"

    return _instacart(src, tmp, raw_edit=edit, drop={10}, quarantine=[("wrong column count", 11, None)])


@kind("instacart: one row disagrees on its order's hour")
def _(src: Sources, tmp: Path) -> Case:
    rows = next(r for _, _, r in _ic_orders(src) if len(r) >= 5)
    k = rows[2]
    return _instacart(src, tmp, _ic_set([k], "order_hour_of_day", "23"), drop={k},
                      quarantine=[("inconsistent order", k + 1, k)])


@kind("instacart: one row disagrees on its order's gap")
def _(src: Sources, tmp: Path) -> Case:
    orders = _ic_orders(src)
    rows = next(r for _, _, r in orders[1:] if len(r) >= 5)
    k = rows[-1]
    return _instacart(src, tmp, _ic_set([k], "days_since_prior_order", "3.0"), drop={k},
                      quarantine=[("inconsistent order", k + 1, k)])


@kind("instacart: unknown product")
def _(src: Sources, tmp: Path) -> Case:
    return _instacart(src, tmp, _ic_set([7], "product_id", "99999999"), drop={7},
                      quarantine=[("unknown item", 8, 7)])


@kind("instacart: a cart position that is not a number")
def _(src: Sources, tmp: Path) -> Case:
    return _instacart(src, tmp, _ic_set([7], "add_to_cart_order", "first"), drop={7},
                      quarantine=[("unparseable timestamp", 8, 7)])


@kind("instacart: a cart position of 1e20")
def _(src: Sources, tmp: Path) -> Case:
    return _instacart(src, tmp, _ic_set([7], "add_to_cart_order", "1e20"), drop={7},
                      quarantine=[("unparseable timestamp", 8, 7)])


@kind("instacart: an order gap of 1e20 days")
def _(src: Sources, tmp: Path) -> Case:
    rows = _ic_last_order(src)
    return _instacart(src, tmp, _ic_set(rows, "days_since_prior_order", "1e20"), drop=set(rows),
                      quarantine=[("unparseable timestamp", k + 1, k) for k in rows])


@kind("instacart: an hour of 99")
def _(src: Sources, tmp: Path) -> Case:
    rows = _ic_last_order(src)
    return _instacart(src, tmp, _ic_set(rows, "order_hour_of_day", "99"), drop=set(rows),
                      quarantine=[("unparseable timestamp", k + 1, k) for k in rows])


@kind("instacart: a repeated row")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines.append(lines[5])

    return _instacart(src, tmp, raw_edit=edit, duplicates=1)


@kind("instacart: no products.csv")
def _(src: Sources, tmp: Path) -> Case:
    case = _instacart(src, tmp)
    (case.path / "products.csv").unlink()
    return Case(path=case.path, format="instacart", error=r"products\.csv")


# ---------------------------------------------------------------------------------------------
# MovieLens (RecBole atomic files)
# ---------------------------------------------------------------------------------------------
ML = "movielens_100k"


def _movielens(src: Sources, tmp: Path, edit: Callable[[list[list[str]]], None] | None = None,
               raw_edit: Callable[[list[bytes]], None] | None = None, **case: Any) -> Case:
    lines = src.lines(ML, "ml-100k.inter", 300)
    folders = []
    for name in ("clean", "log"):
        d = tmp / name
        d.mkdir()
        os.symlink(src.file(ML, "ml-100k.item"), d / "ml-100k.item")
        folders.append(d)
    write_lines(folders[0] / "ml-100k.inter", lines)
    bad = list(lines)
    if edit is not None:
        rows = [b.decode().split("\t") for b in bad]
        edit(rows)
        bad = ["\t".join(r).encode() for r in rows]
    if raw_edit is not None:
        raw_edit(bad)
    write_lines(folders[1] / "ml-100k.inter", bad)
    return Case(path=folders[1], format="movielens", clean=folders[0], **case)


def _ml_set(k: int, col: int, value: str) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        rows[k][col] = value

    return edit


@kind("movielens: NaN timestamp")
def _(src: Sources, tmp: Path) -> Case:
    return _movielens(src, tmp, _ml_set(6, 3, "NaN"), drop={6}, quarantine=[("unparseable timestamp", 7, 6)])


@kind("movielens: timestamp in milliseconds")
def _(src: Sources, tmp: Path) -> Case:
    def edit(rows: list[list[str]]) -> None:
        rows[6][3] = rows[6][3] + "000"

    return _movielens(src, tmp, edit, drop={6}, quarantine=[("implausible timestamp", 7, 6)],
                      check=_detail_has("milliseconds"))


@kind("movielens: rating that is not a number")
def _(src: Sources, tmp: Path) -> Case:
    return _movielens(src, tmp, _ml_set(6, 2, "five"), drop={6}, quarantine=[("invalid value", 7, 6)])


@kind("movielens: unknown movie")
def _(src: Sources, tmp: Path) -> Case:
    return _movielens(src, tmp, _ml_set(6, 1, "999999"), drop={6}, quarantine=[("unknown item", 7, 6)])


@kind("movielens: an extra field")
def _(src: Sources, tmp: Path) -> Case:
    def edit(lines: list[bytes]) -> None:
        lines[6] += b"\t5"

    return _movielens(src, tmp, raw_edit=edit, drop={6}, quarantine=[("wrong column count", 7, None)])


@kind("movielens: no .item file")
def _(src: Sources, tmp: Path) -> Case:
    case = _movielens(src, tmp)
    (case.path / "ml-100k.item").unlink()
    return Case(path=case.path, format="movielens", error=r"\.item")


# ---------------------------------------------------------------------------------------------
# Inputs that are not files of data
# ---------------------------------------------------------------------------------------------
@kind("input: a FIFO")
def _(src: Sources, tmp: Path) -> Case:
    path = tmp / "log.csv"
    os.mkfifo(path)
    return Case(path=path, format="csv", mapping=dict(GEN_MAP), error=r"(?i)not a regular file")


@kind("input: an empty file")
def _(src: Sources, tmp: Path) -> Case:
    path = tmp / "log.csv"
    path.write_bytes(b"")
    return Case(path=path, format="csv", mapping=dict(GEN_MAP), error=r"(?i)empty")


@kind("input: a folder given to --format csv")
def _(src: Sources, tmp: Path) -> Case:
    (tmp / "d").mkdir()
    (tmp / "d" / "x.csv").write_text("uid,time,q\n")
    return Case(path=tmp / "d", format="csv", mapping=dict(GEN_MAP), error=r"(?i)folder")


@kind("input: random bytes (auto)")
def _(src: Sources, tmp: Path) -> Case:
    path = tmp / "log.bin"
    path.write_bytes(bytes(range(256)) * 64)
    return Case(path=path, format="auto", error=r"(?i)cannot tell the format")


@kind("input: a quote and markup in the file name")
def _(src: Sources, tmp: Path) -> Case:
    rows = src.query_rows()
    clean = write_csv(tmp / "clean.csv", rows, COLS)
    (tmp / "it's [").mkdir()
    path = write_csv(tmp / "it's [" / "]x[bold].csv", rows, COLS)  # the path reads "it's [/]x[bold].csv"
    return Case(path=path, format="csv", mapping=dict(GEN_MAP), clean=clean)


# -- running a kind --------------------------------------------------------------------------
def _ingest(case: Case, ws: Path, path: Path, options: dict[str, Any]) -> Any:
    from personaminer import ingest

    return ingest(path, ws, format=case.format, mapping=case.mapping or None, progress=False, **options)


def _rows(ws_path: Path, row_offset: int) -> tuple[dict[int, str], set[str]]:
    from personaminer import Workspace

    with Workspace(ws_path) as ws:
        rows = ws.con.execute("SELECT action_id, seq FROM actions").fetchall()
    return {(seq & MASK) + row_offset: aid for aid, seq in rows}, {aid for aid, _ in rows}


def run_kind(name: str, src: Sources, tmp: Path) -> Outcome:
    """Build kind ``name`` under ``tmp``, ingest it, and say whether the result is the correct one."""
    from personaminer import Workspace
    from personaminer.datasets.base import InputError

    tmp.mkdir(parents=True, exist_ok=True)
    case = KINDS[name](src, tmp)
    baseline: dict[int, str] = {}
    if case.clean is not None:
        try:
            _ingest(case, tmp / "ws_clean", case.clean,
                    case.options if case.clean_options is None else case.clean_options)
        except _Hang:
            raise
        except BaseException as exc:  # noqa: BLE001 - the clean twin must ingest; say why it did not
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return Outcome(name, "traceback", f"the clean twin failed: {last[:180]}")
        baseline, _ = _rows(tmp / "ws_clean", case.row_offset)
    try:
        summary = _ingest(case, tmp / "ws", case.path, case.options)
    except InputError as exc:
        if case.error is None:
            return Outcome(name, "refused", str(exc).splitlines()[0][:200])
        import re

        if not re.search(case.error, str(exc)):
            return Outcome(name, "wrong", f"refused with another message: {str(exc)[:200]}")
        with Workspace(tmp / "ws") as ws:
            stored = ws.con.execute("SELECT count(*) FROM actions").fetchall()[0][0]
        return Outcome(name, "correct" if stored == 0 else "bad stored", f"refused: {str(exc)[:160]}")
    except _Hang:
        raise
    except BaseException as exc:  # noqa: BLE001 - a traceback is the finding
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Outcome(name, "traceback", last[:200])
    if case.error is not None:
        return Outcome(name, "bad stored", f"accepted ({summary.actions_valid} actions) instead of refusing")
    _, actual = _rows(tmp / "ws", case.row_offset)
    expected = {aid for row, aid in baseline.items() if row not in case.drop}
    with Workspace(tmp / "ws") as ws:
        quarantine = sorted(ws.con.execute("SELECT reason, line, row_number FROM quarantine").fetchall(),
                            key=repr)
        try:
            if actual - expected - _allowed_new(case, ws, baseline):
                return Outcome(name, "bad stored", f"{len(actual - expected)} unexpected action(s)")
            if expected - actual:
                return Outcome(name, "good lost", f"{len(expected - actual)} of {len(expected)} good actions missing")
            if quarantine != sorted(case.quarantine, key=repr):
                return Outcome(name, "wrong quarantine", f"got {quarantine[:4]}, expected {case.quarantine[:4]}")
            identity = summary.rows_read == summary.actions_valid + summary.quarantined
            if not identity or summary.duplicates_in_input != case.duplicates:
                return Outcome(name, "wrong", f"counts: read {summary.rows_read}, valid {summary.actions_valid}, "
                                              f"quarantined {summary.quarantined}, dup {summary.duplicates_in_input}")
            if case.check is not None:
                case.check(ws, summary, baseline)
        except AssertionError as exc:
            return Outcome(name, "wrong", f"check failed: {str(exc)[:200]}")
    return Outcome(name, "correct")


def _allowed_new(case: Case, ws: Any, baseline: dict[int, str]) -> set[str]:
    """Ids a kind may add beyond the clean twin: the changed rows of kinds whose rows stay valid."""
    if case.check is None or not case.drop or case.quarantine:
        return set()
    base = set(baseline.values())
    return {r[0] for r in ws.con.execute("SELECT action_id FROM actions").fetchall()} - base


class _Hang(BaseException):
    pass


def run_all(src: Sources, tmp: Path, names: list[str] | None = None, timeout: int = 60) -> list[Outcome]:
    """Every kind in turn; one that runs past ``timeout`` seconds is reported as ``hangs``."""
    import signal

    def alarm(signum: int, frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    out = []
    try:
        for i, name in enumerate(names or list(KINDS)):
            folder = tmp / f"k{i:03d}"
            if folder.exists():
                shutil.rmtree(folder)
            signal.alarm(timeout)
            try:
                out.append(run_kind(name, src, folder))
            except _Hang:
                out.append(Outcome(name, "hangs", f"no result after {timeout} s"))
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return out
