"""Degraded copies of persona sets, for checking that each quality term reacts as it should.

Used by the sanity tests and ``benchmarks/quality_sanity.py``:

* ``shuffle``: the evidence sets are rotated between personas (no persona keeps its own);
* ``other_user``: every persona's label and description replaced by another user's persona;
* ``invented_fact``: :data:`INVENTED` (an age, a job, a city, a car) appended to every description;
* ``merged``: one persona holding all the set's evidence, described by the first description.
"""

from __future__ import annotations

from personaminer.embed import Embedder
from personaminer.quality.metrics import PersonaView, SetContext

INVENTED = "The user is a 34-year-old dentist who lives in Reno, Nevada and owns a red Ferrari."
DEGRADATIONS = ("shuffle", "other_user", "invented_fact", "merged")


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
    else:
        raise ValueError(f"unknown degradation {kind!r}; choose one of {', '.join(DEGRADATIONS)}")
    pvec = embedder.encode([f"{p.label}. {p.description}" for p in personas])
    return SetContext(ctx.set_id, ctx.user_id, personas, ctx.memory_ids, ctx.memory_vectors, pvec,
                      ctx.reference_vectors)
