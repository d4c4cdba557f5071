"""Generic CSV / JSONL / Parquet with a column mapping, built from real AOL queries."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from personaminer import Workspace, ingest
from personaminer.datasets import InputError


def _real_rows(aol_user_file: Path, n: int = 40) -> list[dict[str, str]]:
    rows = []
    for rec in aol_user_file.read_text().split("\n\n"):
        parts = [x for x in rec.split("\n") if x]
        if parts:
            query, when = parts[0].split("\t")
            rows.append({"uid": aol_user_file.stem, "time": when.replace(" ", "T") + "Z", "q": query,
                         "event": "query", "n_clicks": str(len(parts) - 1)})
    return rows[:n]


def test_csv_jsonl_parquet_agree(aol_user_file: Path, tmp_path: Path) -> None:
    rows = _real_rows(aol_user_file)
    header = list(rows[0])
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(",".join(header) + "\n" + "\n".join(
        ",".join('"' + r[h].replace('"', '""') + '"' for h in header) for r in rows) + "\n")
    jsonl_path = tmp_path / "log.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "log.parquet")
    mapping = {"user_id": "uid", "ts": "time", "text": "q", "kind": "event"}
    texts = []
    for path in (csv_path, jsonl_path, tmp_path / "log.parquet"):
        s = ingest(path, tmp_path / f"ws_{path.suffix[1:]}", mapping=mapping, progress=False)
        assert s.actions_valid == len(rows) and s.quarantined == 0, path
        with Workspace(tmp_path / f"ws_{path.suffix[1:]}") as ws:
            actions = ws.user_actions(aol_user_file.stem)
        texts.append([(a.ts, a.kind, a.text, a.attrs["n_clicks"]) for a in actions])
    assert texts[0] == texts[1] == texts[2]


def test_jsonl_bad_lines(aol_user_file: Path, tmp_path: Path) -> None:
    rows = _real_rows(aol_user_file, 10)
    lines = [json.dumps(r).encode() for r in rows]
    lines[2] = lines[2][:-5]  # truncated JSON
    lines[3] = json.dumps({**rows[3], "time": "yesterday"}).encode()
    lines[4] = json.dumps({**rows[4], "q": "  "}).encode()
    lines[5] = lines[5].replace(b'"q": "', b'"q": "\xff')
    lines[6] = json.dumps({**rows[6], "uid": None}).encode()
    (tmp_path / "log.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    s = ingest(tmp_path / "log.jsonl", tmp_path / "ws", progress=False,
               mapping={"user_id": "uid", "ts": "time", "text": "q"})
    assert s.quarantine_reasons == {"invalid json": 1, "unparseable timestamp": 1, "empty text": 1,
                                    "invalid encoding": 1, "missing user": 1}
    assert s.actions_valid == 5
    with Workspace(tmp_path / "ws") as ws:
        lines_q = sorted(r[0] for r in ws.con.execute("SELECT line FROM quarantine").fetchall())
    assert lines_q == [3, 4, 5, 6, 7]


def test_timestamps_iso_offset_epoch_and_format(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "u,t,x\n"
        "1,2006-03-01T10:00:00+02:00,a\n"  # offset -> UTC 08:00
        "1,1141207200,b\n"  # epoch seconds = 2006-03-01 10:00 UTC
        "1,2006-03-01 11:00:00,c\n")
    s = ingest(tmp_path / "t.csv", tmp_path / "ws", mapping={"user_id": "u", "ts": "t", "text": "x"}, progress=False)
    assert s.actions_valid == 3
    with Workspace(tmp_path / "ws") as ws:
        got = [(str(a.ts), a.text) for a in ws.user_actions("1")]
    assert got == [("2006-03-01 08:00:00", "a"), ("2006-03-01 10:00:00", "b"), ("2006-03-01 11:00:00", "c")]
    (tmp_path / "f.csv").write_text("u,t,x\n1,01/03/2006 10h00,a\n")
    s = ingest(tmp_path / "f.csv", tmp_path / "ws2", mapping={"user_id": "u", "ts": "t", "text": "x"},
               ts_format="%d/%m/%Y %Hh%M", kind="view", progress=False)
    assert s.actions_by_kind == {"view": 1}


@pytest.mark.parametrize(("mapping", "message"), [
    ({"user_id": "u", "ts": "t"}, "missing text"),
    ({"user_id": "u", "ts": "t", "text": "nope"}, "not in t.csv: nope"),
    ({"user_id": "u", "ts": "t", "text": "x", "color": "x"}, "unknown field"),
    ({}, "needs a column mapping"),
])
def test_bad_mapping_is_one_clear_error(tmp_path: Path, mapping: dict[str, str], message: str) -> None:
    (tmp_path / "t.csv").write_text("u,t,x\n1,2006-03-01 10:00:00,a\n")
    with pytest.raises(InputError, match=message):
        ingest(tmp_path / "t.csv", tmp_path / "ws", format="csv", mapping=mapping, progress=False)
