"""The table layer: the one place where personaminer's SQL lives.

Each module holds the typed read and write functions of a family of tables
(:mod:`~personaminer.tables.ddl` has every table's DDL); the stages, the CLI, evaluation and
training call these functions and write no SQL of their own. Writes that must land together are
wrapped by the caller in :meth:`personaminer.store.Workspace.transaction`. (The ingest pipeline's
DuckDB readers, :mod:`personaminer.ingest` and :mod:`personaminer.datasets`, are the other place
SQL is written: reading and validating input in bulk is what DuckDB is there for. The LLM and
embedding caches are separate SQLite files with their own small modules.)
"""

from personaminer.tables import actions, ddl, explorer, lineage, memories, personas, protocol, runs, scores

__all__ = ["actions", "ddl", "explorer", "lineage", "memories", "personas", "protocol", "runs", "scores"]
