"""The CLI end to end, through the installed entry point's code (typer's runner)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from personaminer.cli import app

runner = CliRunner()


def test_ingest_info_users(merrec_csv: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = runner.invoke(app, ["ingest", str(merrec_csv), "-w", str(ws), "-q"])
    assert r.exit_code == 0, r.output
    assert "format: merrec (auto-detected" in r.output
    r = runner.invoke(app, ["info", "-w", str(ws), "--json"])
    assert r.exit_code == 0 and '"actions": 1233' in r.output
    r = runner.invoke(app, ["users", "-w", str(ws)])
    assert r.output.split() == ["211", "212", "213", "45", "50", "56", "79"]
    for name in ("ingest", "info", "users"):
        assert json.loads((ws / "reports" / f"{name}.json").read_text())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from personaminer.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_errors_are_one_line_without_traceback(merrec_csv: Path, tmp_path: Path) -> None:
    cases = [
        ["ingest", str(tmp_path / "missing.csv"), "-w", str(tmp_path / "ws")],
        ["ingest", str(merrec_csv), "-f", "aol", "-w", str(tmp_path / "ws")],
        ["ingest", str(merrec_csv), "-f", "csv", "--map", "user_id=user_id", "--map", "ts=stime",
         "--map", "text=nope", "-w", str(tmp_path / "ws")],
        ["ingest", str(merrec_csv), "--map", "oops", "-w", str(tmp_path / "ws")],
    ]
    for args in cases:
        r = _cli(*args)
        assert r.returncode == 1, (args, r.stderr)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_strict_exit_code(merrec_csv: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = merrec_csv.read_bytes().split(b"\n")
    lines[2] = lines[2] + b",x"
    bad.write_bytes(b"\n".join(lines))
    r = _cli("ingest", str(bad), "--strict", "-q", "-w", str(tmp_path / "ws"))
    assert r.returncode == 1 and "--strict" in r.stderr
    r = _cli("ingest", str(bad), "-q", "-w", str(tmp_path / "ws"))
    assert r.returncode == 0 and "wrong column count" in r.stdout


def _scripted_model():  # type: ignore[no-untyped-def]
    """One fake model for every stage of the demo: segments of two steps, halves as personas, labels
    that echo a cluster's first memory, a judge that says yes."""
    from tests.fakes import ScriptedLLM, hybrid_memories, persona_model, segmenter

    hybrid = hybrid_memories(0.5).script
    personas = persona_model().script
    return ScriptedLLM({"intent_memories": segmenter(size=2).script["intent_memories"],
                        "intent_boundary": hybrid["intent_boundary"], "intent_summary": hybrid["intent_summary"],
                        "persona_model": personas["persona_model"], None: personas[None],
                        "claim_judge": lambda req, i: 0.8}, model="fake-demo")


def test_memories_score_and_audit_commands(aol_memory_copy, embedder) -> None:  # type: ignore[no-untyped-def]
    from personaminer import Workspace
    from personaminer.personas import PersonaConfig, run_personas
    from tests.fakes import persona_model

    path, users = aol_memory_copy(4, 5, 10)
    ws = str(path)
    r = runner.invoke(app, ["memories", "-w", ws, "--mode", "extractive", "--set", "x", "--max-days", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert "coverage check" in r.output and "ok" in r.output and "fingerprint" in r.output
    r = runner.invoke(app, ["memories", "-w", ws, "--mode", "extractive", "--set", "x", "--max-days", "3", "-q"])
    assert r.exit_code != 0 and "max_days: 2 -> 3" in str(r.exception)
    with Workspace(path) as w:
        run_personas(w, users, PersonaConfig(memory_set="extractive"), embedder=embedder, llm=persona_model(),
                     progress=False)
    r = runner.invoke(app, ["score", "-w", ws, "--judge", "embedding", "-q"])
    assert r.exit_code == 0, r.output
    assert "persona quality (embedding judge)" in r.output and "model" in r.output
    r = runner.invoke(app, ["audit", users[0], "-w", ws, "--judge", "embedding"])
    assert r.exit_code == 0, r.output
    assert "P(Yes)=" in r.output and "evidence the judge saw" in r.output
    r = runner.invoke(app, ["audit", users[0], "-w", ws, "--judge", "llm"])
    assert r.exit_code != 0 and "personaminer score --judge llm" in str(r.exception)


def test_demo_wiring(movielens_dir: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``demo`` runs its stages through the Python API: MovieLens in, cluster-then-label personas over
    extractive memories, LLM-judge scores, the explorer written, two users shown with several
    personas, their scores, claim verdicts and evidence."""
    import personaminer.datasets
    import personaminer.llm

    monkeypatch.setattr(personaminer.datasets, "fetch_movielens_100k", lambda: movielens_dir)
    monkeypatch.setattr(personaminer.llm, "make_llm", lambda cfg: _scripted_model())
    ws = tmp_path / "demo"
    r = runner.invoke(app, ["demo", "-w", str(ws)])
    assert r.exit_code == 0, r.output
    assert "ingest ml-100k" in r.output or "rows read" in r.output
    assert "persona quality (llm judge)" in r.output and "coverage check ok" in r.output
    assert r.output.count("| cluster@extractive |") == 2 and "About " in r.output
    assert "claims supported" in r.output and "✓" in r.output and "evidence:" in r.output
    assert "only 0 of" not in r.output and "final " in r.output
    assert (ws / "report" / "index.html").exists() and "explorer:" in r.output
    assert len(list((ws / "report" / "u").glob("*.html"))) == 2
    assert (ws / "reports" / "score.svg").exists() and "score.svg" in (ws / "reports" / "score.md").read_text()
    # the persona model over the hybrid LLM memories: the other path of the same command
    r = runner.invoke(app, ["demo", "-w", str(tmp_path / "demo2"), "--users", "1", "--memories", "llm",
                            "--builder", "model"])
    assert r.exit_code == 0, r.output
    assert "| model@llm |" in r.output and "First half" in r.output and "intent memories (llm)" in r.output
