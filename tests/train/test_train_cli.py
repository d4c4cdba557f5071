"""``personaminer train fit`` through the CLI on the tiny model, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personaminer.cli import app

from .train_testkit import synthetic_groups

pytest.importorskip("peft", reason="the train extra is not installed")

runner = CliRunner()


def _require_tiny() -> None:
    from personaminer.train.hf import load_tokenizer

    try:
        load_tokenizer("tiny")
    except Exception as e:  # noqa: BLE001 - the tiny model borrows SmolLM2's tokenizer
        pytest.skip(f"SmolLM2 tokenizer not installed: {e}")


def test_train_fit_tiny(tmp_path: Path) -> None:
    _require_tiny()
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


def test_train_sft_then_fit_from_its_adapter_tiny(tmp_path: Path) -> None:
    _require_tiny()
    groups = synthetic_groups(tmp_path / "groups.jsonl")
    verified = tmp_path / "verified.jsonl"
    verified.write_text("".join(json.dumps({**g, "candidates": g["candidates"][:1]}) + "\n"
                                for g in map(json.loads, groups.read_text().splitlines())))
    r = runner.invoke(app, ["train", "sft", str(verified), "--out", str(tmp_path / "sft"), "--model", "tiny",
                            "--max-steps", "2", "--sets-per-step", "2", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "sft" / "summary.json").read_text())["config"]["loss"] == "sft"
    r = runner.invoke(app, ["train", "fit", str(groups), "--out", str(tmp_path / "dpo"), "--model", "tiny",
                            "--max-steps", "2", "--groups-per-step", "2", "--device", "cpu",
                            "--init-adapter", str(tmp_path / "sft" / "adapter")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "dpo" / "summary.json").read_text())
    assert s["config"]["init_adapter"] == str(tmp_path / "sft" / "adapter")
    r = runner.invoke(app, ["train", "fit", str(groups), "--out", str(tmp_path / "x"), "--init-adapter",
                            str(tmp_path)])
    assert r.exit_code != 0 and "PEFT adapter" in str(r.exception or r.output)
    r = runner.invoke(app, ["train", "verified", "-w", str(tmp_path / "ws")])
    assert r.exit_code != 0 and "roles" in str(r.exception or r.output)
