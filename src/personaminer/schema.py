"""Typed records shared by every stage.

The action table is the one contract between ingestion and everything after it. Its columns
are documented in ``docs/schema.md``; the tables' DDL lives in :mod:`personaminer.tables.ddl`,
the records and the id functions here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Action kinds produced by the bundled adapters. Generic inputs may use other lowercase
#: tokens (``[a-z][a-z0-9_]*``); these are the ones later stages know how to phrase.
ACTION_KINDS: dict[str, str] = {
    "query": "typed a search query",
    "click": "clicked a search result",
    "view": "viewed an item",
    "like": "liked / saved an item",
    "cart": "added an item to the cart",
    "offer": "made an offer on an item",
    "checkout": "started checkout",
    "purchase": "bought an item",
    "rating": "rated an item",
}



class Action(BaseModel):
    """One normalized user action (a row of the ``actions`` table).

    ``action_id`` is a content hash (see :func:`action_id`), so re-ingesting the same input
    yields the same ids and identical rows collapse into one.
    """

    model_config = ConfigDict(frozen=True)

    action_id: str
    user_id: str = Field(min_length=1)
    ts: dt.datetime = Field(description="UTC timestamp (naive datetime, UTC by convention)")
    kind: str
    text: str = Field(min_length=1, description="What an LLM should read about the action")
    item_id: str | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(description="adapter that produced the row: aol, merrec, ...")
    seq: int = Field(description="input order; breaks ties between equal timestamps")

    @field_validator("attrs", mode="before")
    @classmethod
    def _parse_attrs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value)
        return {} if value is None else value


def action_id(source: str, user_id: str, ts: str, kind: str, item_id: str | None, text: str, attrs_json: str) -> str:
    """The stable id of an action: a 80-bit hash of its content.

    Python twin of the SQL expression in :data:`personaminer.datasets.base.ACTION_ID_SQL`;
    the test suite checks that both agree.
    """
    key = "\x1f".join([source, user_id, ts, kind, item_id or "", text, attrs_json])
    return "a" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]



class IntentMemory(BaseModel):
    """Contiguous actions of one user-day that serve one intent, with a short summary.

    ``summary_by`` says who wrote the summary: ``llm``, or ``extractive`` (the extractive
    mode, or an LLM-mode repair of a span the model left out, or a fallback after the
    model failed; the day's ``memory_days.note`` says which).
    """

    model_config = ConfigDict(frozen=True)

    memory_id: str
    memory_set: str
    user_id: str
    day: dt.date
    position: int = Field(ge=0, description="order of the memory within its day")
    start_ts: dt.datetime
    end_ts: dt.datetime
    action_ids: list[str] = Field(min_length=1)
    summary: str = Field(min_length=1)
    topics: list[str] = Field(default_factory=list)
    mode: str
    summary_by: str
    model: str | None = None
    prompt: str | None = None
    redacted: bool = False


def memory_id(memory_set: str, user_id: str, action_ids: list[str]) -> str:
    """Stable id of a memory: a hash of its set, user and exact action ids."""
    key = "\x1f".join([memory_set, user_id, *action_ids])
    return "m" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]



class Persona(BaseModel):
    """One facet of a user: a label, a description, and the memory ids that support it."""

    model_config = ConfigDict(frozen=True)

    persona_id: str
    set_id: str
    user_id: str
    position: int
    label: str = Field(min_length=1)
    description: str = Field(min_length=1)
    evidence: list[str] = Field(min_length=1, description="memory ids, all of this user")
    builder: str


class PersonaSet(BaseModel):
    """One candidate set of personas for a user, with its provenance and cost.

    ``status``: ``ok``; ``repaired`` (the answer needed a deterministic fix, see ``note``);
    ``failed`` (no valid answer after the retries: no personas are stored, ``raw`` keeps the
    last model text).
    """

    set_id: str
    user_id: str
    builder: str
    memory_set: str
    collection: str = ""  #: the named persona collection the set belongs to
    lineage: str = ""  #: the collection's fingerprint
    sample_index: int = 0
    seed: int = 0
    temperature: float = 0.0
    model: str | None = None
    prompt: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    status: str = "ok"
    personas: list[Persona] = Field(default_factory=list)
    n_memories: int = 0
    unassigned: list[str] = Field(default_factory=list)
    subset: list[str] | None = None
    note: str | None = None
    raw: str | None = None
    llm_requests: int = 0
    llm_model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def persona_set_id(collection_fingerprint: str, user_id: str, memory_ids: list[str], sample_index: int) -> str:
    """Stable id of a persona set: the collection's fingerprint (which hashes its builder, config, prompt,
    model and memory set), the user, the exact memories the builder read, and the sample."""
    key = "\x1f".join([collection_fingerprint, user_id, *memory_ids, f"sample={sample_index}"])
    return "s" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
