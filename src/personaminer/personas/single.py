"""Builder ``single``: one persona from all memories, the baseline the method argues against."""

from __future__ import annotations

from collections.abc import Sequence

from personaminer.embed import Embedder
from personaminer.llm.base import LLM
from personaminer.llm.validated import Usage, ask
from personaminer.personas.base import (
    LABEL_SCHEMA,
    MemoryItem,
    PersonaConfig,
    finish_set,
    new_set,
    numbered,
    parse_label,
    representative_subset,
    request,
)
from personaminer.prompts import load_prompt
from personaminer.schema import PersonaSet

PROMPT = "persona_single"


class SingleBuilder:
    """One description of the whole user; its evidence is every memory shown to the model."""

    name = "single"
    prompt = PROMPT

    def build(self, user_id: str, memories: Sequence[MemoryItem], config: PersonaConfig, *, embedder: Embedder,
              llm: LLM | None, lineage: str = "") -> list[PersonaSet]:
        if llm is None:
            raise ValueError("the single builder needs an llm")
        prompt = load_prompt(PROMPT)
        vectors = embedder.encode([m.summary for m in memories])
        shown = [memories[i] for i in representative_subset(memories, vectors, config.max_memories)]
        subset = [m.memory_id for m in shown] if len(shown) < len(memories) else None
        reqs = [request(prompt, LABEL_SCHEMA, config, s, n=len(shown), memories=numbered(shown))
                for s in range(config.samples)]
        usages = [Usage() for _ in reqs]
        sets = []
        for s, ((value, raw), u) in enumerate(zip(ask(llm, reqs, parse_label, config.max_retries, usages,
                                                          retry_temperature=config.retry_temperature), usages,
                                                  strict=True)):
            ps = new_set(self.name, user_id, config, s, llm.model_id, f"{prompt.name}.v{prompt.version}",
                         memories=memories, lineage=lineage)
            items = [] if value is None else [(value.label, value.description, [m.memory_id for m in shown])]
            sets.append(finish_set(ps, items, u, n_memories=len(memories), subset=subset, raw=raw,
                                   status="repaired" if u.requests > 1 else "ok"))
        return sets
