"""The in-process llama.cpp server leaves nothing behind: no process, no open port, no thread.

After a normal exit of the CLI, after Ctrl-C in the middle of a run, after an exception inside the
backend's ``with`` block, and after :meth:`close`. Real model (the small test model) and real
MerRec rows.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
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


def _settled_threads(target: int) -> int:
    deadline = time.monotonic() + 5
    while threads() > target and time.monotonic() < deadline:
        time.sleep(0.1)
    return threads()


def test_close_and_exception_free_port_and_threads(small_model_path: Path) -> None:
    require_engine("server")
    from personaminer.llm.server import LlamaServerLLM

    hi = [ChatRequest(messages=[{"role": "user", "content": "Hi"}], max_tokens=2)]
    # a first server, closed normally: what stays afterwards is the process's OpenMP worker pool
    # (created once per process by llama.cpp's first parallel region and reused), not the server
    with LlamaServerLLM(small_model_path, n_ctx=1024) as llm:
        assert llm.base_url is None  # nothing starts before the first request
        assert llm.generate(hi)[0].ok
    baseline = _settled_threads(0)

    llm = LlamaServerLLM(small_model_path, n_ctx=1024)
    with pytest.raises(RuntimeError, match="boom"), llm:
        [res] = llm.generate(hi)
        assert res.ok, res.error
        port = int(PORT_LINE.search(llm.base_url or "").group(1))  # type: ignore[union-attr]
        assert not port_is_closed(port) and threads() > baseline + 2
        raise RuntimeError("boom")
    assert port_is_closed(port)
    assert _settled_threads(baseline) == baseline, "the server's threads outlived close()"
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
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a test run in the background inherits SIGINT ignored, and Python keeps it so: give the CLI
        # the default disposition, as in a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


class Run:
    """A CLI run whose stderr is read on a thread (so a chatty run never blocks on a full pipe)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines, self.port_seen = proc, [], threading.Event()
        self.port = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if not self.port and (m := PORT_LINE.search(line)):
                self.port = int(m.group(1))
                self.port_seen.set()

    def wait_for_port(self) -> int:
        if not self.port_seen.wait(300):
            self.proc.kill()
            pytest.fail("the CLI never started the llama.cpp server:\n" + "".join(self.lines[-20:]))
        return self.port

    def log(self) -> str:
        return "".join(x for x in self.lines if "DEBUG" not in x)[-3000:]


def test_cli_exit_and_ctrl_c_leave_no_server(workspace: Path, small_model_path: Path, tmp_path: Path) -> None:
    require_engine("server")
    fresh = tmp_path / "ws2"
    shutil.copytree(workspace, fresh)  # the same inputs, nothing built yet: the second run needs the model too
    # a full run: the server starts, answers, and is gone when the command returns
    run = Run(_personas(workspace, small_model_path, "full"))
    port = run.wait_for_port()
    assert children(run.proc.pid) == [], "the embedded server must not be a child process"
    assert run.proc.wait(timeout=600) == 0, run.log()
    assert port_is_closed(port)

    # Ctrl-C while the model is working: exit status 130 within seconds, "interrupted", port closed
    run = Run(_personas(fresh, small_model_path, "interrupted"))
    port = run.wait_for_port()
    time.sleep(0.3)
    run.proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    try:
        rc = run.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        pytest.fail("the CLI did not exit within 60 s of Ctrl-C:\n" + run.log())
    assert rc == 130, run.log()
    time.sleep(0.2)  # the drain thread reads the last lines
    assert "interrupted" in run.log()
    assert port_is_closed(port)
    assert time.monotonic() - t0 < 30, f"Ctrl-C took {time.monotonic() - t0:.1f} s"
