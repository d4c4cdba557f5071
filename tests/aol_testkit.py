"""Real AOL queries for tests, read from ``../shared/datasets`` at test time (never copied)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

AOL_TAR = Path(os.environ.get("PERSONAMINER_AOL_TAR", str(Path(os.environ.get("PERSONAMINER_SHARED_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "aol_top1000_users" / "user_search_logs.tar.gz")))


def aol_queries(user_id: str, keyword: str | None = None, k: int = 10) -> list[str]:
    """Up to ``k`` distinct queries of one AOL user (optionally containing ``keyword``), in time order."""
    if not AOL_TAR.is_file():
        pytest.skip(f"real AOL data not found at {AOL_TAR}")
    with tarfile.open(AOL_TAR, "r:gz") as tar:
        member = tar.extractfile(f"user_search_logs/{user_id}.txt")
        assert member is not None
        text = member.read().decode("utf-8", errors="replace")
    out: list[str] = []
    for record in text.split("\n\n"):
        first = record.strip().split("\n")[0]
        if "\t" not in first:
            continue
        query = first.split("\t")[0].strip()
        if query and query not in out and (keyword is None or keyword in query):
            out.append(query)
        if len(out) >= k:
            break
    return out
