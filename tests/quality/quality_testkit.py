"""Real persona sets for the quality tests, built from real AOL logs without an LLM.

Memories are the extractive memories of real users (real query text). Personas come from the
cluster builder; a stand-in labeller writes each description from its own cluster's real
memory texts ("The user searched for X. The user also searched for Y."), so every original
claim is grounded, and the degradations have something real to break.
"""

from __future__ import annotations

import json
import re

from personaminer.llm.base import LLM, ChatRequest, ChatResult

_QUOTED = re.compile(r'"([^"]{3,80})"')


class GroundedLabeller(LLM):
    backend_name = "grounded-labeller"

    @property
    def model_id(self) -> str:
        return "grounded-labeller"

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        out = []
        for req in requests:
            block = req.messages[1]["content"].split("<memories>")[1].split("</memories>")[0]
            texts = list(dict.fromkeys(_QUOTED.findall(block)))
            first, second = texts[0], texts[1] if len(texts) > 1 else texts[0]
            out.append(ChatResult(texts=[json.dumps({
                "label": first[:40], "description": f"The user searched for {first}. The user also searched for "
                                                    f"{second}."})]))
            self.model_calls += 1
        return out
