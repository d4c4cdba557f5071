"""Real persona sets for the quality tests, built from real AOL logs without an LLM.

Memories are the extractive memories of real users (real query text). Personas come from the
cluster builder; a stand-in labeller writes each description from its own cluster's real
memory texts ("The user searched for X. The user also searched for Y."), so every original
claim is grounded, and the degradations have something real to break.
"""

from __future__ import annotations

import json
import re

import numpy as np

from personaminer.llm.base import LLM, ChatRequest, ChatResult
from personaminer.quality import PersonaView, SetContext

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


INVENTED = "The user is a 34-year-old dentist who lives in Reno, Nevada and owns a red Ferrari."


def degrade(ctx: SetContext, kind: str, other_description: str, embed, rng: np.random.Generator) -> SetContext:  # type: ignore[no-untyped-def]
    """A degraded copy of a persona set (see the sanity tests for what each should break)."""
    personas = [PersonaView(p.persona_id, p.label, p.description, list(p.evidence)) for p in ctx.personas]
    if kind == "shuffle":  # evidence sets rotated between personas: no persona keeps its own evidence
        evidence = [p.evidence for p in personas]
        for p, ev in zip(personas, evidence[1:] + evidence[:1], strict=True):
            p.evidence = ev
    elif kind == "other_user":  # every persona's text (label and description) replaced by another user's
        label, _, description = other_description.partition("\x1f")
        for p in personas:
            p.label, p.description = label, description
    elif kind == "invented_fact":
        for p in personas:
            p.description = f"{p.description} {INVENTED}"
    elif kind == "merged":  # one persona holding every memory, described by the first description
        personas = [PersonaView(personas[0].persona_id, personas[0].label, personas[0].description,
                                sorted({e for p in personas for e in p.evidence}))]
    else:
        raise ValueError(kind)
    pvec = embed.encode([f"{p.label}. {p.description}" for p in personas])
    ref = ctx.reference_vectors
    return SetContext(ctx.set_id, ctx.user_id, personas, ctx.memory_ids, ctx.memory_vectors, pvec, ref)
