"""The shared ingest pipeline: ids, idempotency, duplicates, quarantine bookkeeping."""

from __future__ import annotations

from pathlib import Path

from personaminer import Workspace, ingest
from personaminer.schema import action_id


def test_sql_and_python_action_ids_agree(merrec_csv: Path, tmp_path: Path) -> None:
    ingest(merrec_csv, tmp_path / "ws", progress=False)
    with Workspace(tmp_path / "ws") as ws:
        rows = ws.con.execute(
            "SELECT action_id, source, user_id, strftime(ts, '%Y-%m-%d %H:%M:%S.%f'), kind, item_id, text, "
            "CAST(attrs AS VARCHAR) FROM actions LIMIT 50").fetchall()
    for aid, *fields in rows:
        assert aid == action_id(*fields)


def test_reingest_is_idempotent(merrec_csv: Path, tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    lines = merrec_csv.read_bytes().split(b"\n")
    lines[3] = lines[3] + b",extra"
    bad.write_bytes(b"\n".join(lines))
    first = ingest(bad, tmp_path / "ws", progress=False)
    with Workspace(tmp_path / "ws") as ws:
        before = ws.info()
    second = ingest(bad, tmp_path / "ws", progress=False)
    with Workspace(tmp_path / "ws") as ws:
        after = ws.info()
        runs = ws.con.execute("SELECT command, status FROM runs").fetchall()
    assert first.actions_inserted == 1232 and second.actions_inserted == 0
    assert second.already_present == 1232 and second.quarantine_new == 0
    for key in ("actions", "users", "kinds", "quarantined", "quarantine_reasons"):
        assert before[key] == after[key], key
    assert runs == [("ingest", "ok"), ("ingest", "ok")]
    assert (tmp_path / "ws" / "reports" / "ingest.json").exists()


def test_duplicate_rows_are_reported_and_kept_once(merrec_csv: Path, tmp_path: Path) -> None:
    lines = merrec_csv.read_bytes().rstrip(b"\n").split(b"\n")
    dup = tmp_path / "dup.csv"
    dup.write_bytes(b"\n".join(lines + lines[1:4]) + b"\n")
    s = ingest(dup, tmp_path / "ws", progress=False)
    assert s.duplicates_in_input == 3 and s.actions_inserted == 1233


def test_user_actions_are_time_ordered(aol_user_file: Path, tmp_path: Path) -> None:
    ingest(aol_user_file, tmp_path / "ws", progress=False)
    with Workspace(tmp_path / "ws") as ws:
        acts = ws.user_actions(aol_user_file.stem)
        assert ws.users() == [aol_user_file.stem]
    keys = [(a.ts, a.seq) for a in acts]
    assert keys == sorted(keys)
