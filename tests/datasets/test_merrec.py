"""MerRec adapter on the real sample: counts per event, text, and a corrupted copy."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from personaminer import Workspace, ingest
from personaminer.ingest import StrictModeError


def test_counts_match_readme(merrec_csv: Path, tmp_path: Path) -> None:
    s = ingest(merrec_csv, tmp_path / "ws", progress=False)
    assert s.format == "merrec"
    assert s.actions_by_kind == {"view": 1215, "like": 14, "offer": 2, "checkout": 1, "purchase": 1}
    assert s.users == 7 and s.quarantined == 0
    with Workspace(tmp_path / "ws") as ws:
        per_user = dict(ws.con.execute("SELECT user_id, count(*) FROM actions GROUP BY 1").fetchall())
        assert per_user == {"45": 1, "50": 1, "56": 2, "79": 1, "211": 8, "212": 2, "213": 1218}
        first = ws.user_actions("45")[0]
    assert first.text == "Kaleidos Comet Catcher Highlighter | Beauty > Makeup > Face | brand: Indie"
    assert first.item_id == "238357102" and first.attrs["price"] == "55.0"
    assert first.attrs["category"] == "Beauty > Makeup > Face"


def test_parquet_gives_the_same_actions(merrec_csv: Path, tmp_path: Path) -> None:
    table = pacsv.read_csv(merrec_csv)
    pq.write_table(table, tmp_path / "merrec.parquet")
    a = ingest(merrec_csv, tmp_path / "a", progress=False)
    b = ingest(tmp_path / "merrec.parquet", tmp_path / "b", progress=False)
    assert b.format == "merrec"
    assert a.actions_by_kind == b.actions_by_kind
    with Workspace(tmp_path / "a") as wa, Workspace(tmp_path / "b") as wb:
        assert [x.text for x in wa.user_actions("211")] == [x.text for x in wb.user_actions("211")]


def _corrupt(src: Path, dst: Path) -> None:
    lines = src.read_bytes().split(b"\n")
    lines[5] = lines[5][:60]  # truncated line
    f = lines[6].split(b",")
    f[1] = b"2023-13-45 99:00:00"  # bad timestamp
    lines[6] = b",".join(f)
    lines[7] = lines[7][:80] + b"\xff\xfe" + lines[7][80:]  # invalid UTF-8
    f = lines[8].split(b",")
    f[8] = b""  # empty item name
    lines[8] = b",".join(f)
    lines[9] = lines[9] + b",extra"  # an extra column
    dst.write_bytes(b"\n".join(lines))


def test_corrupted_copy(merrec_csv: Path, tmp_path: Path) -> None:
    bad = tmp_path / "merrec_bad.csv"
    _corrupt(merrec_csv, bad)
    s = ingest(bad, tmp_path / "ws", progress=False)
    assert s.quarantine_reasons == {"wrong column count": 2, "invalid encoding": 1,
                                    "unparseable timestamp": 1, "empty text": 1}
    assert s.actions_valid == 1233 - 5
    with Workspace(tmp_path / "ws") as ws:
        rows = ws.con.execute("SELECT line, row_number, reason, raw FROM quarantine").fetchall()
    structural = sorted(line for line, _, reason, _ in rows if reason in ("wrong column count", "invalid encoding"))
    assert structural == [6, 8, 10]  # physical lines (header = line 1)
    assert all(raw for *_, raw in rows)
    assert all(line is not None or row is not None for line, row, *_ in rows)
    with pytest.raises(StrictModeError):
        ingest(bad, tmp_path / "strict", strict=True, progress=False)
