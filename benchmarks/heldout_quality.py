"""The held-out quality table of #22 (docs/training.md): every system on the same test users, paired.

    .venv/bin/python benchmarks/heldout_quality.py \\
        --workspace aol=runs/loop/ws/aol --workspace instacart=runs/loop/ws/instacart \\
        --workspace movielens=runs/loop/ws/movielens \\
        --system cluster=cluster@extractive --system base=compare:loop-base@extractive \\
        --system sft=compare:loop-sft@extractive --system listwise=compare:loop-listwise@extractive \\
        --reference cluster --reference sft [--judge embedding|llm] [--score] [--out table.json]

A *system* is a persona collection (``LABEL=COLLECTION``; the same collection name in every
workspace). For each workspace and pooled over all of them, on the users holding ``--role``
(default ``test``, from ``train roles``):

* **valid**: the share of users whose set (sample 0) exists and did not fail; a user without a
  set counts as failed, and how many were missing is reported, so a system run on fewer users
  cannot look better;
* **final (failed = 0)**: mean ± SE over all the users, a failed or missing set scoring 0 (the
  quantity the bar of #22 is stated in);
* **final** and each quality term over the valid sets, mean ± SE;
* **seconds per set**: wall seconds of the ``personas`` runs that built the collection's sets,
  divided by the sets they built (cached answers make a re-run cheaper, so this is read from the
  first build), where the runs table has them;
* **paired differences** against each ``--reference`` system: final (failed = 0) over all the
  users, and final over the users where both sets are valid, each with the mean, SE and a 95%
  confidence interval from Student's t with n - 1 degrees of freedom.

``--score`` first scores every unscored non-failed set of the systems' collections with the
chosen judge (the LLM judge runs the default 1.5B model: about 0.6 s per claim on 2 cores).
Without it, a set with no score under that judge's default config counts as unscored (reported,
and left out of the valid-set means; it still counts as valid in ``valid``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from scipy import stats as st

from personaminer import Workspace, tables
from personaminer.cli import llm_config
from personaminer.embed import MiniLMEmbedder
from personaminer.evaluate.split import load_roles
from personaminer.llm import make_llm
from personaminer.quality.scorer import TERMS, QualityConfig, run_scores, score_output
from personaminer.stats import describe

COLUMNS = ("final", *TERMS, "n_personas")


def ci95(d: dict[str, Any]) -> list[float] | None:
    """A 95% t interval of a mean from :func:`describe` (None below two values)."""
    if d["se"] is None or d["n"] < 2:
        return None
    h = float(st.t.ppf(0.975, d["n"] - 1)) * d["se"]
    return [d["mean"] - h, d["mean"] + h]


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """``a - b`` over the users both have a value for, with its 95% CI."""
    common = sorted(set(a) & set(b))
    d = describe([a[u] - b[u] for u in common])
    return {**d, "ci95": ci95(d)}


def seconds_per_set(con: Any, collection: str) -> float | None:
    rows = con.execute("SELECT summary FROM runs WHERE command = 'personas' AND status = 'ok'").fetchall()
    secs = built = 0.0
    for (summary,) in rows:
        s = json.loads(summary) if summary else {}
        if s.get("collection") == collection and s.get("sets"):
            secs += float(s.get("seconds") or 0.0)
            built += float(s["sets"])
    return secs / built if built else None


def system_rows(ws: Workspace, users: list[str], collection: str, judge: str, key: str) -> dict[str, Any] | None:
    """Per user: status (valid / failed / missing) and the score values of its sample-0 set; None
    when the workspace holds no set of the collection at all (the system was not run there)."""
    by_user = tables.personas.collection_sets(ws.con, collection)
    if not by_user:
        return None
    ids = {u: by_user[u][0] for u in users if u in by_user}
    status = tables.personas.statuses(ws.con, list(ids.values()))
    scored = {s: v for s, _, _, v in tables.scores.values_of(ws.con, list(ids.values()), judge, key)}
    out: dict[str, Any] = {}
    for u in users:
        if u not in ids:
            out[u] = {"status": "missing", "values": None}
        elif status.get(ids[u]) == "failed":
            out[u] = {"status": "failed", "values": None}
        else:
            out[u] = {"status": "valid", "values": scored.get(ids[u]), "set_id": ids[u]}
    return out


def summarize(rows: dict[str, Any]) -> dict[str, Any]:
    valid = [u for u, r in rows.items() if r["status"] == "valid"]
    scored = [u for u in valid if rows[u]["values"] is not None]
    final_all = {u: (float(rows[u]["values"]["final"]) if u in scored else 0.0) for u in rows
                 if rows[u]["status"] != "valid" or u in scored}
    out: dict[str, Any] = {
        "users": len(rows), "valid": describe([float(r["status"] == "valid") for r in rows.values()]),
        "failed": sum(r["status"] == "failed" for r in rows.values()),
        "missing": sum(r["status"] == "missing" for r in rows.values()),
        "unscored": len(valid) - len(scored), "final_all": describe(final_all.values())}
    for c in COLUMNS:
        vals = [rows[u]["values"].get(c) for u in scored]
        out[c] = describe(None if v is None else float(v) for v in vals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", action="append", required=True, help="NAME=PATH (repeatable).")
    ap.add_argument("--system", action="append", required=True, help="LABEL=COLLECTION (repeatable).")
    ap.add_argument("--reference", action="append", default=[], help="A system LABEL to pair against (repeatable).")
    ap.add_argument("--role", default="test")
    ap.add_argument("--judge", choices=("embedding", "llm"), default="embedding")
    ap.add_argument("--judge-model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--score", action="store_true", help="Score the unscored sets of the systems first.")
    ap.add_argument("--out", type=Path, default=None, help="Write the table as JSON here.")
    args = ap.parse_args()
    workspaces = dict(w.split("=", 1) for w in args.workspace)
    systems = dict(s.split("=", 1) for s in args.system)
    if bad := [r for r in args.reference if r not in systems]:
        ap.error(f"--reference {', '.join(bad)}: not a --system label ({', '.join(systems)})")

    quality = QualityConfig(judge=args.judge)
    embedder = MiniLMEmbedder()  # the scores' config key names the embedder and the judge model
    llm = make_llm(llm_config("llamacpp", args.judge_model, None, None)) if args.judge == "llm" else None
    report: dict[str, Any] = {"role": args.role, "judge": args.judge, "systems": systems, "workspaces": {}}
    pooled: dict[str, dict[str, Any]] = {label: {} for label in systems}
    try:
        for name, path in workspaces.items():
            with Workspace(Path(path)) as ws:
                users = sorted(u for u, r in load_roles(ws).items() if r == args.role)
                if not users:
                    raise SystemExit(f"no {args.role} users in {path} (run `personaminer train roles` first)")
                if args.score:
                    for collection in systems.values():
                        run_scores(ws, quality, embedder=embedder, llm=llm, where={"collection": collection}, progress=True)
                key = score_output(quality, embedder=embedder, llm=llm).fingerprint
                per = {label: rows for label, c in systems.items()
                       if (rows := system_rows(ws, users, c, args.judge, key)) is not None}
                report["workspaces"][name] = tables_for(per, args.reference, users=len(users))
                report["workspaces"][name]["not_run"] = [label for label in systems if label not in per]
                for label, rows in per.items():
                    pooled[label].update({f"{name}/{u}": r for u, r in rows.items()})
                    report["workspaces"][name]["systems"][label]["seconds_per_set"] = seconds_per_set(
                        ws.con, systems[label])
    finally:
        if llm is not None:
            llm.close()
    report["pooled"] = tables_for({k: v for k, v in pooled.items() if v}, args.reference,
                                  users=max(len(v) for v in pooled.values()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    for name, t in [*report["workspaces"].items(), ("pooled", report["pooled"])]:
        print(markdown(name, t, args.judge))


def tables_for(per: dict[str, dict[str, Any]], references: list[str], *, users: int) -> dict[str, Any]:
    out: dict[str, Any] = {"users": users, "systems": {label: summarize(rows) for label, rows in per.items()},
                           "paired": {}}
    for ref in references:
        for label, rows in per.items():
            if label == ref or ref not in per:
                continue
            out["paired"][f"{label} - {ref}"] = {"final_all": paired(_final_all(rows), _final_all(per[ref])),
                                                 "final": paired(_final(rows), _final(per[ref]))}
    return out


def _final(rows: dict[str, Any]) -> dict[str, float]:
    return {u: float(r["values"]["final"]) for u, r in rows.items() if r["status"] == "valid" and r["values"]}


def _final_all(rows: dict[str, Any]) -> dict[str, float]:
    out = {u: 0.0 for u, r in rows.items() if r["status"] != "valid"}
    return {**out, **_final(rows)}


def _fmt(d: dict[str, Any]) -> str:
    if d.get("mean") is None or (isinstance(d["mean"], float) and math.isnan(d["mean"])):
        return "-"
    return f"{d['mean']:.3f} ± {d['se']:.3f}" if d.get("se") is not None else f"{d['mean']:.3f}"


def markdown(name: str, t: dict[str, Any], judge: str) -> str:
    head = ["system", "valid", "final (failed = 0)", *COLUMNS, "s/set"]
    lines = [f"\n### {name}: {t['users']} users, {judge} judge", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    if t.get("not_run"):
        lines.insert(1, f"(not run here: {', '.join(t['not_run'])})")
    for label, s in t["systems"].items():
        note = "".join(f", {s[k]} {k}" for k in ("missing", "unscored") if s[k])
        sec = s.get("seconds_per_set")
        label = f"{label} (n={s['users']})" if s["users"] != t["users"] else label
        lines.append(f"| {label} | {s['valid']['mean']:.2f} ({s['users'] - s['failed'] - s['missing']}/{s['users']}"
                     f"{note}) | {_fmt(s['final_all'])} | " + " | ".join(_fmt(s[c]) for c in COLUMNS)
                     + f" | {'-' if sec is None else f'{sec:.0f}'} |")
    if t["paired"]:
        lines += ["", "| paired difference | final (failed = 0) [95% CI], n | final, valid both [95% CI], n |",
                  "|---|---|---|"]
        for pair, d in t["paired"].items():
            cells = []
            for k in ("final_all", "final"):
                x = d[k]
                ci = "" if x["ci95"] is None else f" [{x['ci95'][0]:+.3f}, {x['ci95'][1]:+.3f}]"
                cells.append("-" if x["mean"] is None else f"{x['mean']:+.3f}{ci}, {x['n']}")
            lines.append(f"| {pair} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
