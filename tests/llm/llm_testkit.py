"""Helpers for the LLM tests (imported by conftest.py and the test modules): fakes, real AOL examples, real models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from personaminer.llm.base import LLM, ChatRequest, ModelNotAvailable
from personaminer.llm.catalog import resolve
from tests.aol_testkit import AOL_TAR, aol_queries  # noqa: F401  (re-exported for the llm tests)

TEST_MODEL = os.environ.get("PERSONAMINER_TEST_MODEL", "smollm2-135m-instruct")
JUDGE_MODEL = "qwen2.5-coder-1.5b-instruct"


def user_msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------- real AOL data
@dataclass(frozen=True)
class JudgeExample:
    user_id: str
    keyword: str  #: evidence = the user's first distinct queries containing this word
    supported: str  #: a paraphrase of those queries
    unsupported: str  #: an unrelated topic


# Chosen by keyword frequency in the real log (each user has >= 30 such queries).
JUDGE_EXAMPLES = [
    JudgeExample("3141170", "recipe", "The user looks for cooking recipes.", "The user follows professional baseball."),
    JudgeExample("271639", "jobs", "The user is searching for a job.", "The user is planning a wedding."),
    JudgeExample("3327666", "golf", "The user is interested in golf equipment and golf courses.", "The user looks up song lyrics."),
    JudgeExample("2855040", "lyrics", "The user looks up song lyrics.", "The user is shopping for a mortgage."),
    JudgeExample("678360", "fishing", "The user is interested in fishing and fishing rods.", "The user is looking for hotel deals."),
]

JUDGE_SYSTEM = "You check whether claims are supported by evidence. Answer Yes or No."


def judge_request(evidence: list[str], claim: str) -> ChatRequest:
    lines = "\n".join(f"- {q}" for q in evidence)
    return ChatRequest(
        messages=[
            {"role": "system", "content": JUDGE_SYSTEM},
            {
                "role": "user",
                "content": f"Evidence (search queries):\n{lines}\n\nClaim: {claim}\n"
                "Is the claim supported by the evidence? Answer Yes or No.",
            },
        ],
        prompt_name="test-judge",
        prompt_version="1",
    )


# ----------------------------------------------------------------- persona prompt
class PersonaAnswer(BaseModel):
    # Bounded lengths become part of the grammar, so a small model cannot ramble past max_tokens.
    label: str = Field(min_length=1, max_length=60)
    description: str = Field(min_length=1, max_length=240)
    interests: list[str] = Field(min_length=1, max_length=5)


def persona_request(queries: list[str]) -> ChatRequest:
    lines = "\n".join(f"- {q}" for q in queries)
    return ChatRequest(
        messages=[
            {"role": "system", "content": "You describe users from their search queries. Reply in JSON."},
            {
                "role": "user",
                "content": f"Search queries of one user:\n{lines}\n\nGive a short persona label, a one-sentence "
                "description and 1-5 interests, as JSON with keys label, description, interests.",
            },
        ],
        max_tokens=200,
        prompt_name="test-persona",
        prompt_version="1",
    )


# ----------------------------------------------------------------- real models
ENGINES = ("server", "python")


def require_engine(engine: str = "server") -> None:
    """Skip unless the embedded engine is installed (server: xllamacpp, the default; python: llama-cpp-python)."""
    if engine == "server":
        try:
            import xllamacpp  # noqa: F401
        except ImportError:
            pytest.skip("xllamacpp is not installed (pip install xllamacpp==2026.10.11549)")
        return
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        pytest.skip("llama-cpp-python (the optional python engine) is not installed: pip install -e '.[llm-python]'")


def require_llama_cpp() -> None:
    require_engine("python")


def make_engine_llm(engine: str, model: str | Path, **kw: object) -> LLM:
    """The embedded backend of ``engine`` for ``model`` (skips when that engine is not installed)."""
    require_engine(engine)
    if engine == "server":
        from personaminer.llm.server import LlamaServerLLM

        return LlamaServerLLM(model, **kw)  # type: ignore[arg-type]
    from personaminer.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(model, **kw)  # type: ignore[arg-type]


def require_model(name: str) -> Path:
    require_engine("server")
    try:
        return resolve(name)
    except ModelNotAvailable as err:
        pytest.skip(f"model not installed: {err}")


@pytest.fixture(scope="session")
def small_model_path() -> Path:
    return require_model(TEST_MODEL)


@dataclass(frozen=True)
class JudgeModel:
    name: str
    path: Path
    strict: bool  #: True: every supported claim > 0.5 > every unsupported one; False: pairwise only


@pytest.fixture(scope="session")
def judge_model() -> JudgeModel:
    """Qwen-1.5B (strict assertions) if installed, else Qwen-0.5B (looser, measured), else skip.

    Measured P(yes) on JUDGE_EXAMPLES (supported/unsupported): Qwen-1.5B 0.78-0.90 vs 0.09-0.12;
    Qwen-0.5B 0.31-0.39 vs 0.17-0.25 (separates pairwise, never above 0.5); SmolLM2-135M one pair
    reversed (no signal), so it is never used here.
    """
    require_engine("server")
    candidates = [(JUDGE_MODEL, True), ("qwen2.5-coder-0.5b-instruct", False)]
    forced = os.environ.get("PERSONAMINER_JUDGE_MODEL")  # pick one of the two explicitly
    if forced:
        candidates = [c for c in candidates if c[0] == forced]
    for name, strict in candidates:
        try:
            return JudgeModel(name, resolve(name), strict)
        except ModelNotAvailable:
            continue
    pytest.skip(
        f"the yes/no judge test needs {JUDGE_MODEL} (or the 0.5B model; SmolLM2-135M gives no signal): "
        f"run `personaminer models install {JUDGE_MODEL}`"
    )


def judge_batch() -> list[ChatRequest]:
    """Requests in pairs (supported, unsupported) for every JUDGE_EXAMPLES entry, from real AOL queries."""
    reqs = []
    for ex in JUDGE_EXAMPLES:
        evidence = aol_queries(ex.user_id, ex.keyword, 10)
        assert len(evidence) >= 5, f"AOL user {ex.user_id} has too few '{ex.keyword}' queries"
        reqs += [judge_request(evidence, ex.supported), judge_request(evidence, ex.unsupported)]
    return reqs


def assert_judge_separates(scores: list[float], strict: bool) -> None:
    supported, unsupported = scores[0::2], scores[1::2]
    for s, u in zip(supported, unsupported, strict=False):
        assert s > u, f"P(yes) supported {s:.2f} <= unsupported {u:.2f}"
    if strict:
        assert min(supported) > 0.5 > max(unsupported), (supported, unsupported)
    else:
        assert sum(supported) / len(supported) - sum(unsupported) / len(unsupported) > 0.05, (supported, unsupported)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """A `personaminer models serve` child process (llama.cpp's server) on loopback: a "remote" server."""

    def __init__(self, model_path: Path, alias: str, startup_timeout_s: float = 90.0) -> None:
        require_engine("server")
        self.port = _free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [sys.executable, "-m", "personaminer", "models", "serve", str(model_path), "--port", str(self.port),
               "--n-ctx", "2048", "--threads", "2"]
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama_server_{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"`personaminer models serve` exited early (code {self.proc.returncode}); "
                            f"log: {self.log_path}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        pytest.fail(f"`personaminer models serve` did not answer within {startup_timeout_s}s; log: {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="session")
def llama_server_factory() -> Iterator[Callable[[Path, str], LlamaServer]]:
    servers: dict[str, LlamaServer] = {}

    def get(model_path: Path, alias: str) -> LlamaServer:
        if alias not in servers:
            servers[alias] = LlamaServer(model_path, alias)
        return servers[alias]

    yield get
    for server in servers.values():
        server.stop()
