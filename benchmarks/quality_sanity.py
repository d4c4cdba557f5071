"""Quality sanity check with the real LLM judge: per-term means, original vs each degradation, and the
reward-hacking check.

Usage::

    .venv/bin/python benchmarks/quality_sanity.py --workspace W [--workspace W2 ...] \
        [--builder cluster] [--collection NAME] [--per-workspace 10] [--judge llm] [--out report.json]

Reads real persona sets (sample 0, at least two personas) from each workspace (built by
``benchmarks/quality_workspaces.sh``: memories + personas), at most ``--per-workspace`` users from
each; degrades each set (``personaminer.quality.sanity``: "another user's text" comes from a user of
the same workspace) and prints, for every term, the mean over users of the original and of each
degradation and for how many users it dropped. A degradation must lower ``final`` and the terms
it targets for at least 95% of the users (``merged`` is exempt from ``final``); and every
degenerate set (:func:`personaminer.quality.sanity.hacks`) must score below the user's real set.
The exit status is 1 when a must-drop or the hacking check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.quality import QualityConfig, WorkspaceData, score_set
from personaminer.quality.sanity import DEGRADATIONS, HACKS, degrade, hacks
from personaminer.stats import mean

TERMS = ("final", "cohesion", "alignment", "truthfulness", "specificity", "distinctness", "abstraction",
         "mean_p_yes")
#: The terms each degradation must lower (besides final, for all but ``merged``).
EXPECTED = {"shuffle": ("alignment", "truthfulness"), "other_user": ("alignment", "truthfulness"),
            "invented_fact": ("truthfulness",), "merged": ("cohesion",), "generic_labels": ("specificity",),
            "duplicated": ("distinctness",), "overclaim": ("truthfulness",), "demographic": ("truthfulness",)}
REQUIRED_SHARE = 0.95


def _lower(o: dict[str, float], b: dict[str, float], t: str) -> bool:
    if math.isnan(o[t]) or math.isnan(b[t]):
        return False
    return b[t] < o[t] or (t == "truthfulness" and o[t] == b[t] == 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, action="append", required=True, help="Workspace folder (repeatable).")
    ap.add_argument("--builder", default="cluster")
    ap.add_argument("--collection", help="Only sets of this persona collection (default: any of the builder's).")
    ap.add_argument("--per-workspace", type=int, default=10)
    ap.add_argument("--judge", default="llm", choices=["llm", "embedding"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    llm = None
    if args.judge == "llm":
        from personaminer.llm import make_llm

        llm = make_llm()
    config = QualityConfig(judge=args.judge)
    t0 = time.perf_counter()
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in ("original", *DEGRADATIONS, *HACKS)}
    used: list[str] = []
    for path in args.workspace:
        with Workspace(path, read_only=True) as ws:
            sets = [r[0] for r in ws.con.execute(
                "SELECT set_id FROM persona_sets WHERE builder = ? AND sample_index = 0 "
                "AND n_personas >= 2 AND (CAST(? AS VARCHAR) IS NULL OR collection = ?) ORDER BY user_id",
                [args.builder, args.collection, args.collection]).fetchall()][:max(2, args.per_workspace)]
            if len(sets) < 2:
                print(f"{path}: {len(sets)} qualifying set(s), need 2 (another user's text); skipped")
                continue
            data = WorkspaceData(ws, embedder, config)
            contexts = {s: data.context(s) for s in sets}  # a second user gives "another user's text"
            for s in sets[:args.per_workspace]:
                ctx, text, _ = contexts[s]
                facts = data.set_facts(s)
                other = next(c[0].personas[0] for c in contexts.values() if c[0].user_id != ctx.user_id)

                def score(c, text=text, facts=facts):  # type: ignore[no-untyped-def]
                    return score_set(c, config, embedder=embedder, llm=llm, memory_text=text, facts=facts)[0]

                rows["original"].append(score(ctx))
                for kind in DEGRADATIONS:
                    rows[kind].append(score(degrade(ctx, kind, (other.label, other.description), embedder)))
                for kind, bad in hacks(ctx, text, embedder).items():
                    rows[kind].append(score(bad))
                print(f"  {len(rows['original'])} sets, {time.perf_counter() - t0:.0f} s", flush=True)
            used.append(f"{path} ({len(sets)})")
    n_users = len(rows["original"])
    print(f"{n_users} real persona sets (builder {args.builder}, >= 2 personas) from {', '.join(used)}; "
          f"{args.judge} judge; {time.perf_counter() - t0:.0f} s\n")
    print("| variant | " + " | ".join(TERMS) + " |")
    print("|---|" + "---|" * len(TERMS))
    for kind, vals in rows.items():
        cells = []
        for t in TERMS:
            m = mean([v.get(t) for v in vals])
            cell = "-" if m is None else f"{m:.3f}"
            if kind != "original":
                drops = sum(_lower(o, b, t) for o, b in zip(rows["original"], vals, strict=True))
                cell += f" ({drops}/{len(vals)} lower)"
            cells.append(cell)
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print()
    failures = 0
    report: dict[str, object] = {"users": n_users, "judge": args.judge, "checks": {}}
    for kind, terms in EXPECTED.items():
        need = terms if kind == "merged" else ("final", *terms)
        per = {t: sum(_lower(o, b, t) for o, b in zip(rows["original"], rows[kind], strict=True)) for t in need}
        ok = all(n >= REQUIRED_SHARE * n_users for n in per.values())
        failures += not ok
        report["checks"][kind] = {"lower": per, "ok": ok}  # type: ignore[index]
        print(f"{kind}: " + ", ".join(f"{t} lower for {n}/{n_users}" for t, n in per.items())
              + ("" if ok else f"  FAILED (need {REQUIRED_SHARE:.0%})"))
    for kind in HACKS:
        below = sum(b["final"] < o["final"] for o, b in zip(rows["original"], rows[kind], strict=True))
        ok = below == n_users
        failures += not ok
        report["checks"][kind] = {"below_real": below, "ok": ok}  # type: ignore[index]
        print(f"hack {kind}: final below the real set for {below}/{n_users}" + ("" if ok else "  FAILED"))
    # None: not measured (the distinctness of a one-persona set)
    report["means"] = {k: {t: mean([v.get(t) for v in vals]) for t in TERMS} for k, vals in rows.items()}
    report["rows"] = {k: [{t: v.get(t) for t in TERMS} for v in vals] for k, vals in rows.items()}  # per user
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if llm is not None:
        llm.close()
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
