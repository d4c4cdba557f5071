"""``personaminer show`` and ``export`` on real AOL memories (personas from a stand-in LLM)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from personaminer import Workspace
from personaminer.cli import app
from personaminer.personas import PersonaConfig, run_personas
from tests.fakes import persona_model

runner = CliRunner()


def test_show_and_export(ws_copy: tuple[Path, list[str]], embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, users = ws_copy
    with Workspace(path) as ws:
        run_personas(ws, users[:1], PersonaConfig(memory_set="extractive"), embedder=embedder, llm=persona_model(),
                     progress=False)
        first_action = ws.con.execute(
            "SELECT a.text FROM personas p, memories m, actions a WHERE m.memory_id = p.evidence[1] "
            "AND a.action_id = m.action_ids[1] AND p.position = 0").fetchall()[0][0]
    r = runner.invoke(app, ["show", users[0], "-w", str(path)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "First half" in r.output and "Second half" in r.output and "builder model" in r.output
    assert first_action[:40] in r.output  # memories are expanded down to their actions
    r = runner.invoke(app, ["show", "no-such-user", "-w", str(path)])
    assert r.exit_code != 0
    out = tmp_path / "p.parquet"
    r = runner.invoke(app, ["export", "-w", str(path), "--to", str(out)])
    assert r.exit_code == 0 and out.exists()
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert {t["label"] for t in table} == {"First half", "Second half"}
    assert all(t["evidence"] and t["evidence"][0]["action_ids"] for t in table)
    r = runner.invoke(app, ["export", "-w", str(path), "--to", str(tmp_path / "p.xml")])
    assert r.exit_code != 0
    json.dumps(table, default=str)
