"""The corruption corpus (``corpus.py``): every kind of broken input gets exactly its verdict.

Each kind is built at test time from copies of the shared data and states independently what a
correct ingest does with it: which good actions must be stored (the clean twin's, by id), which
quarantine rows must appear (reason, line, row number), or which one-line error must refuse it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.corpus import KINDS, Sources, run_kind

NEEDS = {"aol": "aol_top1000_users", "merrec": "merrec_head_sample", "instacart": "instacart_593_users",
         "movielens": "movielens_100k"}


@pytest.fixture(scope="module")
def sources() -> Sources:
    return Sources()


def test_the_corpus_is_large_and_covers_every_adapter() -> None:
    prefixes = {name.split(":")[0] for name in KINDS}
    assert len(KINDS) >= 40
    assert {"csv", "tsv", "jsonl", "parquet", "aol", "merrec", "instacart", "movielens", "input"} <= prefixes


@pytest.mark.parametrize("name", list(KINDS))
def test_kind(name: str, sources: Sources, tmp_path: Path) -> None:
    dataset = NEEDS.get(name.split(":")[0], "aol_top1000_users")
    if dataset not in sources.available():
        pytest.skip(f"real dataset {dataset} not found under {sources.root} (set PERSONAMINER_SHARED_DATASETS)")
    outcome = run_kind(name, sources, tmp_path)
    assert outcome.verdict == "correct", f"{name}: {outcome.verdict}: {outcome.detail}"
