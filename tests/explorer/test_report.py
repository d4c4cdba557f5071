"""The explorer over a real MovieLens workspace: real memories, cluster sets (labels from a fake
labeller), real embedding-judge scores; the pages say what the tables hold."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

from personaminer import Workspace
from personaminer.charts import histogram, timeline
from personaminer.explorer import ReportConfig, build_report, user_page


def test_pages_hold_what_the_tables_hold(movielens_report) -> None:  # type: ignore[no-untyped-def]
    from personaminer import tables

    ws_path, out, users, summary = movielens_report
    assert summary["user_pages"] == 3 and summary["users_listed"] == 943 and summary["scored_sets"] == 3
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "cluster@extractive" in index and "embedding" in index and "<svg" in index
    assert "No evaluation yet" in index
    listing = (out / "users.html").read_text(encoding="utf-8")
    assert listing.count('href="u/') == 3 and listing.count("<tr>") == 1 + 943
    with Workspace(ws_path, read_only=True) as ws:
        for u in users:
            page = (out / user_page(u)).read_text(encoding="utf-8")
            [s] = tables.explorer.user_sets(ws.con, u)
            anchors = set(re.findall(r'id="([^"]+)"', page))
            for p in s["personas"]:
                assert unescape(p["label"]) in unescape(page)
                mems = tables.explorer.memories(ws.con, p["evidence"])
                for mid, m in mems.items():
                    assert f"s0-{mid}" in anchors  # each evidence memory is on the page ...
                    block = page.split(f'id="s0-{mid}"', 1)[1].split("</details>", 1)[0]
                    acts = tables.explorer.actions(ws.con, list(m["action_ids"])[:3])
                    for a in acts.values():  # ... with its first actions, their kind, text and rating
                        assert unescape(a["text"]) in unescape(block) and a["kind"] in block
                        assert f"rating {a['attrs']['rating']}" in block
                    if len(m["action_ids"]) > 3:
                        assert f"{len(m['action_ids']) - 3} more actions" in block
            # every claim verdict is listed, and its evidence links land on this page
            claims = tables.explorer.claim_verdicts(ws.con, [s["set_id"]])
            assert claims and page.count('<tr class="ok">') + page.count('<tr class="bad">') == len(claims)
            assert set(re.findall(r'href="#([^"]+)"', page)) <= anchors


def test_a_second_report_replaces_the_first(movielens_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws_path, _, users, _ = movielens_report
    with Workspace(ws_path, read_only=True) as ws:
        build_report(ws, tmp_path, progress=False)
        assert len(list((tmp_path / "u").glob("*.html"))) == 3
        build_report(ws, tmp_path, ReportConfig(max_users=1), progress=False)
    assert [p.name for p in (tmp_path / "u").glob("*.html")] == [user_page(sorted(users)[0])[2:]]
    with pytest.raises(ValueError, match="max_users"):
        ReportConfig(max_users=-1)


def test_charts_escape_and_count() -> None:
    import datetime as dt

    h = histogram([0.05, 0.5, 0.55, 1.0, float("nan")], bins=2, title="<b>")
    assert "&lt;b&gt;" in h and "<b>" not in h and "0.0 to 0.5: 1" in h and "0.5 to 1.0: 3" in h
    d = dt.date(2020, 1, 1)
    t = timeline([(d, 2), (d + dt.timedelta(days=3), 4)], [("<i>\u202e", [d])])
    assert "&lt;i&gt;\\u202e" in t and "\u202e" not in t and "2020-01-04: 4 actions" in t


def test_quality_and_evaluation_charts(tmp_path: Path) -> None:
    """The charts ``score`` and ``evaluate`` write: one group per builder / protocol, bars in the
    order asked, intervals drawn, labels escaped, a standalone SVG file (nothing for no data)."""
    from xml.etree import ElementTree

    from personaminer import charts

    builders = {"<cluster>": {"sets": 3, "final": {"mean": 0.8, "se": 0.05, "n": 3},
                              "cohesion": {"mean": 0.5, "se": None, "n": 1}, "alignment": {"mean": None, "n": 0}},
                "single": {"sets": 2, "final": {"mean": 0.4, "se": 0.1, "n": 2}}}
    q = charts.quality_chart(builders, title="q")
    assert "&lt;cluster&gt;: 3 sets" in q and "<cluster>" not in q and "single: 2 sets" in q
    assert "final (n=3): 0.800" in q and "cohesion: 0.500" in q and "alignment" not in q
    assert q.count("<line") == 2  # an interval where a standard error exists: both finals, not cohesion
    report = {"results": {"hard": {"all": {"a": {"hit@10": {"mean": 0.2, "ci95": [0.1, 0.3]}},
                                           "b": {"hit@10": {"mean": 0.6, "ci95": None}}}},
                          "full": {"all": {}}}}
    e = charts.evaluation_chart(report)
    assert "hard: HR@10" in e and "full: HR@10" not in e and e.index("b: 60.0%") < e.index("a: 20.0%")
    path = charts.write(tmp_path / "e.svg", e)
    assert path is not None and ElementTree.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert charts.write(tmp_path / "none.svg", charts.evaluation_chart({"results": {}})) is None
    assert not (tmp_path / "none.svg").exists()
