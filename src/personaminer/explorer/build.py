"""``personaminer report``: a self-contained, offline explorer of a workspace (static HTML).

The output folder holds ``index.html`` (overview), ``users.html`` (every user, searchable and
sortable), one page per user under ``u/`` and ``assets/`` (one stylesheet, one script). No CDN, no
server, no inline script or style: every page carries a strict Content-Security-Policy
(``default-src 'none'``; style and script from the report's own files only) and works from
``file://``. Charts are inline SVG (:mod:`personaminer.charts`).

Everything taken from logs (queries, item texts, summaries, labels, descriptions, claims, user ids)
is escaped by Jinja2's autoescape, after its control and bidi characters are written as visible
escapes (``\u202e``, as on the terminal: a bidi override could reorder what the reader sees);
user pages are named by a hash of the user id, never by the id
itself; the script reorders and hides table rows and never writes HTML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from personaminer import charts, stats, tables, terminal
from personaminer.store import Workspace

#: The set-level terms shown, in this order (those a score does not have are left out).
TERMS = ("final", "cohesion", "alignment", "truthfulness", "specificity", "distinctness", "abstraction",
         "coverage", "mean_p_yes")
#: The persona-level terms shown under each persona.
PERSONA_TERMS = ("alignment", "truthfulness", "specificity", "distinctness", "cohesion", "mean_p_yes")


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows.

    max_users: user pages written (users with persona sets first, then by user id); ``None``: all.
        Every user is still listed in ``users.html``.
    all_users: a page also for users with neither memories nor persona sets (their activity only).
    max_actions: actions shown under each evidence memory (the rest counted).
    max_runs: rows of the run history.
    """

    max_users: int | None = None
    all_users: bool = False
    max_actions: int = 20
    max_runs: int = 100

    def __post_init__(self) -> None:
        if self.max_users is not None and self.max_users < 0:
            raise ValueError("max_users must be >= 0")
        if self.max_actions < 1:
            raise ValueError("max_actions must be >= 1")


def user_page(user_id: str) -> str:
    """The user's page, relative to the report folder: a hash of the id (ids are untrusted text)."""
    return f"u/{hashlib.sha256(user_id.encode('utf-8')).hexdigest()[:16]}.html"


def _env() -> Environment:
    # finalize: every plain string printed gets its control and bidi characters written as visible
    # escapes (terminal.visible) before autoescape; Markup (the charts) is built escaped already.
    env = Environment(loader=PackageLoader("personaminer.explorer", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                      lstrip_blocks=True, finalize=lambda v: terminal.visible(v) if type(v) is str else v)
    env.filters["num"] = lambda v, d=3: "-" if v is None or (isinstance(v, float) and v != v) else f"{v:.{d}f}"
    env.filters["short"] = lambda v: (v[:12] + "…") if isinstance(v, str) and len(v) > 24 and all(
        c in "0123456789abcdef" for c in v) else v
    # a score config's fingerprint, cut to 9 characters: enough to tell two configs of one judge apart
    env.filters["key"] = lambda v: (v[:9] + "…") if isinstance(v, str) and len(v) > 10 else (v or "")
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.1f}"
    env.filters["jsonattrs"] = lambda a: ", ".join(f"{k} {v}" for k, v in sorted((a or {}).items())
                                                   if v is not None and k in ("rating", "price", "event", "event_type",
                                                                              "category", "department", "aisle", "reordered"))
    return env


def _quality(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (collection, builder, judge, config): n, each term's mean ± se, and a histogram of final."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["collection"], r["builder"], r["judge"], r["config_key"])].append(r)
    out = []
    for (coll, builder, judge, key), rs in sorted(groups.items()):
        vals = [{**r["values"], "final": r["final"]} for r in rs]
        terms = [t for t in TERMS if any(v.get(t) is not None for v in vals)]
        out.append({"collection": coll, "builder": builder, "judge": judge, "config_key": key, "n": len(rs),
                    "terms": {t: stats.mean_se([v.get(t) for v in vals]) for t in terms},
                    "hist": charts.histogram([r["final"] for r in rs], title=f"final, {coll}, {judge} judge")})
    return out


def _quality_charts(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Per judge, the quality terms per collection as one chart (the chart ``score`` writes)."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = r["config_key"] or ""
        by[r["judge"]][f"{r['collection']} ({r['builder']}) · {key[:9]}"].append({**r["values"], "final": r["final"]})
    out = []
    for judge, groups in sorted(by.items()):
        builders = {name: {"sets": len(vals), **{t: stats.describe(v.get(t) for v in vals) for t in charts.QUALITY_TERMS}}
                    for name, vals in sorted(groups.items())}
        out.append((judge, charts.quality_chart(builders, title=f"quality terms per collection, {judge} judge")))
    return out


def _evaluation(path: Path) -> dict[str, Any] | None:
    """The latest ``evaluate`` report of the workspace as charts: HR@10 per system, per protocol."""
    if not path.exists():
        return None
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {"error": f"{path.name} could not be read: {exc}"}
    charts = [{"protocol": protocol, "chart": charts.evaluation_chart({"results": {protocol: groups}},
                                                                   title=f"HR@10, {protocol}")}
              for protocol, groups in (rep.get("results") or {}).items()]
    users = (rep.get("users") or {}).get("evaluated")
    return {"charts": charts, "users": users, "targets": (rep.get("targets") or {}).get("targets"),
            "seed": (rep.get("config") or {}).get("seed")}


def _user_context(ws: Workspace, user_id: str, config: ReportConfig) -> dict[str, Any]:
    con = ws.con
    sets = tables.explorer.user_sets(con, user_id)
    ids = [s["set_id"] for s in sets]
    scores = tables.explorer.set_scores(con, ids)
    pscores = tables.explorer.persona_scores(con, ids)
    verdicts = tables.explorer.claim_verdicts(con, ids)
    evidence = sorted({m for s in sets for p in s["personas"] for m in p["evidence"]}
                      | {m for s in sets for m in (s["unassigned"] or [])})
    mems = tables.explorer.memories(con, evidence)
    acts = tables.explorer.actions(con, [a for m in mems.values() for a in list(m["action_ids"])[:config.max_actions]])
    by_set: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scores:
        by_set[r["set_id"]].append(r)
    by_persona: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pscores:
        by_persona[r["persona_id"]].append(r)
    claims: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in verdicts:
        claims[r["persona_id"]].append(r)

    def memory(mid: str) -> dict[str, Any]:
        m = mems.get(mid)
        if m is None:
            return {"memory_id": mid, "missing": True}
        shown = [acts[a] for a in list(m["action_ids"])[:config.max_actions] if a in acts]
        return {**m, "actions": shown, "more": max(0, len(m["action_ids"]) - len(shown))}

    days = tables.explorer.activity_days(con, user_id)
    for i, s in enumerate(sets):
        s["anchor"] = f"s{i}"
        s["scores"] = by_set.get(s["set_id"], [])
        s["terms"] = [t for t in TERMS if any(r["values"].get(t) is not None or (t == "final" and r["final"] is not None)
                                              for r in s["scores"])]
        for p in s["personas"]:
            p["memories"] = [memory(mid) for mid in p["evidence"]]
            p["scores"] = by_persona.get(p["persona_id"], [])
            p["claims"] = claims.get(p["persona_id"], [])
        s["unassigned_memories"] = [memory(mid) for mid in (s["unassigned"] or [])]
        s["timeline"] = charts.timeline(days, [(p["label"], [m["day"] for m in p["memories"] if "day" in m])
                                            for p in s["personas"]],
                                     title=f"activity of user {user_id} and when each persona of {s['collection']} "
                                           "was active")
    return {"user_id": user_id, "sets": sets, "days": len(days),
            "actions": sum(n for _, n in days), "first": days[0][0] if days else None,
            "last": days[-1][0] if days else None}


def _assets(out: Path) -> None:
    dest = out / "assets"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("report.css", "report.js"):
        src = resources.files("personaminer.explorer").joinpath("static", name)
        with resources.as_file(src) as p:
            shutil.copyfile(p, dest / name)


def build_report(ws: Workspace, out: str | Path, config: ReportConfig | None = None, *,
                 progress: bool = True) -> dict[str, Any]:
    """Write the explorer of ``ws`` to ``out`` (created; files of an earlier report are replaced).
    Returns a summary: pages written, users listed, where ``index.html`` is."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    config = config or ReportConfig()
    out = Path(out)
    (out / "u").mkdir(parents=True, exist_ok=True)
    for stale in (out / "u").glob("*.html"):  # pages of an earlier report (another workspace or sample)
        stale.unlink()
    _assets(out)
    env = _env()
    con = ws.con
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    common = {"generated": generated, "workspace": str(ws.path)}

    users = tables.explorer.users(con)
    all_scores = tables.explorer.scores(con)
    best: dict[str, float] = {}
    for r in all_scores:
        if r["final"] is not None and r["final"] > best.get(r["user_id"], -1.0):
            best[r["user_id"]] = r["final"]
    personas_per_user = tables.explorer.personas_per_user(con)
    for r in users:
        r["personas"] = personas_per_user.get(r["user_id"])
        r["best"] = best.get(r["user_id"])
    paged = [r["user_id"] for r in sorted(users, key=lambda r: (r["personas"] is None, r["user_id"]))
             if r["personas"] is not None or r.get("memories") or config.all_users]
    if config.max_users is not None:
        paged = paged[:config.max_users]
    pages = set(paged)
    for r in users:
        r["page"] = user_page(r["user_id"]) if r["user_id"] in pages else None

    overview = {
        **common, "counts": tables.explorer.stage_counts(con), "memory_sets": tables.explorer.memory_sets(con),
        "collections": tables.explorer.collections(con), "quality": _quality(all_scores),
        "quality_charts": _quality_charts(all_scores),
        "evaluation": _evaluation(ws.path / "reports" / "evaluate.json"), "runs": tables.explorer.runs(con, config.max_runs),
        "n_users": len(users), "n_pages": len(pages)}
    (out / "index.html").write_text(env.get_template("index.html.j2").render(**overview), encoding="utf-8")
    (out / "users.html").write_text(env.get_template("users.html.j2").render(**common, users=users), encoding="utf-8")
    page = env.get_template("user.html.j2")
    with terminal.progress(TextColumn("report"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           disable=not progress) as bar:
        task = bar.add_task("users", total=len(paged))
        for uid in paged:
            (out / user_page(uid)).write_text(page.render(**common, **_user_context(ws, uid, config), root="../"),
                                              encoding="utf-8")
            bar.advance(task)
    return {"index": str(out / "index.html"), "users_listed": len(users), "user_pages": len(paged),
            "persona_sets": overview["counts"]["persona sets"], "scored_sets": overview["counts"]["scored sets"]}
