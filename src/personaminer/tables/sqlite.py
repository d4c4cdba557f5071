"""The small SQLite stores beside a workspace: the LLM answer cache and the embedding cache.

One file each, in WAL mode, safe across processes and threads: :class:`SqliteStore` holds the
connection, a lock, and the one write path (``BEGIN IMMEDIATE`` ... ``COMMIT``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class SqliteStore:
    """A SQLite file with ``schema`` (one ``CREATE TABLE IF NOT EXISTS``) and a lock around every use."""

    def __init__(self, path: str | os.PathLike[str], schema: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=60000")
        self._conn.execute(schema)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``sql`` once per row, in one ``IMMEDIATE`` transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, [tuple(r) for r in rows])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
