"""The explorer in a real browser: headless Chromium (Debian's package) opens the pages from
file://, under their Content-Security-Policy. Skipped, saying why, where Chromium is absent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from personaminer.explorer import user_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=120, check=False)


def test_pages_load_from_file_with_their_script_and_no_csp_violation(movielens_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, out, users, _ = movielens_report
    for page in ("index.html", "users.html", user_page(users[0])):
        proc = _chromium("--dump-dom", (out / page).resolve().as_uri(), tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = proc.stdout
        assert 'data-script="on"' in dom, (page, proc.stderr[-2000:])  # our script ran under the CSP
        assert "Content Security Policy" not in proc.stderr and "Refused to" not in proc.stderr, proc.stderr[-2000:]
        assert dom.count("<script") == 1  # ours, nothing else became a script
    shot = tmp_path / "user.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1200,1600", (out / user_page(users[0])).resolve().as_uri(),
                     tmp=tmp_path)
    assert proc.returncode == 0 and shot.stat().st_size > 10_000, proc.stderr[-2000:]
