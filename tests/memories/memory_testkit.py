"""A deterministic stand-in for the segmentation LLM (unit tests only; real-model tests exist too).

It reads the numbered steps from the prompt and answers segments of ``size`` steps. With
``log_path`` it appends one line per answered request (the day it was about), so a test can
count how often each user-day reached "the model". Run as a script it builds memories for a
workspace, which lets a test SIGKILL it mid-run.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from personaminer import Workspace
from personaminer.llm.base import LLM, ChatRequest, ChatResult

_STEP = re.compile(r"^(\d+)\. ", re.MULTILINE)
_DAY = re.compile(r"steps one user took on (\d{4}-\d{2}-\d{2})")


class FakeSegmenter(LLM):
    backend_name = "fake-segmenter"

    def __init__(self, size: int = 2, *, invalid_first: int = 0, always_invalid: bool = False,
                 always_cut_off: bool = False, run_out_over: int | None = None, log_path: Path | None = None,
                 delay: float = 0.0) -> None:
        super().__init__()
        self.size, self.invalid_first, self.always_invalid = size, invalid_first, always_invalid
        self.always_cut_off, self.run_out_over = always_cut_off, run_out_over
        self.log_path, self.delay = log_path, delay
        self.seen: list[ChatRequest] = []

    @property
    def model_id(self) -> str:
        return f"fake-segmenter-{self.size}"

    def answer(self, req: ChatRequest) -> str:
        prompt = req.messages[1]["content"]
        n = len(_STEP.findall(prompt.split("<log>")[1].split("</log>")[0]))
        retried = len(req.messages) > 2
        if self.always_invalid:  # nothing salvageable: every number is invented
            return json.dumps({"segments": [{"start": n + 1, "end": n + 5, "summary": "invented", "topics": []}]})
        if self.always_cut_off:  # a sound segment, an over-long summary, then cut off by the token limit
            return json.dumps({"segments": [
                {"start": 1, "end": 1, "summary": "the first step", "topics": []},
                {"start": 2, "end": 2, "summary": "Second. " + "long " * 100, "topics": []}]})[:-2] + ', {"start": 3, "su'
        if self.model_calls < self.invalid_first and not retried:
            return json.dumps({"segments": [{"start": 1, "end": n + 5, "summary": "invented", "topics": []}]})
        segs = [{"start": s, "end": min(s + self.size - 1, n), "summary": f"steps {s} to {min(s + self.size - 1, n)}",
                 "topics": ["test"]} for s in range(1, n + 1, self.size)]
        return json.dumps({"segments": segs})

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        out = []
        for req in requests:
            time.sleep(self.delay)
            self.seen.append(req)
            text = self.answer(req)
            self.model_calls += 1
            if self.log_path is not None:
                day = _DAY.search(req.messages[1]["content"])
                with self.log_path.open("a") as fh:
                    fh.write(f"{day.group(1) if day else '?'}\n")
            n = len(_STEP.findall(req.messages[1]["content"].split("<log>")[1].split("</log>")[0]))
            ran_out = self.run_out_over is not None and n > self.run_out_over
            if ran_out:  # one-step segments for the first run_out_over steps, then the token budget ends
                text = json.dumps({"segments": [{"start": k, "end": k, "summary": f"step {k} alone", "topics": []}
                                                for k in range(1, self.run_out_over + 1)]})[:-2] + ', {"start": '
            out.append(ChatResult(texts=[text], prompt_tokens=len(req.messages[1]["content"]) // 4,
                                  completion_tokens=req.max_tokens if ran_out else len(text) // 4))
        return out


def sample_users(ws_path: Path, n: int, seed: int = 0) -> list[str]:
    with Workspace(ws_path) as ws:
        return ws.users(sample=n, seed=seed, min_actions=20)


def main() -> None:  # python fake_segmenter.py WORKSPACE CACHE LOG USER [USER ...]
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm.cache import CachedLLM, LLMCache
    from personaminer.memories import MemoryConfig, run_memories

    ws_path, cache_path, log_path, *users = sys.argv[1:]
    llm = CachedLLM(FakeSegmenter(log_path=Path(log_path), delay=0.3), LLMCache(cache_path))
    with Workspace(ws_path) as ws:
        run_memories(ws, users, MemoryConfig(mode="llm", max_days=4, window_steps=6), embedder=MiniLMEmbedder(),
                     llm=llm, progress=False)


if __name__ == "__main__":
    main()
