"""What every persona builder shares: its config, its input, LLM calls with validation, subsets."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field, field_validator

from personaminer.embed import Embedder
from personaminer.llm.base import LLM, ChatRequest, extract_json_text
from personaminer.llm.validated import Usage
from personaminer.prompts import MEMORY_CHARS, Prompt, clip
from personaminer.schema import Persona, PersonaSet, persona_set_id

BuilderName = Literal["cluster", "model", "single"]


@dataclass
class PersonaConfig:
    """Settings of the persona stage (one object for every builder; recorded with each set).

    Attributes
    ----------
    builder: ``cluster`` (embed + cluster + LLM label), ``model`` (the persona model writes the
        whole set), ``single`` (one persona from all memories: the baseline).
    memory_set: which intent memories to read (see ``personaminer memories --set``).
    min_personas, max_personas: bounds on the number of personas (``cluster`` chooses within
        them by silhouette; ``model`` is asked for a count within them).
    samples, temperature, seed: ``samples`` candidate sets per user; sample *i* uses seed
        ``seed + i``. The default is one greedy (temperature 0) set.
    allow_shared_evidence: whether one memory may support several personas (``model``).
    decoding: how ``model`` writes a set: ``oneshot`` (one call, the whole JSON answer; shared
        evidence is found by validation) or ``stepwise`` (one call per persona over the memories not
        yet cited, so shared evidence cannot be written; needs a backend that continues a final
        assistant message, and ``allow_shared_evidence`` off): :mod:`personaminer.personas.stepwise`.
    memory_order: the order (hence the numbers) of the memories the ``model`` prompt shows:
        ``time`` (by day) or ``similarity`` (the leaf order of an average-linkage cosine clustering
        of their summaries, so that neighbours are alike: small models cite runs of consecutive
        numbers, see docs/training.md).
    max_memories: at most this many memories go into one prompt; more are reduced to a
        representative subset (the most central memories of an initial clustering).
    min_cluster_size: ``cluster`` leaves memories of smaller clusters unassigned (reported).
    linkage: ``cluster``'s agglomerative linkage: ``ward`` (default; Ward on L2-normalised
        embeddings, whose squared distance is 2 - 2 cos) or ``average`` (average linkage on cosine
        distance). Average linkage splits off single outlying memories first, so the silhouette
        rule often picked one giant cluster plus a singleton (one persona after the singleton is
        left unassigned): 7 of 17 AOL users and MerRec user 213 (269 + 1 memories).
    max_retries: re-asks (with the error fed back) before a set is recorded as failed.
    retry_temperature: retries (every builder's) sample at (at least) this temperature with the
        seed advanced per attempt (``None``: retries decode like the first attempt). Greedy
        retries of the 1.5B model repeated the invalid answer word for word: 11 of 20 Instacart
        users failed that way, and a MerRec cluster label cut at ``max_tokens`` three times.
    distinct_labels: ``cluster`` re-asks (up to ``max_retries`` times) the label of a cluster whose label repeats (or
        nearly repeats: MiniLM cosine >= ``label_similarity``) a label of a larger cluster of the
        same set, showing the labels already taken (prompt ``persona_label_distinct``). Without it
        the 1.5B model labelled four clusters of one Instacart user "food shopping", "food",
        "food", "food": one facet said four times, which the quality score's distinctness counts
        against the set and which no reader wants.
    label_similarity: the cosine of two labels (each embedded alone) at or above which they count
        as the same label.
    keyword_labels: when a relabel still repeats a kept label after every retry, ``cluster`` appends
        the cluster's three most distinctive words (class-based TF-IDF, as BERTopic names its topics)
        to the first answer's label: "film (sci-fi, war, children's)" instead of a second "film".
        The 1.5B model answered "film" or "entertainment" to every relabel of four MovieLens users
        (three retries each), so two facets of one user carried one generic label. Recorded in the
        set's note. Off: the repeated label stays, as before.
    name: the persona collection the sets are stored under (default ``BUILDER@MEMORY_SET``). A
        collection is a named output with a lineage: asking for a name built with another
        config, model, prompt or memory set is refused (pick another name, or replace it).
    """

    builder: BuilderName = "model"
    memory_set: str = "llm"
    min_personas: int = 2
    max_personas: int = 5
    samples: int = 1
    temperature: float = 0.0
    seed: int = 0
    allow_shared_evidence: bool = False
    decoding: Literal["oneshot", "stepwise"] = "oneshot"
    memory_order: Literal["time", "similarity"] = "time"
    max_memories: int = 40
    min_cluster_size: int = 2
    linkage: Literal["ward", "average"] = "ward"
    max_retries: int = 2
    max_tokens: int = 1024
    retry_temperature: float | None = 0.7
    adapter: str | None = None
    distinct_labels: bool = True
    label_similarity: float = 0.6
    keyword_labels: bool = True
    name: str | None = None

    def __post_init__(self) -> None:
        if self.builder not in ("cluster", "model", "single"):
            raise ValueError(f"builder must be cluster, model or single, not {self.builder!r}")
        if not 1 <= self.min_personas <= self.max_personas:
            raise ValueError("need 1 <= min_personas <= max_personas")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if self.samples > 1 and self.temperature == 0 and self.builder != "cluster":
            raise ValueError("several samples at temperature 0 are identical: pass --temperature > 0")
        if self.retry_temperature is not None and self.retry_temperature < 0:
            raise ValueError("retry_temperature must be >= 0 (or None for greedy retries)")
        if self.linkage not in ("ward", "average"):
            raise ValueError(f"linkage must be 'ward' or 'average', not {self.linkage!r}")
        if self.decoding not in ("oneshot", "stepwise"):
            raise ValueError(f"decoding must be 'oneshot' or 'stepwise', not {self.decoding!r}")
        if self.decoding == "stepwise" and self.allow_shared_evidence:
            raise ValueError("stepwise decoding writes each memory into one persona: it cannot allow shared evidence")
        if self.memory_order not in ("time", "similarity"):
            raise ValueError(f"memory_order must be 'time' or 'similarity', not {self.memory_order!r}")
        if self.max_memories < 2:
            raise ValueError("max_memories must be at least 2")
        if not 0 < self.label_similarity <= 1:
            raise ValueError("label_similarity must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def collection(self) -> str:
        """The collection's name: ``name``, or ``BUILDER@MEMORY_SET``."""
        return self.name or f"{self.builder}@{self.memory_set}"

    def output_config(self) -> dict[str, Any]:
        """What changes the sets (the lineage config): not ``samples`` (sample i is the same at any N),
        not the collection's name, not ``linkage`` outside ``cluster`` (the only builder reading it), and
        ``decoding`` and ``memory_order`` only when not at their defaults and the builder is ``model``
        (so collections made before the fields existed keep their lineage), and ``distinct_labels`` with
        ``label_similarity`` only for ``cluster`` with the relabelling on (a cluster collection made
        before it existed was made without it, so its lineage differs, as it should); ``keyword_labels``
        likewise, and only when on (collections made before it existed keep their lineage when it is off)."""
        d = self.to_dict()
        for k in ("samples", "name"):
            d.pop(k)
        for k, default in (("decoding", "oneshot"), ("memory_order", "time")):
            if d[k] == default or self.builder != "model":
                d.pop(k)
        if self.builder != "cluster":
            d.pop("linkage")
            d.pop("min_cluster_size")
        if self.builder != "cluster" or not self.distinct_labels:
            d.pop("distinct_labels")
            d.pop("label_similarity")
        if self.builder != "cluster" or not self.distinct_labels or not self.keyword_labels:
            d.pop("keyword_labels")
        return d


@dataclass(frozen=True)
class MemoryItem:
    """The part of an intent memory a persona builder reads."""

    memory_id: str
    day: dt.date
    summary: str

    def line(self) -> str:
        return f"[{self.day.isoformat()}] " + clip(self.summary, MEMORY_CHARS)


class PersonaBuilder(Protocol):
    """A builder turns one user's memories into ``config.samples`` candidate persona sets."""

    name: str

    #: the name of the builder's prompt (its version is part of the collection's fingerprint)
    prompt: str

    def build(self, user_id: str, memories: Sequence[MemoryItem], config: PersonaConfig, *, embedder: Embedder,
              llm: LLM | None, lineage: str = "") -> list[PersonaSet]:
        """``config.samples`` sets; ``lineage`` (the collection's fingerprint) goes into each set id."""
        ...


#: The grammar's bounds on a label and a description (characters). Without them the 1.5B model
#: sometimes wrote a description that never ended (a list of film titles run to ``max_tokens``):
#: 8 of 30 cluster sets in the quality benchmark lost a cluster that way (two MovieLens users were
#: left with one persona by it). A description cut at the bound is trimmed to its last
#: complete sentence (:class:`LabelAnswer`).
LABEL_CHARS, DESCRIPTION_CHARS = 80, 600


class LabelAnswer(BaseModel):
    """A label and a description (cluster and single builders)."""

    label: str = Field(min_length=2, max_length=LABEL_CHARS)
    description: str = Field(min_length=10, max_length=1200)

    @field_validator("description")
    @classmethod
    def _whole_sentences(cls, text: str) -> str:
        """A description cut by the grammar's bound ends at its last complete sentence, if it has one."""
        text = text.strip()
        if len(text) >= DESCRIPTION_CHARS and (end := text.rfind(". ")) >= 10:
            return text[:end + 1]
        return text


LABEL_SCHEMA = {"type": "object", "properties": {"label": {"type": "string", "maxLength": LABEL_CHARS},
                                                 "description": {"type": "string", "maxLength": DESCRIPTION_CHARS}},
                "required": ["label", "description"]}


def parse_label(text: str) -> LabelAnswer:
    return LabelAnswer.model_validate_json(extract_json_text(text))


def request(prompt: Prompt, schema: dict[str, Any], config: PersonaConfig, sample: int, **fields: Any) -> ChatRequest:
    return ChatRequest(messages=prompt.messages(**fields), temperature=config.temperature, seed=config.seed + sample,
                       max_tokens=config.max_tokens, json_schema=schema, prompt_name=prompt.name,
                       prompt_version=prompt.version)


def numbered(memories: Sequence[MemoryItem]) -> str:
    return "\n".join(f"{i}. {m.line()}" for i, m in enumerate(memories, start=1))


def representative_subset(memories: Sequence[MemoryItem], vectors: np.ndarray, limit: int) -> list[int]:
    """Indices of at most ``limit`` memories that represent all of them, in time order.

    An initial agglomerative clustering (cosine, average linkage) into ``min(8, limit // 3)``
    groups; each group gets a share of ``limit`` proportional to its size (at least one), filled
    with its most central memories (highest mean cosine similarity to the group).
    """
    n = len(memories)
    if n <= limit:
        return list(range(n))
    from sklearn.cluster import AgglomerativeClustering

    k = max(2, min(8, limit // 3))
    labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(vectors)
    groups = [np.flatnonzero(labels == c) for c in range(k)]
    shares = [max(1, round(limit * len(g) / n)) for g in groups]
    while sum(shares) > limit:
        shares[int(np.argmax(shares))] -= 1
    chosen: list[int] = []
    for g, share in zip(groups, shares, strict=True):
        sims = vectors[g] @ vectors[g].T
        order = g[np.argsort(-sims.mean(axis=1), kind="stable")]
        chosen.extend(int(i) for i in order[:share])
    return sorted(chosen)


def set_ids(lineage: str, user_id: str, memories: Sequence[MemoryItem], samples: int) -> list[str]:
    """The ids of a user's ``samples`` sets in a collection: what :func:`new_set` gives them."""
    ids = [m.memory_id for m in memories]
    return [persona_set_id(lineage, user_id, ids, s) for s in range(samples)]


def new_set(builder: str, user_id: str, config: PersonaConfig, sample: int, model: str | None,
            prompt: str | None, *, memories: Sequence[MemoryItem], lineage: str = "") -> PersonaSet:
    """An empty set of a user, with its id (see :func:`personaminer.schema.persona_set_id`)."""
    [set_id] = set_ids(lineage, user_id, memories, sample + 1)[sample:]
    return PersonaSet(set_id=set_id, user_id=user_id, builder=builder, memory_set=config.memory_set,
                      collection=config.collection, lineage=lineage, sample_index=sample, seed=config.seed + sample,
                      temperature=config.temperature, model=model, prompt=prompt, config=config.to_dict())


def finish_set(ps: PersonaSet, items: list[tuple[str, str, list[str]]], usage: Usage, *, n_memories: int,
               unassigned: list[str] | None = None, subset: list[str] | None = None, status: str = "ok",
               raw: str | None = None) -> PersonaSet:
    """Fill a set's personas (label, description, evidence ids) and its bookkeeping."""
    personas = [Persona(persona_id="p" + hashlib.sha256(f"{ps.set_id}\x1f{i}".encode()).hexdigest()[:20],
                        set_id=ps.set_id, user_id=ps.user_id, position=i, label=label.strip(),
                        description=" ".join(desc.split()), evidence=evidence, builder=ps.builder)
                for i, (label, desc, evidence) in enumerate(items)]
    return ps.model_copy(update={
        "personas": personas, "status": status if personas else "failed", "n_memories": n_memories,
        "unassigned": unassigned or [], "subset": subset, "note": "; ".join(usage.notes) or None, "raw": raw,
        "llm_requests": usage.requests, "llm_model_calls": usage.model_calls, "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens})
