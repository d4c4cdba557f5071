"""Builder ``model``: the persona model writes the whole persona set in one call.

This is the model that training (groupwise DPO) improves. Its answer is validated: evidence
numbers must exist, personas need evidence, a memory supports one persona unless
``allow_shared_evidence``, duplicates are merged. Invalid answers are asked again with the
error; a set that stays invalid is stored as ``failed`` with the raw text, never as personas.

The answer format (prompt ``persona_model.v3``) is written so that a small model can write it:

* **evidence before text**: each persona is ``{"evidence": [...], "label": ..., "description":
  ...}``, so the model chooses the memories first and then describes them;
* **a grammar per request** (:func:`persona_grammar`, GBNF, honoured by the llama.cpp engines
  and servers) allows only numbers ``1..n``, in strictly increasing order (so unique within a
  persona), ``min_personas..max_personas`` personas, a label of 1 to 6 words (the first
  character not a digit or ASCII punctuation: SmolLM2 labelled personas "1", "3") and a description
  of 4 to 50 words (a word: at most 24 characters, a comma only at its end) made of characters
  that need no JSON escape, on one line (no newlines or
  indentation: pretty-printed answers ran SmolLM2 to ``max_tokens``, and training targets are
  one line). llama.cpp's JSON-schema
  grammar does not enforce an integer ``maximum``, hence the hand-written grammar; the request
  also carries the JSON schema (:func:`model_schema`: an ``enum`` of the numbers,
  ``uniqueItems``) for servers that ignore grammars;
* **no literal format line** in the prompt: the small models copied its ``"..."``
  placeholders (530 of SmolLM2's 640 training samples were invalid, mostly that way).

What a grammar cannot say (a memory cited by two personas) is left to :func:`validate_draft`.
Stored sets are format-free rows; an answer in the old order (label, description, evidence)
parses the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from personaminer.embed import Embedder
from personaminer.llm.base import LLM, extract_json_text
from personaminer.llm.validated import Usage, ask
from personaminer.personas.base import (
    MemoryItem,
    PersonaConfig,
    finish_set,
    new_set,
    numbered,
    representative_subset,
    request,
)
from personaminer.prompts import load_prompt
from personaminer.schema import PersonaSet

PROMPT = "persona_model"


class PersonaDraft(BaseModel):
    label: str = Field(min_length=2, max_length=80)
    description: str = Field(min_length=10, max_length=1200)
    evidence: list[int] = Field(min_length=1)


class PersonaSetDraft(BaseModel):
    personas: list[PersonaDraft] = Field(min_length=1)


def model_schema(n: int, max_personas: int, min_personas: int = 1) -> dict:
    """JSON schema of the answer, evidence first (no string-length limits: they slow llama.cpp's
    grammar). The evidence numbers are an ``enum`` of ``1..n`` (llama.cpp's schema grammar ignores an
    integer ``maximum``) and ``uniqueItems``.

    ``minItems`` on the personas carries ``min_personas``: left free, the 1.5B default model
    wrote 1.1 personas per set on 20 real AOL users, whatever the prompt asked."""
    persona = {"type": "object", "properties": {
        "evidence": {"type": "array", "items": {"type": "integer", "enum": list(range(1, n + 1))},
                     "minItems": 1, "uniqueItems": True},
        "label": {"type": "string"}, "description": {"type": "string"}},
        "required": ["evidence", "label", "description"]}
    return {"type": "object", "properties": {"personas": {"type": "array", "items": persona,
                                                          "minItems": max(1, min(min_personas, max_personas)),
                                                          "maxItems": max_personas}}, "required": ["personas"]}


#: The completion budget of a small student's answer: the grammar's longest answer at 24 shown memories
#: and 5 personas is about 600 tokens (SmolLM2 ran out at 512 when pretty-printing).
STUDENT_MAX_TOKENS = 768

#: Bounds the grammar puts on a persona's text, in words. A word is 1 to ``WORD_CHARS`` characters
#: other than space, comma, quote, backslash and control characters, then at most one comma (so
#: "evidence 5,evidence 5,..." is not one word).
LABEL_WORDS = (1, 6)
DESCRIPTION_WORDS = (4, 50)
WORD_CHARS = 24


def grammar_text(text: str, max_words: int) -> str:
    """``text`` as :func:`persona_grammar` lets the model write it: double quotes become single
    ones, backslashes and control characters spaces, a comma inside a word is followed by a
    space, a word longer than ``WORD_CHARS`` (commas aside) is cut, a lone comma joins the word
    before it, and at most ``max_words`` words are kept. Not changed: a label that starts with a
    digit or punctuation, or a description under four words (the grammar would not let the
    model write them; such targets stay as they are, only less likely under the grammar)."""
    text = "".join(c if c >= " " else " " for c in text.replace('"', "'").replace("\\", " "))
    text = re.sub(r",+", ",", text)
    text = re.sub(r",(?=\S)", ", ", text)
    words: list[str] = []
    for w in text.split():
        core = w.rstrip(",")[:WORD_CHARS]
        if not core:  # a lone comma
            if words and not words[-1].endswith(","):
                words[-1] += ","
            continue
        words.append(core + ("," if w.endswith(",") else ""))
    return " ".join(words[:max_words])


def persona_rules() -> list[str]:
    """The GBNF rules of one persona object (``persona`` and what it uses, but not ``ev``: see
    :func:`evidence_rules`)."""
    return [
        'persona ::= "{" sp "\\"evidence\\"" sp ":" sp "[" ev "]" sp "," sp "\\"label\\"" sp ":" sp '
        '"\\"" label "\\"" sp "," sp "\\"description\\"" sp ":" sp "\\"" description "\\"" sp "}"',
        f'label ::= lw (" " w){{{LABEL_WORDS[0] - 1},{LABEL_WORDS[1] - 1}}}',
        f'lw ::= [^ "\\\\\\x00-\\x2f0-9:-@\\[-`{{-~] [^ ,"\\\\\\x00-\\x1f]{{0,{WORD_CHARS - 1}}} ","?',
        f'description ::= w (" " w){{{DESCRIPTION_WORDS[0] - 1},{DESCRIPTION_WORDS[1] - 1}}}',
        f'w ::= [^ ,"\\\\\\x00-\\x1f]{{1,{WORD_CHARS}}} ","?',
        'sp ::= " "?',
    ]


def evidence_rules(numbers: Sequence[int], reserve: int = 0) -> list[str]:
    """GBNF rules ``ev`` (and its states) of one persona's evidence: a non-empty, strictly
    increasing list of ``numbers``, leaving at least ``reserve`` of them out (so that many are
    left for the personas still to come: :mod:`personaminer.personas.stepwise`).

    A state is (the number just written, how many numbers were skipped so far, capped at
    ``reserve``); only states from which the list can still end with enough skipped are
    written, so every path the grammar allows is a valid list. With ``reserve`` 0 the rule of
    number ``k`` is ``e<k>``; the size grows as ``len(numbers)^2 (reserve + 1) / 2``."""
    nums = sorted(set(numbers))
    m = len(nums)
    if m - reserve < 1:
        raise ValueError(f"cannot cite one of {m} numbers and leave {reserve} out")

    def name(i: int, s: int) -> str:
        return f"e{nums[i]}" if reserve == 0 else f"e{nums[i]}-{s}"  # GBNF names: letters, digits, -

    def viable(i: int, s: int) -> bool:  # ending here skips the numbers after nums[i]
        return s + (m - 1 - i) >= reserve

    rules = ["ev ::= " + " | ".join(name(i, min(reserve, i)) for i in range(m) if viable(i, min(reserve, i)))]
    for i in range(m):
        for s in range(reserve + 1) if reserve else (0,):
            if not viable(i, s):
                continue
            later = [name(j, t) for j in range(i + 1, m) if viable(j, t := min(reserve, s + j - i - 1))]
            rules.append(f'{name(i, s)} ::= "{nums[i]}"' + (f' ("," " "? ({" | ".join(later)}))?' if later else ""))
    return rules


def persona_grammar(n: int, max_personas: int, min_personas: int = 1) -> str:
    """GBNF for one answer over ``n`` numbered memories (see the module docstring).

    The evidence rule ``e<k>`` writes number ``k`` and may go on only with a larger number, so
    the numbers of one persona are unique and increasing; its size grows as n^2 / 2 (820
    alternatives at the 40 memories a prompt shows at most)."""
    if n < 1:
        raise ValueError("the grammar needs at least one memory")
    lo = max(1, min(min_personas, max_personas))
    more = "" if max_personas == 1 else f' ("," sp persona){{{lo - 1},{max_personas - 1}}}'
    rules = [f'root ::= "{{" sp "\\"personas\\"" sp ":" sp "[" sp persona{more} sp "]" sp "}}"',
             *persona_rules(), *evidence_rules(range(1, n + 1))]
    return "\n".join(rules) + "\n"


def validate_draft(draft: PersonaSetDraft, n: int, config: PersonaConfig, *, resolve_shared: bool = False
                   ) -> tuple[list[tuple[str, str, list[int]]], list[str]]:
    """Check a drafted set against ``n`` numbered memories; return (personas, repairs).

    Raises ``ValueError`` (the model is asked again) for: a number outside ``1..n``, more than
    ``max_personas`` or fewer than ``min(min_personas, n)`` personas, or, when shared evidence is
    not allowed, a memory cited by two personas. Repairs: repeated numbers within one persona are removed; duplicates (same label
    ignoring case, or evidence overlapping by Jaccard >= 0.8) are merged into the first.
    ``resolve_shared`` (the last resort after the retries) repairs a memory cited by two
    personas instead of raising: it stays with the first persona that cites it, and a later
    persona left without evidence is dropped.
    """
    if len(draft.personas) > config.max_personas:
        raise ValueError(f"{len(draft.personas)} personas, at most {config.max_personas} allowed")
    owner: dict[int, int] = {}
    personas: list[tuple[str, str, list[int]]] = []
    resolved: list[str] = []
    for k, p in enumerate(draft.personas, start=1):
        bad = [e for e in p.evidence if not 1 <= e <= n]
        if bad:
            raise ValueError(f"persona {k} cites memory {bad[0]}, but the memories are numbered 1 to {n}")
        evidence = sorted(set(p.evidence))
        if not config.allow_shared_evidence:
            taken = [e for e in evidence if e in owner]
            if taken and not resolve_shared:
                raise ValueError(f"memory {taken[0]} is cited by personas {owner[taken[0]]} and {k}; each memory may "
                                 "support only one persona")
            if taken:
                evidence = [e for e in evidence if e not in owner]
                resolved.append(f"persona {k}: memories {taken} already cited by an earlier persona were removed"
                                + ("; the persona, left without evidence, was dropped" if not evidence else ""))
                if not evidence:
                    continue
            owner.update({e: k for e in evidence})
        personas.append((p.label.strip(), p.description.strip(), evidence))
    if len(personas) < min(config.min_personas, n):
        raise ValueError(f"{len(personas)} persona(s), at least {min(config.min_personas, n)} required: give each "
                         "distinct interest its own persona")
    merged: list[tuple[str, str, list[int]]] = []
    repairs = resolved
    for label, desc, ev in personas:
        for j, (l2, d2, ev2) in enumerate(merged):
            jac = len(set(ev) & set(ev2)) / len(set(ev) | set(ev2))
            if label.casefold() == l2.casefold() or jac >= 0.8:
                merged[j] = (l2, d2, sorted(set(ev) | set(ev2)))
                repairs.append(f"merged duplicate persona {label!r} into {l2!r}")
                break
        else:
            merged.append((label, desc, ev))
    return merged, repairs


@dataclass(frozen=True)
class PreparedPrompt:
    """What the persona model is shown for one user: the request fields and the numbered memories."""

    shown: list[MemoryItem]
    subset: list[str] | None  #: ids of the shown memories when they are a subset, else None
    fields: dict[str, object]

    def messages(self) -> list[dict[str, str]]:
        return load_prompt(PROMPT).messages(**self.fields)


def similarity_order(vectors: np.ndarray) -> list[int]:
    """A permutation of the rows that puts similar ones next to each other: the leaf order of an
    average-linkage clustering on cosine distance, optimally ordered (scipy), ties by index."""
    n = len(vectors)
    if n < 3:
        return list(range(n))
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import pdist

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    dist = np.clip(pdist(unit, "cosine"), 0.0, 2.0)
    return [int(i) for i in leaves_list(linkage(dist, "average", optimal_ordering=True))]


def prepare(memories: Sequence[MemoryItem], config: PersonaConfig, embedder: Embedder) -> PreparedPrompt:
    """Choose the memories to show (a representative subset when too many) and fill the prompt."""
    vectors = embedder.encode([m.summary for m in memories])
    chosen = representative_subset(memories, vectors, config.max_memories)
    if config.memory_order == "similarity":
        chosen = [chosen[i] for i in similarity_order(vectors[chosen])]
    shown = [memories[i] for i in chosen]
    subset = [m.memory_id for m in shown] if len(shown) < len(memories) else None
    n = len(shown)
    overlap = ("a memory may support more than one persona" if config.allow_shared_evidence
               else "each memory supports at most one persona")
    fields = {"n": n, "memories": numbered(shown), "min_personas": min(config.min_personas, n),
              "max_personas": config.max_personas, "overlap_rule": overlap}
    return PreparedPrompt(shown, subset, fields)


def render_completion(personas: Sequence[tuple[str, str, Sequence[str]]], shown: Sequence[MemoryItem]) -> str | None:
    """A persona set as the persona model writes it: evidence first, as increasing numbers of the
    shown memories, then the label and the description made writable under :func:`persona_grammar`
    (:func:`grammar_text`), so a training target is an answer the grammar allows.

    Evidence not among the shown memories is left out, and a persona left with none is
    dropped; None when no persona remains. Used to turn any builder's set into a training
    completion in one canonical format.
    """
    number = {m.memory_id: i for i, m in enumerate(shown, start=1)}
    out = []
    for label, desc, evidence in personas:
        ev = sorted({number[e] for e in evidence if e in number})
        if ev:
            out.append({"evidence": ev, "label": grammar_text(label, LABEL_WORDS[1]),
                        "description": grammar_text(desc, DESCRIPTION_WORDS[1])})
    return json.dumps({"personas": out}, ensure_ascii=False) if out else None


def _resolve_shared(raw: str, n: int, config: PersonaConfig) -> tuple[list[tuple[str, str, list[int]]], list[str]] | None:
    """After the retries: accept an answer whose only fault is evidence shared between personas,
    repaired by :func:`validate_draft` ``(resolve_shared=True)``; None for any other fault."""
    try:
        personas, repairs = validate_draft(PersonaSetDraft.model_validate_json(extract_json_text(raw)), n, config,
                                           resolve_shared=True)
    except ValueError:  # pydantic's ValidationError is a ValueError too
        return None
    return personas, ["accepted after the retries with shared evidence resolved", *repairs]


class ModelBuilder:
    """One LLM call per sample writes the user's whole persona set."""

    name = "model"
    prompt = PROMPT

    def build(self, user_id: str, memories: Sequence[MemoryItem], config: PersonaConfig, *, embedder: Embedder,
              llm: LLM | None, lineage: str = "") -> list[PersonaSet]:
        if llm is None:
            raise ValueError("the model builder needs an llm")
        prompt = load_prompt(PROMPT)
        prepared = prepare(memories, config, embedder)
        shown, subset, n = prepared.shown, prepared.subset, len(prepared.shown)
        lo = min(config.min_personas, n)
        schema = model_schema(n, config.max_personas, lo)
        grammar = persona_grammar(n, config.max_personas, lo)
        requests = [request(prompt, schema, config, s, **prepared.fields).model_copy(update={"grammar": grammar})
                    for s in range(config.samples)]
        usages = [Usage() for _ in requests]

        def parse(text: str) -> tuple[list[tuple[str, str, list[int]]], list[str]]:
            return validate_draft(PersonaSetDraft.model_validate_json(extract_json_text(text)), n, config)

        if config.decoding == "stepwise":
            from personaminer.personas.stepwise import stepwise_answers

            answers = stepwise_answers(llm, requests, n, min_personas=lo, max_personas=config.max_personas,
                                       parse=parse, max_retries=config.max_retries, usages=usages,
                                       retry_temperature=config.retry_temperature)
        else:
            answers = ask(llm, requests, parse, config.max_retries, usages,
                          retry_temperature=config.retry_temperature)
        sets = []
        for s, ((value, raw), usage) in enumerate(zip(answers, usages, strict=True)):
            if value is None and raw is not None and not config.allow_shared_evidence:
                value = _resolve_shared(raw, n, config)
            ps = new_set(self.name, user_id, config, s, llm.model_id, f"{prompt.name}.v{prompt.version}",
                         memories=memories, lineage=lineage)
            if value is None:
                sets.append(finish_set(ps, [], usage, n_memories=len(memories), subset=subset, raw=raw))
                continue
            personas, repairs = value
            usage.notes.extend(repairs)
            items = [(label, desc, [shown[e - 1].memory_id for e in ev]) for label, desc, ev in personas]
            cited = {e for _, _, ev in personas for e in ev}
            unassigned = [m.memory_id for i, m in enumerate(shown, start=1) if i not in cited]
            status = "repaired" if repairs or usage.requests > 1 else "ok"
            sets.append(finish_set(ps, items, usage, n_memories=len(memories), unassigned=unassigned, subset=subset,
                                   status=status, raw=raw))
        return sets
