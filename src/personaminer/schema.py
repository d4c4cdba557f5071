"""Typed records shared by every stage.

The action table is the one contract between ingestion and everything after it. Its columns
are documented in ``docs/schema.md``; this module is the single source of truth for names,
types and the vocabulary of action kinds.
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

#: DuckDB DDL of the action table (column order is the order of :class:`Action`).
ACTIONS_DDL = """
CREATE TABLE IF NOT EXISTS actions (
    action_id VARCHAR PRIMARY KEY,
    user_id   VARCHAR NOT NULL,
    ts        TIMESTAMP NOT NULL,
    kind      VARCHAR NOT NULL,
    text      VARCHAR NOT NULL,
    item_id   VARCHAR,
    attrs     JSON,
    source    VARCHAR NOT NULL,
    seq       BIGINT NOT NULL
)
"""

#: DuckDB DDL of the temporal split: one row per split user. Actions with ``ts < cutoff_ts`` are
#: the user's history (all that memories and personas may read); the rest is the future that
#: evaluation predicts. ``rule_key`` is the canonical rule + parameters (a re-run with the same
#: key is a no-op; another key is refused unless replaced).
SPLITS_DDL = """
CREATE TABLE IF NOT EXISTS splits (
    user_id           VARCHAR PRIMARY KEY,
    cutoff_ts         TIMESTAMP NOT NULL,
    rule              VARCHAR NOT NULL,
    params            JSON NOT NULL,
    rule_key          VARCHAR NOT NULL,
    n_history_actions BIGINT NOT NULL,
    n_future_actions  BIGINT NOT NULL,
    history_days      INTEGER NOT NULL,
    future_days       INTEGER NOT NULL,
    run_id            VARCHAR
)
"""

#: DuckDB DDL of the quarantine table: every input row that did not become an action.
QUARANTINE_DDL = """
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    source_file   VARCHAR NOT NULL,
    line          BIGINT,
    row_number    BIGINT,
    raw           VARCHAR,
    reason        VARCHAR NOT NULL,
    detail        VARCHAR
)
"""

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    command     VARCHAR NOT NULL,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status      VARCHAR NOT NULL,
    config      JSON,
    versions    JSON,
    summary     JSON,
    pid         INTEGER,
    host        VARCHAR
)
"""

#: Columns added to ``runs`` after workspaces existed; opening an older workspace adds them.
RUNS_ADDED_COLUMNS = {"pid": "INTEGER", "host": "VARCHAR"}


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


MEMORIES_DDL = """
CREATE TABLE IF NOT EXISTS memories (
    memory_id   VARCHAR PRIMARY KEY,
    memory_set  VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    day         DATE NOT NULL,
    position    INTEGER NOT NULL,
    start_ts    TIMESTAMP NOT NULL,
    end_ts      TIMESTAMP NOT NULL,
    action_ids  VARCHAR[] NOT NULL,
    summary     VARCHAR NOT NULL,
    topics      VARCHAR[],
    mode        VARCHAR NOT NULL,
    summary_by  VARCHAR NOT NULL,
    model       VARCHAR,
    prompt      VARCHAR,
    redacted    BOOLEAN NOT NULL
)
"""

MEMORY_DAYS_DDL = """
CREATE TABLE IF NOT EXISTS memory_days (
    memory_set        VARCHAR NOT NULL,
    user_id           VARCHAR NOT NULL,
    day               DATE NOT NULL,
    status            VARCHAR NOT NULL,
    n_actions         INTEGER NOT NULL,
    n_memories        INTEGER NOT NULL,
    llm_requests      INTEGER NOT NULL,
    llm_model_calls   INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    note              VARCHAR,
    PRIMARY KEY (memory_set, user_id, day)
)
"""


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


PERSONA_SETS_DDL = """
CREATE TABLE IF NOT EXISTS persona_sets (
    set_id            VARCHAR PRIMARY KEY,
    user_id           VARCHAR NOT NULL,
    builder           VARCHAR NOT NULL,
    memory_set        VARCHAR NOT NULL,
    sample_index      INTEGER NOT NULL,
    seed              INTEGER NOT NULL,
    temperature       DOUBLE NOT NULL,
    model             VARCHAR,
    prompt            VARCHAR,
    config            JSON,
    status            VARCHAR NOT NULL,
    n_personas        INTEGER NOT NULL,
    n_memories        INTEGER NOT NULL,
    unassigned        VARCHAR[],
    subset            VARCHAR[],
    note              VARCHAR,
    raw               VARCHAR,
    llm_requests      INTEGER NOT NULL,
    llm_model_calls   INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL
)
"""

PERSONAS_DDL = """
CREATE TABLE IF NOT EXISTS personas (
    persona_id  VARCHAR PRIMARY KEY,
    set_id      VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    label       VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    evidence    VARCHAR[] NOT NULL,
    builder     VARCHAR NOT NULL
)
"""


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


def persona_set_id(builder: str, memory_set: str, user_id: str, sample_index: int, config_key: str) -> str:
    """Stable id of a persona set: same builder, memories, user, sample and config -> same id."""
    key = "\x1f".join([builder, memory_set, user_id, str(sample_index), config_key])
    return "s" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
