"""SIGKILL during ingest, then a re-run: the same actions as an uninterrupted ingest, and the
killed runs are recorded as ``interrupted`` (never ``running`` forever)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.hardening.corpus import shared_root


def _subset(tmp: Path, users: int = 300) -> Path:
    src = shared_root() / "aol_top1000_users" / "user_search_logs.tar.gz"
    if not src.exists():
        pytest.skip(f"real AOL data not found at {src}")
    out = tmp / "aol_subset.tar.gz"
    with tarfile.open(src) as tin, tarfile.open(out, "w:gz") as tout:
        n = 0
        for m in tin:
            if m.isfile():
                tout.addfile(m, tin.extractfile(m))
                n += 1
                if n == users:
                    break
    return out


def _ids(ws: Path) -> list[str]:
    from personaminer import Workspace

    with Workspace(ws) as w:
        return [r[0] for r in w.con.execute("SELECT action_id FROM actions ORDER BY 1").fetchall()]


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun(tmp_path: Path) -> None:
    from personaminer import Workspace, ingest

    data = _subset(tmp_path)
    # The kill points are fractions of an uninterrupted run timed on this machine (fixed delays missed on a
    # faster CI machine, where the whole ingest ended before the second kill).
    command = [sys.executable, "-m", "personaminer", "ingest", str(data), "-q"]
    start = time.monotonic()
    subprocess.run([*command, "-w", str(tmp_path / "clean")], check=True, capture_output=True, timeout=600)
    full = time.monotonic() - start
    expected = _ids(tmp_path / "clean")
    ws = tmp_path / "ws"
    killed = 0
    for fraction in (0.4, 0.65, 0.9):  # startup + staging, staging, commit
        delay = fraction * full
        proc = subprocess.Popen([*command, "-w", str(ws)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert killed >= 2, f"the kills must land mid-run for this test to mean anything (full run {full:.1f} s)"
    info = subprocess.run([sys.executable, "-m", "personaminer", "info", "-w", str(ws)], capture_output=True,
                          text=True, timeout=120, check=True).stdout
    with Workspace(ws) as w:
        statuses = [r[0] for r in w.con.execute("SELECT status FROM runs ORDER BY started_at").fetchall()]
    assert "running" not in statuses and statuses.count("interrupted") >= 1, statuses
    assert "interrupted" in info
    summary = ingest(data, ws, progress=False)  # the re-run completes what the kills left
    assert _ids(ws) == expected
    assert summary.actions_inserted + summary.already_present == len(expected)
    with Workspace(ws) as w:
        assert w.con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == 0
        assert w.con.execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()[0][0] == "ok"


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 3 MB tmpfs (needs root and mount; skipped where the machine does not allow it)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_the_workspace_survives(small_disk: Path, tmp_path: Path) -> None:
    data = _subset(tmp_path)
    ws = small_disk / "ws"
    proc = subprocess.run([sys.executable, "-m", "personaminer", "ingest", str(data), "-w", str(ws), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: the disk is full") and "free some space" in proc.stderr
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    again = subprocess.run([sys.executable, "-m", "personaminer", "ingest", str(data), "-w", str(ws), "-q"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    from personaminer import ingest

    ingest(data, tmp_path / "clean", progress=False)
    assert _ids(ws) == _ids(tmp_path / "clean")
