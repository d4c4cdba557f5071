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
