"""Every table of a workspace, in one place: DDL, the schema version, and the upgrade of older workspaces.

The tables, by the stage that writes them (data flows down this list, never up):

========================  ============================================================================
``actions``, ``quarantine``  ingest: one row per action; one row per input row that is not one
``runs``                  every command: what ran, with which config and versions, and how it ended
``lineage``               every stage: one row per named output (a memory set, a persona collection,
                          a score config, the split, a groups dataset): its config and fingerprint
``splits``, ``roles``     the evaluation protocol: each user's cutoff; held-out train/val/test roles
``memories``, ``memory_days``  stage 1: intent memories, and which user-days are done (resume)
``persona_sets``, ``personas``  stage 2: candidate persona sets and their personas
``set_scores``, ``persona_scores``, ``claim_verdicts``  quality: per set, per persona, per claim
``meta``                  the workspace's schema version
========================  ============================================================================

Columns are documented in ``docs/schema.md``; the lineage chain in ``docs/architecture.md``.
"""

from __future__ import annotations

import duckdb

#: Bumped when a table changes in a way :func:`upgrade` must handle.
SCHEMA_VERSION = 2

ACTIONS = """
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
)"""

QUARANTINE = """
CREATE TABLE IF NOT EXISTS quarantine (
    quarantine_id VARCHAR PRIMARY KEY,
    run_id        VARCHAR NOT NULL,
    source_file   VARCHAR NOT NULL,
    line          BIGINT,
    row_number    BIGINT,
    raw           VARCHAR,
    reason        VARCHAR NOT NULL,
    detail        VARCHAR
)"""

RUNS = """
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
)"""

#: One row per named output of a stage. ``fingerprint`` hashes what produced it (see
#: :mod:`personaminer.lineage`); a run asking for ``(kind, name)`` with another fingerprint is refused.
LINEAGE = """
CREATE TABLE IF NOT EXISTS lineage (
    kind        VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL,
    parents     VARCHAR[] NOT NULL,
    config      JSON NOT NULL,
    code        VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    run_id      VARCHAR,
    PRIMARY KEY (kind, name)
)"""

#: The temporal split: one row per split user. Actions with ``ts < cutoff_ts`` are the user's
#: history; the rest is the future that evaluation predicts.
SPLITS = """
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
)"""

#: Held-out roles (train | val | test); a user keeps its role once given.
ROLES = """
CREATE TABLE IF NOT EXISTS roles (
    user_id VARCHAR PRIMARY KEY,
    role    VARCHAR NOT NULL,
    seed    INTEGER NOT NULL
)"""

MEMORIES = """
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
    redacted    BOOLEAN NOT NULL,
    lineage     VARCHAR
)"""

#: ``input_hash`` hashes the day's action ids: a day whose actions changed since it was built is redone.
MEMORY_DAYS = """
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
    lineage           VARCHAR,
    input_hash        VARCHAR,
    PRIMARY KEY (memory_set, user_id, day)
)"""

PERSONA_SETS = """
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
    completion_tokens INTEGER NOT NULL,
    collection        VARCHAR,
    lineage           VARCHAR
)"""

PERSONAS = """
CREATE TABLE IF NOT EXISTS personas (
    persona_id  VARCHAR PRIMARY KEY,
    set_id      VARCHAR NOT NULL,
    user_id     VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    label       VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    evidence    VARCHAR[] NOT NULL,
    builder     VARCHAR NOT NULL
)"""

SET_SCORES = """
CREATE TABLE IF NOT EXISTS set_scores (
    set_id VARCHAR NOT NULL, user_id VARCHAR NOT NULL, builder VARCHAR NOT NULL, judge VARCHAR NOT NULL,
    config_key VARCHAR NOT NULL, judge_model VARCHAR, values JSON NOT NULL, final DOUBLE,
    PRIMARY KEY (set_id, judge, config_key)
)"""

PERSONA_SCORES = """
CREATE TABLE IF NOT EXISTS persona_scores (
    persona_id VARCHAR NOT NULL, set_id VARCHAR NOT NULL, judge VARCHAR NOT NULL, config_key VARCHAR NOT NULL,
    values JSON NOT NULL, PRIMARY KEY (persona_id, judge, config_key)
)"""

CLAIM_VERDICTS = """
CREATE TABLE IF NOT EXISTS claim_verdicts (
    set_id VARCHAR NOT NULL, persona_id VARCHAR NOT NULL, judge VARCHAR NOT NULL, config_key VARCHAR NOT NULL,
    claim_index INTEGER NOT NULL, claim VARCHAR NOT NULL, p_yes DOUBLE, supported BOOLEAN NOT NULL,
    evidence VARCHAR[] NOT NULL, guard VARCHAR, PRIMARY KEY (persona_id, judge, config_key, claim_index)
)"""

META = """
CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
)"""

ALL = [ACTIONS, QUARANTINE, RUNS, LINEAGE, SPLITS, ROLES, MEMORIES, MEMORY_DAYS, PERSONA_SETS, PERSONAS,
       SET_SCORES, PERSONA_SCORES, CLAIM_VERDICTS, META]

#: Columns added after workspaces of schema 1 existed (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``).
ADDED_COLUMNS = {
    "runs": {"pid": "INTEGER", "host": "VARCHAR"},
    "memories": {"lineage": "VARCHAR"},
    "memory_days": {"lineage": "VARCHAR", "input_hash": "VARCHAR"},
    "persona_sets": {"collection": "VARCHAR", "lineage": "VARCHAR"},
    "claim_verdicts": {"guard": "VARCHAR"},
}


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0])


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}


def upgrade(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create missing tables and bring a workspace of an older schema up to :data:`SCHEMA_VERSION`.

    Schema 1 (before lineage): ``train_roles`` becomes ``roles``; the new columns are added, NULL
    on old rows. Old memory sets and persona sets keep their ids and stay readable; they have no
    fingerprint, so they are registered as *legacy* outputs (:func:`personaminer.lineage.register_legacy`)
    that a new run may not extend: it must use a new name or ``--replace`` them. Returns what it did.
    """
    done: list[str] = []
    before = _tables(con)
    if "train_roles" in before and "roles" not in before:
        con.execute("ALTER TABLE train_roles RENAME TO roles")
        done.append("train_roles renamed to roles")
    for ddl in ALL:
        con.execute(ddl)
    for table, cols in ADDED_COLUMNS.items():
        for column, typ in cols.items():
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {typ}")
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
    version = int(row[0][0]) if row else (1 if before & {"actions"} else SCHEMA_VERSION)
    if version < SCHEMA_VERSION:
        from personaminer.lineage import register_legacy

        done += register_legacy(con)
        done.append(f"schema {version} -> {SCHEMA_VERSION}")
    con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    return done
