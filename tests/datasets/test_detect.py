"""Format detection and whole-input errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from personaminer import ingest
from personaminer.datasets import InputError, detect_format, make_adapter


def test_detects_the_shared_datasets(aol_tar: Path, aol_user_file: Path, merrec_csv: Path, instacart_dir: Path,
                                     movielens_dir: Path) -> None:
    assert detect_format(aol_tar) == "aol"
    assert detect_format(aol_user_file) == "aol"
    assert detect_format(aol_user_file.parent) == "aol"
    assert detect_format(merrec_csv) == "merrec"
    assert detect_format(instacart_dir) == "instacart"
    assert detect_format(instacart_dir / "orders_products_sample.csv") == "instacart"
    assert detect_format(movielens_dir) == "movielens"
    assert detect_format(movielens_dir / "ml-100k.inter") == "movielens"


def test_generic_detection(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("u,t,x\n1,2,3\n")
    (tmp_path / "a.jsonl").write_text('{"u": 1}\n')
    (tmp_path / "a.tsv").write_text("u\tt\n")
    assert detect_format(tmp_path / "a.csv") == "csv"
    assert detect_format(tmp_path / "a.jsonl") == "jsonl"
    assert detect_format(tmp_path / "a.tsv") == "tsv"
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(tmp_path / "x.bin")


def test_missing_empty_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        ingest(tmp_path / "nope.csv", tmp_path / "ws", progress=False)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        ingest(tmp_path / "empty.csv", tmp_path / "ws", format="csv", mapping={"user_id": "a"}, progress=False)
    with pytest.raises(InputError, match="unknown format"):
        make_adapter("xml", tmp_path / "empty.csv")


def test_unreadable_file(tmp_path: Path) -> None:
    import os

    path = tmp_path / "locked.csv"
    path.write_text("u,t,x\n")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything
        pytest.skip("running as root: permissions do not block reads")
    with pytest.raises(InputError, match="cannot read"):
        ingest(path, tmp_path / "ws", format="csv", mapping={"user_id": "u", "ts": "t", "text": "x"}, progress=False)


def test_wrong_format_choice_is_caught(merrec_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="looks like --format merrec"):
        ingest(merrec_csv, tmp_path / "ws", format="aol", progress=False)
