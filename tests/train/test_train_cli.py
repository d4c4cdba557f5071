"""``personaminer train fit`` through the CLI on the tiny model, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personaminer.cli import app

pytest.importorskip("peft", reason="the train extra is not installed")

runner = CliRunner()


def test_train_fit_tiny(tmp_path: Path) -> None:
    from personaminer.train.hf import load_tokenizer

    from .train_testkit import synthetic_groups

    try:
        load_tokenizer("tiny")
    except Exception as e:  # noqa: BLE001 - the tiny model borrows SmolLM2's tokenizer
        pytest.skip(f"SmolLM2 tokenizer not installed: {e}")
    groups = synthetic_groups(tmp_path / "groups.jsonl")
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "fit", str(groups), "--out", str(out), "--model", "tiny", "--max-steps", "3",
                            "--groups-per-step", "2", "--loss", "softmax", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["config"]["loss"] == "softmax"
    assert len((out / "log.jsonl").read_text().splitlines()) == 3


def test_train_user_errors(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "fit", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "build-groups" in str(r.exception or r.output)
    (tmp_path / "g.jsonl").write_text("")
    r = runner.invoke(app, ["train", "fit", str(tmp_path / "g.jsonl"), "--out", str(tmp_path / "o"), "--loss", "nope"])
    assert r.exit_code != 0 and "listwise" in str(r.exception or r.output)
