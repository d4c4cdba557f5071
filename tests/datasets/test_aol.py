"""AOL adapter on the real shared data: counts, structure, corruption and the original TSV."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from personaminer import Workspace, ingest
from personaminer.datasets.aol import site_name


def test_site_name() -> None:
    assert site_name("http://www.nytimes.com/") == "nytimes.com"
    assert site_name("https://maps.google.com/x?q=1") == "maps.google.com"
    assert site_name("www.example.org") == "example.org"


@pytest.mark.slow
def test_full_archive_counts_match_readme(aol_tar: Path, tmp_path: Path) -> None:
    summary = ingest(aol_tar, tmp_path / "ws", progress=False)
    assert summary.format == "aol" and summary.format_detected
    assert summary.actions_by_kind == {"click": 407_929, "query": 318_023}
    assert summary.users == 1_000
    assert summary.quarantined == 0
    with Workspace(tmp_path / "ws") as ws:
        info = ws.info()
        assert info["kinds"] == {"click": 407_929, "query": 318_023}
        assert info["users"] == 1_000
        assert str(info["first_ts"]) == "2006-03-01 00:01:44"
        assert str(info["last_ts"]) == "2006-05-31 23:59:39"
    again = ingest(aol_tar, tmp_path / "ws", progress=False)
    assert again.actions_inserted == 0 and again.already_present == 725_952


def test_query_then_clicks_share_time_and_order(aol_user_file: Path, tmp_path: Path) -> None:
    ingest(aol_user_file, tmp_path / "ws", progress=False)
    raw_records = [r for r in aol_user_file.read_text().split("\n\n") if r.strip()]
    first = raw_records[0].split("\n")
    query, when = first[0].split("\t")
    with Workspace(tmp_path / "ws") as ws:
        actions = ws.user_actions(aol_user_file.stem)
    assert len(actions) == sum(len([x for x in r.split("\n") if x]) for r in raw_records)
    assert actions[0].kind == "query" and actions[0].text == query
    assert str(actions[0].ts) == when
    clicks = actions[1 : len(first)]
    assert [c.kind for c in clicks] == ["click"] * (len(first) - 1)
    assert [c.attrs["url"] for c in clicks] == first[1:]
    assert all(c.ts == actions[0].ts and c.attrs["query"] == query for c in clicks)
    assert all(c.text == site_name(c.attrs["url"]) for c in clicks)


def _corrupt(src: Path, dst: Path) -> dict[str, int]:
    """Corrupt five real records in five ways; return the expected quarantine counts per reason."""
    records = src.read_bytes().split(b"\n\n")
    lines = [r.split(b"\n") for r in records]
    heads = [i for i, r in enumerate(lines) if len(r) >= 2 and b"\t" in r[0]]
    expected = {"orphan click": 0}
    a, b, c, d, e = heads[1:6]
    lines[a][0] = lines[a][0].split(b"\t")[0][:5]  # truncated: the time is cut off
    expected["wrong column count"] = 1
    expected["orphan click"] += len(lines[a]) - 1
    q, _ = lines[b][0].split(b"\t")
    lines[b][0] = q + b"\t2006-02-30 25:61:00"  # impossible time
    expected["unparseable timestamp"] = 1
    expected["orphan click"] += len(lines[b]) - 1
    lines[c][1] = lines[c][1][:10] + b"\xff\xfe" + lines[c][1][10:]  # invalid UTF-8 in a click URL
    expected["invalid encoding"] = 1
    _, t = lines[d][0].split(b"\t")
    lines[d][0] = b"   \t" + t  # empty query text
    expected["empty text"] = 1
    expected["orphan click"] += len(lines[d]) - 1
    lines[e][0] = lines[e][0] + b"\textra\tcolumns"  # extra columns
    expected["wrong column count"] += 1
    expected["orphan click"] += len(lines[e]) - 1
    dst.write_bytes(b"\n\n".join(b"\n".join(r) for r in lines))
    return expected


def test_corrupted_copy_quarantines_exactly_the_bad_rows(aol_user_file: Path, tmp_path: Path) -> None:
    good = ingest(aol_user_file, tmp_path / "clean", progress=False)
    bad_file = tmp_path / aol_user_file.name
    expected = _corrupt(aol_user_file, bad_file)
    summary = ingest(bad_file, tmp_path / "ws", progress=False)
    assert summary.quarantine_reasons == expected
    assert summary.actions_valid == good.actions_valid - sum(expected.values())
    assert summary.rows_read == good.rows_read
    with Workspace(tmp_path / "ws") as ws:
        rows = ws.con.execute("SELECT line, reason, raw FROM quarantine ORDER BY line").fetchall()
    assert all(line is not None and raw for line, _, raw in rows)
    enc = [raw for _, reason, raw in rows if reason == "invalid encoding"]
    assert enc and "\\xff\\xfe" in enc[0]  # the raw bytes are shown, not lost


def test_strict_fails_and_stores_nothing(aol_user_file: Path, tmp_path: Path) -> None:
    from personaminer.ingest import StrictModeError

    bad_file = tmp_path / aol_user_file.name
    _corrupt(aol_user_file, bad_file)
    with pytest.raises(StrictModeError, match="quarantined"):
        ingest(bad_file, tmp_path / "ws", strict=True, progress=False)
    with Workspace(tmp_path / "ws") as ws:
        assert ws.info()["actions"] == 0 and ws.info()["quarantined"] == 0


def test_original_tab_separated_release(aol_user_file: Path, tmp_path: Path) -> None:
    """The real records rewritten in the 2006 release's layout give the same actions."""
    uid = aol_user_file.stem
    rows = ["AnonID\tQuery\tQueryTime\tItemRank\tClickURL"]
    for rec in aol_user_file.read_text().split("\n\n"):
        parts = [x for x in rec.split("\n") if x]
        if not parts:
            continue
        query, when = parts[0].split("\t")
        rows += [f"{uid}\t{query}\t{when}\t{rank}\t{url}" for rank, url in enumerate(parts[1:], start=1)]
    original = tmp_path / "user-ct-test-collection-01.txt.gz"
    with gzip.open(original, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    a = ingest(aol_user_file, tmp_path / "a", progress=False)
    b = ingest(original, tmp_path / "b", progress=False)
    assert b.format == "aol"
    assert a.actions_by_kind == b.actions_by_kind
    with Workspace(tmp_path / "a") as wa, Workspace(tmp_path / "b") as wb:
        ta = [(x.kind, x.text, x.ts) for x in wa.user_actions(uid)]
        tb = [(x.kind, x.text, x.ts) for x in wb.user_actions(uid)]
    assert ta == tb
