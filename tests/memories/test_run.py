"""The memories driver: tables, invariants check, reports, and crash-resume (SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.lineage import LineageConflict
from personaminer.llm.cache import CachedLLM, LLMCache
from personaminer.memories import MemoryConfig, run_memories, verify_memories
from tests.fakes import segmenter
from tests.memories.memory_testkit import sample_users


def _table(ws_path: Path, memory_set: str = "llm-segment") -> list[tuple]:
    with Workspace(ws_path, read_only=True) as ws:
        return ws.con.execute(
            "SELECT memory_id, user_id, day, position, action_ids, summary FROM memories WHERE memory_set = ? "
            "ORDER BY user_id, day, position", [memory_set]).fetchall()


def test_run_writes_checks_and_reports(aol_copy: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    users = sample_users(aol_copy, 3)
    llm = CachedLLM(segmenter(size=3), LLMCache(tmp_path / "cache.sqlite"))
    with Workspace(aol_copy) as ws:
        s = run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=2), embedder=embedder, llm=llm, progress=False)
        assert s["check"]["ok"] and s["days"] == 6 and s["memories"] > 0
        assert s["llm_model_calls"] == s["llm_requests"] > 0
        assert set(s["per_user"]) == set(users)
        again = run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=2), embedder=embedder, llm=llm, progress=False)
        assert again["days"] == 0 and again["days_skipped"] == 6 and again["llm_requests"] == 0
        with pytest.raises(LineageConflict, match="max_days: 2 -> 3"):  # the set's name is taken by max_days=2
            run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=3), embedder=embedder, llm=llm, progress=False)
        more = run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=3), embedder=embedder, llm=llm, replace=True,
                            progress=False)
        assert more["days"] == 9 and more["days_skipped"] == 0 and more["lineage"] == "replaced"
        assert more["llm_model_calls"] < more["llm_requests"]  # the LLM cache still answers the six old days
        # The check can fail: break an invariant by hand and see it reported.
        ws.con.execute("UPDATE memories SET action_ids = action_ids[2:] WHERE position = 0 AND len(action_ids) > 1")
        broken = verify_memories(ws, "llm-segment")
        assert not broken["ok"] and broken["uncovered"] > 0
    report = json.loads((aol_copy / "reports" / "memories.json").read_text())
    assert report["memory_set"] == "llm-segment" and report["model"] == "fake-segmenter-3"


def test_sigkill_then_resume_equals_uninterrupted_run(aol_copy: Path, aol_workspace: Path, embedder,  # type: ignore[no-untyped-def]
                                                      tmp_path: Path) -> None:
    users = sample_users(aol_copy, 4, seed=7)
    script = Path(__file__).with_name("memory_testkit.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cache, log = tmp_path / "cache.sqlite", tmp_path / "calls.log"
    proc = subprocess.Popen([sys.executable, str(script), str(aol_copy), str(cache), str(log), *users], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    calls_before = len(log.read_text().splitlines())
    with Workspace(aol_copy, read_only=True) as ws:
        days_done = ws.con.execute("SELECT count(*) FROM memory_days").fetchall()[0][0]
    assert days_done < 4 * 4, "the kill must land mid-run for this test to mean anything"
    subprocess.run([sys.executable, str(script), str(aol_copy), str(cache), str(log), *users], env=env, check=True)

    # An uninterrupted run in a fresh copy, with a fresh cache.
    import shutil

    clean = tmp_path / "clean"
    shutil.copytree(aol_workspace, clean)
    subprocess.run([sys.executable, str(script), str(clean), str(tmp_path / "c2.sqlite"), str(tmp_path / "l2.log"),
                    *users], env=env, check=True)
    assert _table(aol_copy) == _table(clean)
    # Each window reached the model once in total, across the killed run and the resumed one.
    assert len(log.read_text().splitlines()) == len((tmp_path / "l2.log").read_text().splitlines())
    assert calls_before > 0
    with Workspace(aol_copy, read_only=True) as ws:
        assert verify_memories(ws, "llm-segment")["ok"]


def test_memories_report_totals_and_shared_days(aol_copy: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``benchmarks/memories_report.py`` sums what the runs stored, and ``--versus`` restricts both
    sets to the user-days both built."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "memories_report.py"
    spec = importlib.util.spec_from_file_location("memories_report", path)
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    users = sample_users(aol_copy, 3)
    llm = CachedLLM(segmenter(size=3), LLMCache(tmp_path / "cache.sqlite"))
    with Workspace(aol_copy) as ws:
        ext = run_memories(ws, users, MemoryConfig(mode="extractive", max_days=2), embedder=embedder, llm=None,
                           progress=False)
        seg = run_memories(ws, users, MemoryConfig(mode="llm-segment", max_days=1), embedder=embedder, llm=llm,
                           progress=False)
        e, s = report.set_stats(ws, "extractive"), report.set_stats(ws, "llm-segment")
        assert (e["users"], e["days"], e["memories"]) == (3, 6, ext["memories"]) and e["completion_tokens"] == 0
        assert e["actions"] == ext["actions"] and e["llm_summaries"] == 0
        assert s["days"] == 3 and s["completion_tokens"] == seg["completion_tokens"] > 0
        shared = report.set_stats(ws, "extractive", on_days_of="llm-segment")
        assert shared["days"] == 3 and shared["actions"] == s["actions"] < e["actions"]
    out = subprocess.run([sys.executable, str(path), "--workspace", f"aol={aol_copy}", "--versus",
                          "llm-segment:extractive", "--out", str(tmp_path / "r.json")],
                         check=True, capture_output=True, text=True).stdout
    assert "| aol | extractive | 3 | 6 |" in out and "| ok |" in out
    assert "completion tokens per action, llm-segment / extractive = -" in out  # extractive spends none
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["aol"]["llm-segment vs extractive"]["a"]["days"] == 3
