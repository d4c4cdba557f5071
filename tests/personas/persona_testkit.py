"""A deterministic stand-in for the persona LLM (unit tests only; real-model runs are benchmarks)."""

from __future__ import annotations

import json
import re

from personaminer.llm.base import LLM, ChatRequest, ChatResult

_NUM = re.compile(r"^(\d+)\. ", re.MULTILINE)


class FakePersonaLLM(LLM):
    """Answers the persona prompts: ``model`` splits the memories in halves; label prompts echo."""

    backend_name = "fake-persona"

    def __init__(self, *, bad_numbers: int = 0, share: bool = False) -> None:
        super().__init__()
        self.bad_numbers, self.share = bad_numbers, share
        self.seen: list[ChatRequest] = []

    @property
    def model_id(self) -> str:
        return "fake-persona"

    def _answer(self, req: ChatRequest) -> str:
        prompt = req.messages[1]["content"]
        block = prompt.split("<memories>")[1].split("</memories>")[0]
        n = len(_NUM.findall(block))
        if req.prompt_name == "persona_model":
            if self.model_calls < self.bad_numbers or self.bad_numbers < 0:
                return json.dumps({"personas": [{"label": "Ghost", "description": "Cites a memory that is not there.",
                                                 "evidence": [n + 3]}]})
            half = max(1, n // 2)
            a, b = list(range(1, half + 1)), list(range(half + 1, n + 1)) or [1]
            if self.share:
                b = [1, *b]
            return json.dumps({"personas": [
                {"label": "First half", "description": f"Memories 1 to {half} of this user.", "evidence": a},
                {"label": "Second half", "description": "The other memories of this user.", "evidence": b}]})
        first = block.strip().splitlines()[0].split("] ", 1)[-1]
        return json.dumps({"label": f"About {first[:30]}", "description": f"This group covers {n} memories."})

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        out = []
        for req in requests:
            self.seen.append(req)
            out.append(ChatResult(texts=[self._answer(req)], prompt_tokens=100, completion_tokens=20))
            self.model_calls += 1
        return out
