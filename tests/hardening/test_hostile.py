"""Hostile log text is inert: through ingest, memories, a persona set, scores, and every command
that prints it (show, audit, info, users, errors, the progress bar) and export.

The commands run as a user runs them (``python -m personaminer``, a separate process), and the
test reads the exact bytes they wrote: no raw ESC, BEL, C1 control or bidi override may reach
the terminal, while the hostile text must still be *shown* (escaped), and exported unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hardening.corpus import COLS, GEN_MAP, Sources, write_csv

HOSTILE = [
    "\x1b[2J\x1b[31mOWNED",  # clear the screen, then red
    "\x1b]8;;http://evil.example/\x07click me",  # an OSC 8 hyperlink left open
    "\u202eevil\u202c reversed",  # right-to-left override
    "<script>alert(1)</script>",
    "[/] [bold]markup[/bold] [link=http://evil.example]x[/link]",
    "bell\x07 backspace\x08 delete\x7f c1-csi\x9b31m",
]
HOSTILE_USERS = ["\u202eu2", "\x1b[31mred-user[/]"]
#: Bytes that must never reach a terminal from the data (UTF-8 of C1 controls and bidi controls too).
FORBIDDEN = [b"\x1b", b"\x07", b"\x08", b"\x7f"] + [chr(c).encode() for c in range(0x80, 0xA0)] + [
    chr(c).encode() for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def _pm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    full_env.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run([sys.executable, "-m", "personaminer", *args], capture_output=True, env=full_env,
                          timeout=600, check=False)


def _assert_inert(proc: subprocess.CompletedProcess[bytes], what: str) -> bytes:
    out = proc.stdout + proc.stderr
    for b in FORBIDDEN:
        assert b not in out, f"{what}: raw {b!r} reached the terminal:\n{out[:2000]!r}"
    assert b"Traceback" not in out, f"{what}: a traceback:\n{out.decode(errors='replace')[-3000:]}"
    return out


@pytest.fixture(scope="module")
def hostile_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, bytes]]:
    """A workspace built from real AOL rows with hostile texts and user ids, by the CLI; the outputs."""
    src = Sources()
    if "aol_top1000_users" not in src.available():
        pytest.skip(f"real AOL data not found under {src.root}")
    tmp = tmp_path_factory.mktemp("hostile")
    rows = src.query_rows(30)
    for i, text in enumerate(HOSTILE):
        rows[3 * i + 1]["q"] = text
    for i, uid in enumerate(HOSTILE_USERS):
        for r in rows[20 + 5 * i: 25 + 5 * i]:
            r["uid"] = uid
    (tmp / "log\x1b[2J\u202e[").mkdir()
    path = write_csv(tmp / "log\x1b[2J\u202e[" / "].csv", rows, COLS)  # reads "log<ESC>[2J<RLO>[/].csv"
    ws = tmp / "ws'[/]"
    outs: dict[str, bytes] = {}
    mapping = [f"--map={k}={v}" for k, v in GEN_MAP.items()]
    proc = _pm("ingest", str(path), "-w", str(ws), "--format", "csv", *mapping)  # with its progress bar
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    outs["ingest"] = _assert_inert(proc, "ingest")
    proc = _pm("memories", "-w", str(ws), "--mode", "extractive", "-q")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    outs["memories"] = _assert_inert(proc, "memories")

    from personaminer import Workspace
    from personaminer.embed import MiniLMEmbedder
    from personaminer.personas import PersonaConfig, run_personas

    with Workspace(ws) as w:
        users = w.users()
        run_personas(w, users, PersonaConfig(builder="model", memory_set="extractive", min_personas=1),
                     embedder=MiniLMEmbedder(), llm=HostileLLM(), progress=False)
    proc = _pm("score", "-w", str(ws), "--judge", "embedding", "-q")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    outs["score"] = _assert_inert(proc, "score")
    return ws, users, outs


def HostileLLM():  # type: ignore[no-untyped-def]  # noqa: N802
    """A persona model that echoes log text into its labels, as a real model may do."""
    from tests.fakes import persona_model

    llm = persona_model(model="fake-hostile")
    honest = llm.script["persona_model"]

    def answer(req, calls):  # type: ignore[no-untyped-def]
        out = json.loads(honest(req, calls))
        for k, p in enumerate(out.get("personas", [])):
            p["label"] = HOSTILE[k % len(HOSTILE)]
            p["description"] = "Likes " + HOSTILE[(k + 1) % len(HOSTILE)] + "."
        return json.dumps(out)

    llm.script["persona_model"] = answer
    return llm


def test_every_console_surface_is_inert(hostile_ws: tuple[Path, list[str], dict[str, bytes]]) -> None:
    ws, users, outs = hostile_ws
    assert set(HOSTILE_USERS) <= set(users)
    for cmd in (["info"], ["users"]):
        proc = _pm(*cmd, "-w", str(ws))
        assert proc.returncode == 0
        outs[cmd[0]] = _assert_inert(proc, cmd[0])
    for uid in users:
        for cmd in (["show", uid], ["audit", uid, "--judge", "embedding"]):
            proc = _pm(*cmd, "-w", str(ws))
            assert proc.returncode == 0, proc.stderr.decode(errors="replace")
            outs[f"{cmd[0]} {uid!r}"] = _assert_inert(proc, f"{cmd[0]} {uid!r}")
    shown = b"".join(v for k, v in outs.items() if k.startswith("show"))
    # The hostile text is shown, visibly escaped, not dropped.
    assert b"\\x1b[2J\\x1b[31mOWNED" in shown and b"\\u202eevil" in shown and b"<script>alert(1)</script>" in shown
    assert b"[/] [bold]markup[/bold]" in shown
    assert b"\\u202eu2" in outs["users"] and b"\\x1b[31mred-user[/]" in outs["users"]


def test_errors_about_hostile_names_are_one_inert_line(hostile_ws: tuple[Path, list[str], dict[str, bytes]]) -> None:
    ws, _, _ = hostile_ws
    for cmd in (["show", "\x1b[2Jghost[/]"], ["memories", "--user", "ghost[/]\u202e", "--mode", "extractive"],
                ["audit", "\x07nobody"]):
        proc = _pm(*cmd, "-w", str(ws))
        assert proc.returncode == 1, (cmd, proc.stdout, proc.stderr)
        out = _assert_inert(proc, " ".join(cmd))
        assert out.decode().startswith("error:") and out.decode().count("\n") == 1, out


def test_styled_output_carries_no_hostile_sequence(hostile_ws: tuple[Path, list[str], dict[str, bytes]]) -> None:
    """With colours forced on, Rich's own escape codes are there, but none of the data's."""
    ws, users, _ = hostile_ws
    for uid in users:
        out = _pm("show", uid, "-w", str(ws), env={"FORCE_COLOR": "1"})
        data = out.stdout + out.stderr
        assert out.returncode == 0 and b"\x1b[" in data  # styled
        for seq in (b"\x1b[2J", b"\x1b]8;;http://evil", b"\x07", "\u202e".encode(), b"\x9b"):
            assert seq not in data, (uid, seq)


def test_export_keeps_the_text_and_escapes_it(hostile_ws: tuple[Path, list[str], dict[str, bytes]],
                                              tmp_path: Path) -> None:
    ws, _, _ = hostile_ws
    to = tmp_path / "it's [/]out.jsonl"
    proc = _pm("export", "-w", str(ws), "--to", str(to))
    assert proc.returncode == 0, proc.stderr
    _assert_inert(proc, "export")
    raw = to.read_bytes()
    for b in FORBIDDEN:
        assert b not in raw, b
    records = [json.loads(line) for line in raw.decode().splitlines()]
    labels = {r["label"] for r in records}
    assert labels == {HOSTILE[0], HOSTILE[1]}  # exact round trip (the fake model's first two personas)
    assert {r["description"] for r in records} == {f"Likes {HOSTILE[1]}.", f"Likes {HOSTILE[2]}."}
    summaries = " ".join(m["summary"] for r in records for m in r["evidence"])
    assert HOSTILE[5] in summaries or HOSTILE[4] in summaries or HOSTILE[3] in summaries
    pq = tmp_path / "out.parquet"
    assert _pm("export", "-w", str(ws), "--to", str(pq)).returncode == 0
    import pyarrow.parquet as pqm

    assert set(pqm.read_table(pq).column("label").to_pylist()) == labels


def test_export_path_cannot_inject_sql(hostile_ws: tuple[Path, list[str], dict[str, bytes]], tmp_path: Path) -> None:
    ws, _, _ = hostile_ws
    name = "inj.csv' (FORMAT CSV) --.jsonl"
    proc = _pm("export", "-w", str(ws), "--to", str(tmp_path / name))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the file it reported, as JSON
    first = (tmp_path / name).read_text().splitlines()[0]
    assert json.loads(first)["persona_id"]


def test_report_is_inert_html(hostile_ws: tuple[Path, list[str], dict[str, bytes]], tmp_path: Path) -> None:
    """``report`` over hostile text: every page escapes it (shown, never markup), carries the strict CSP,
    loads only its own script and stylesheet, and names user pages by a hash, never by the id."""
    import re

    from personaminer.explorer import user_page
    from personaminer.terminal import has_unsafe

    ws, users, _ = hostile_ws
    out = tmp_path / "rep<x>"
    proc = _pm("report", "-w", str(ws), "--out", str(out))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    _assert_inert(proc, "report")
    pages = sorted(out.rglob("*.html"))
    assert {p.relative_to(out).as_posix() for p in pages} == {"index.html", "users.html",
                                                              *(user_page(u) for u in users)}
    html = {p: p.read_text(encoding="utf-8") for p in pages}
    for p, h in html.items():
        assert "Content-Security-Policy" in h and "default-src 'none'" in h, p
        assert re.findall(r"<script\b[^>]*>", h) == [f'<script src="{"../" if p.parent.name == "u" else ""}'
                                                     'assets/report.js" defer>'], p
        assert not re.search(r"\son\w+\s*=|\sstyle\s*=|javascript:", h, re.I), p
        assert not has_unsafe(h), p  # no raw control or bidi character from the data
        assert "<script>alert(1)</script>" not in h, p
    everything = "".join(html.values())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in everything  # shown, escaped
    assert "\\u202eevil" in everything and "\\x1b[2J\\x1b[31mOWNED" in everything
    assert "\\u202eu2" in html[out / "users.html"]
    for u in users:  # every evidence link of a user page lands on an anchor of that page
        h = html[out / user_page(u)]
        targets = set(re.findall(r'href="#([^"]+)"', h))
        anchors = set(re.findall(r'id="([^"]+)"', h))
        assert targets and targets <= anchors, (u, targets - anchors)
        assert '<ul class="actions">' in h  # and each memory lists its actions


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium not installed (apt-get install chromium)")
def test_report_renders_hostile_text_as_text_in_a_browser(hostile_ws: tuple[Path, list[str], dict[str, bytes]],
                                                           tmp_path: Path) -> None:
    """Headless Chromium opens each hostile user's page from file://: our script runs, nothing else
    does (one script element, no alert), and the XSS strings are text nodes, not elements."""
    from html import escape

    from personaminer.explorer import user_page
    from personaminer.terminal import visible

    ws, users, _ = hostile_ws
    out = tmp_path / "rep"
    assert _pm("report", "-w", str(ws), "--out", str(out), "-q").returncode == 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    for u in users:
        proc = subprocess.run([str(browser), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
                               "--dump-dom", (out / user_page(u)).resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)
        dom = proc.stdout
        assert proc.returncode == 0 and 'data-script="on"' in dom, proc.stderr[-2000:]
        assert dom.count("<script") == 1 and "<img" not in dom.lower(), u
        assert "Refused to" not in proc.stderr and "alert" not in proc.stderr.lower(), proc.stderr[-2000:]
        if "Likes " in dom:  # a persona of this user: its hostile label and description are text nodes
            shown = [h for h in HOSTILE if escape(visible(h), quote=False) in dom]
            assert len(shown) >= 2, (u, shown)
