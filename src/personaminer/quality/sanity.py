"""Degraded copies of persona sets, for checking that each quality term reacts as it should.

Used by the sanity tests and ``benchmarks/quality_sanity.py``:

* ``shuffle``: the evidence sets are rotated between personas (no persona keeps its own);
* ``other_user``: every persona's label and description replaced by another user's persona;
* ``invented_fact``: :data:`INVENTED` (an age, a job, a city, a car) appended to every description;
* ``merged``: one persona holding all the set's evidence, described by the first description;
* ``generic_labels``: every label replaced by a word that fits everyone (:data:`GENERIC`);
* ``duplicated``: the first persona copied once more into the set;
* ``overclaim``: the description's verbs raised (searched / viewed / looked at -> bought, rated ->
  loves) and :data:`OVERCLAIM` appended (a daily purchase habit, loved);
* ``demographic``: :data:`DEMOGRAPHIC` (gender, age group, job, family) appended to every description.
"""

from __future__ import annotations

import re

from personaminer.embed import Embedder
from personaminer.quality.metrics import PersonaView, SetContext
from personaminer.quality.scorer import embed_personas

INVENTED = "The user is a 34-year-old dentist who lives in Reno, Nevada and owns a red Ferrari."
GENERIC = ("search", "shopping", "user interests", "online activity")
OVERCLAIM = "The user buys these every day and loves every one of them."
DEMOGRAPHIC = "She is a retired teacher, married, with two children."
DEGRADATIONS = ("shuffle", "other_user", "invented_fact", "merged", "generic_labels", "duplicated", "overclaim",
                "demographic")
_UPWARD = [(re.compile(r"\b(?:search(?:es|ed|ing)? for|look(?:s|ed|ing)? (?:at|for|up)|view(?:s|ed|ing)?|"
                       r"brows(?:es|ed|ing)|explor(?:es|ed|ing)|check(?:s|ed|ing)? out)\b", re.I), "bought"),
           (re.compile(r"\brat(?:es|ed|ing)\b", re.I), "loves")]


def overclaim(description: str) -> str:
    """``description`` with its action verbs raised and :data:`OVERCLAIM` appended."""
    for pattern, verb in _UPWARD:
        description = pattern.sub(verb, description)
    return f"{description} {OVERCLAIM}"


def degrade(ctx: SetContext, kind: str, other: tuple[str, str], embedder: Embedder) -> SetContext:
    """A degraded copy of ``ctx``; ``other`` is another user's (label, description)."""
    personas = [PersonaView(p.persona_id, p.label, p.description, list(p.evidence)) for p in ctx.personas]
    if kind == "shuffle":
        evidence = [p.evidence for p in personas]
        for p, ev in zip(personas, evidence[1:] + evidence[:1], strict=True):
            p.evidence = ev
    elif kind == "other_user":
        for p in personas:
            p.label, p.description = other
    elif kind == "invented_fact":
        for p in personas:
            p.description = f"{p.description} {INVENTED}"
    elif kind == "merged":
        personas = [PersonaView(personas[0].persona_id, personas[0].label, personas[0].description,
                                sorted({e for p in personas for e in p.evidence}))]
    elif kind == "generic_labels":
        for i, p in enumerate(personas):
            p.label = GENERIC[i % len(GENERIC)]
    elif kind == "duplicated":
        first = personas[0]
        personas.append(PersonaView(f"{first.persona_id}-copy", first.label, first.description, list(first.evidence)))
    elif kind == "overclaim":
        for p in personas:
            p.description = overclaim(p.description)
    elif kind == "demographic":
        for p in personas:
            p.description = f"{p.description} {DEMOGRAPHIC}"
    else:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(DEGRADATIONS)}")
    out = SetContext(ctx.set_id, ctx.user_id, personas, ctx.memory_ids, ctx.memory_vectors, ctx.persona_vectors,
                     ctx.reference_vectors, background_vectors=ctx.background_vectors)
    if len(personas) == 1 and ctx.background_vectors is not None:
        out.reference_vectors = ctx.background_vectors
    return embed_personas(out, embedder)


#: Degenerate sets a reward-hacking persona model writes (the trained SmolLM2 wrote the first two):
#: they must score below the user's real set.
HACKS = ("hack_dates", "hack_copied", "hack_one_for_all")


def hacks(ctx: SetContext, memory_text: dict[str, str], embedder: Embedder, n: int = 3) -> dict[str, SetContext]:
    """The degenerate sets of a user, from the user's own memories:

    * ``hack_dates``: ``n`` personas, each labelled with a memory's date and described by that
      memory's summary copied ("Centered on ..."), evidence that memory;
    * ``hack_copied``: the same with the summary's first words as the label;
    * ``hack_one_for_all``: one persona, "User interests: the user is interested in many topics
      online.", holding every memory.
    """
    ids = ctx.memory_ids
    picks = [ids[i] for i in sorted({round(k * (len(ids) - 1) / max(1, n - 1)) for k in range(n)})]
    out = {}
    for kind in HACKS:
        if kind == "hack_one_for_all":
            personas = [PersonaView(f"{ctx.set_id}-all", "User interests",
                                    "The user is interested in many topics online.", list(ids))]
        else:
            personas = []
            for i, m in enumerate(picks):
                day, _, summary = memory_text[m].partition("] ")
                label = day.strip("[") if kind == "hack_dates" else " ".join(summary.split()[:4])
                personas.append(PersonaView(f"{ctx.set_id}-{kind}-{i}", label, summary, [m]))
        bad = SetContext(ctx.set_id, ctx.user_id, personas, ctx.memory_ids, ctx.memory_vectors, ctx.persona_vectors,
                         ctx.background_vectors if len(personas) == 1 and ctx.background_vectors is not None
                         else ctx.reference_vectors, background_vectors=ctx.background_vectors)
        out[kind] = embed_personas(bad, embedder)
    return out
