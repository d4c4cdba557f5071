"""The in-process llama.cpp server leaves nothing behind: no process, no open port, no thread.

After a normal exit of the CLI, after Ctrl-C in the middle of a run, after an exception inside the
backend's ``with`` block, and after :meth:`close`. Real model (the small test model) and real
MerRec rows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from personaminer.llm import ChatRequest
from tests.llm.llm_testkit import require_engine

pytestmark = pytest.mark.real_model

PORT_LINE = re.compile(r"127\.0\.0\.1:(\d+)/v1")


def port_is_closed(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_close_and_exception_free_port_and_threads(small_model_path: Path) -> None:
    require_engine("server")
    from personaminer.llm.server import LlamaServerLLM

    before = threads()
    llm = LlamaServerLLM(small_model_path, n_ctx=1024)
    assert llm.base_url is None  # nothing starts before the first request
    with pytest.raises(RuntimeError, match="boom"), llm:
        [res] = llm.generate([ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=2)])
        assert res.ok, res.error
        port = int(PORT_LINE.search(llm.base_url or "").group(1))  # type: ignore[union-attr]
        assert not port_is_closed(port) and threads() > before
        raise RuntimeError("boom")
    assert port_is_closed(port)
    deadline = time.monotonic() + 5
    while threads() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threads() == before, "the server's threads outlived close()"
    llm.close()  # idempotent


def test_a_model_that_fails_to_load_is_an_error_result(tmp_path: Path) -> None:
    require_engine("server")
    from personaminer.llm.server import LlamaServerLLM

    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with LlamaServerLLM(bad) as llm:
        [res] = llm.generate([ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=2)])
    assert res.error is not None and "could not load" in res.error


@pytest.fixture()
def workspace(merrec_csv: Path, tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    for args in (["ingest", str(merrec_csv), "-w", str(ws), "-q"],
                 ["memories", "-w", str(ws), "--mode", "extractive", "-q"]):
        subprocess.run([sys.executable, "-m", "personaminer", *args], check=True, capture_output=True, timeout=300)
    return ws


def _personas(ws: Path, small_model_path: Path, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "400", "PERSONAMINER_NO_CACHE": "1", "PERSONAMINER_LLAMA_ENGINE": "server"}
    return subprocess.Popen(
        [sys.executable, "-m", "personaminer", "-v", "personas", "-w", str(ws), "-b", "single", "--memories",
         "extractive", "--model", str(small_model_path), "--max-tokens", "64", "--max-retries", "0", "--name", name, "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_port(proc: subprocess.Popen[str], lines: list[str]) -> int:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if m := PORT_LINE.search(line):
            return int(m.group(1))
    pytest.fail("the CLI never started the llama.cpp server:\n" + "".join(lines[-20:]))


def test_cli_exit_and_ctrl_c_leave_no_server(workspace: Path, small_model_path: Path) -> None:
    require_engine("server")
    # a full run: the server starts, answers, and is gone when the command returns
    lines: list[str] = []
    proc = _personas(workspace, small_model_path, "full")
    port = _wait_for_port(proc, lines)
    assert children(proc.pid) == [], "the embedded server must not be a child process"
    out, rest = proc.communicate(timeout=600)
    assert proc.returncode == 0, "".join(lines) + rest
    assert port_is_closed(port)

    # Ctrl-C while the model is working: exit status 130, "interrupted", port closed
    lines = []
    proc = _personas(workspace, small_model_path, "interrupted")
    port = _wait_for_port(proc, lines)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _out, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the CLI did not exit within 60 s of Ctrl-C (the server kept the signal?)")
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert port_is_closed(port)
