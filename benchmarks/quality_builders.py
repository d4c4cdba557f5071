"""The builders side by side under the previous score and the current one.

    .venv/bin/python benchmarks/quality_builders.py --workspace aol=runs/quality/aol \
        --workspace instacart=runs/quality/instacart [--judge llm] [--users 20] [--out builders.json] \
        [--collection cluster=cluster-d]

For every stored persona set (sample 0) of every builder, on the users that all builders have a set
for (``--users``: at most that many per workspace, in user order), two scores from the same judge
verdicts (LLM answers are cached, so the second costs nothing):

* **previous** (``scores/1``): mean of cohesion, alignment (uncorrected AP, ``alignment_raw``) and
  truthfulness, no evidence guards, no abstraction gate;
* **current**: the default :class:`~personaminer.quality.QualityConfig` (five terms, guards,
  abstraction gate).

The judge prompt is the current one (``claim_judge`` v2, which shows the evidence's action kinds and
values) in both, so the difference is the formula and the guards, not the judge. A set that failed
to build counts as missing (its count is shown). Prints one markdown table per workspace and, per
user, the builder order under each score.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.quality import QualityConfig, WorkspaceData, score_set
from personaminer.stats import mean_se

TERMS = ("cohesion", "alignment", "truthfulness", "specificity", "distinctness", "abstraction")
PREVIOUS = ("cohesion", "alignment_raw", "truthfulness")  # alignment before the chance correction


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", action="append", required=True, help="NAME=PATH (repeatable)")
    ap.add_argument("--builders", default="cluster,single,model")
    ap.add_argument("--judge", default="llm", choices=["llm", "embedding"])
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--collection", action="append", default=[],
                    help="BUILDER=COLLECTION (repeatable): that builder's sets come from this persona collection "
                         "only, e.g. cluster=cluster-d (default: the builder's first stored set per user)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    builders = args.builders.split(",")
    collection = dict(c.split("=", 1) for c in args.collection)
    if unknown := set(collection) - set(builders):
        ap.error(f"--collection names builders that are not compared: {', '.join(sorted(unknown))}")
    embedder = MiniLMEmbedder()
    llm = None
    if args.judge == "llm":
        from personaminer.llm import make_llm

        llm = make_llm()
    current = QualityConfig(judge=args.judge)
    previous = QualityConfig(judge=args.judge, guards=False)
    report: dict[str, object] = {}
    t0 = time.perf_counter()
    for spec in args.workspace:
        name, path = spec.split("=", 1)
        with Workspace(path, read_only=True) as ws:
            rows = ws.con.execute(
                "SELECT user_id, builder, set_id, status, collection FROM persona_sets WHERE sample_index = 0 "
                "ORDER BY user_id, set_id",
            ).fetchall()
            by_user: dict[str, dict[str, tuple[str, str]]] = {}
            for user, builder, set_id, status, coll in rows:
                if builder in builders and collection.get(builder, coll) == coll:
                    by_user.setdefault(user, {}).setdefault(builder, (set_id, status))
            users = [u for u, d in by_user.items() if set(d) >= set(builders)][:args.users]
            data = WorkspaceData(ws, embedder, current)
            scores: dict[str, dict[str, dict[str, float]]] = {b: {} for b in builders}
            failed = {b: 0 for b in builders}
            for user in users:
                for b in builders:
                    set_id, status = by_user[user][b]
                    if status not in ("ok", "repaired"):
                        failed[b] += 1
                        continue
                    ctx, text, _ = data.context(set_id)
                    facts = data.set_facts(set_id)
                    new = score_set(ctx, current, embedder=embedder, llm=llm, memory_text=text, facts=facts)[0]
                    # score_set only replaces the context's verdicts: the same context serves both configs
                    old = score_set(ctx, previous, embedder=embedder, llm=llm, memory_text=text, facts=facts)[0]
                    new["previous_final"] = float(np.mean([old[t] for t in PREVIOUS if not math.isnan(old[t])]))
                    scores[b][user] = new
                print(f"  {name} {user}: {time.perf_counter() - t0:.0f} s", flush=True)
        print(f"\n### {name}: {len(users)} users with a set from every builder ({args.judge} judge)\n")
        print("| builder | sets ok / failed | previous final | current final | " + " | ".join(TERMS)
              + " | guarded claims | copied personas |")
        print("|---|---|---|---|" + "---|" * len(TERMS) + "---|---|")
        for b in builders:
            vals = list(scores[b].values())
            cells = [mean_se([v[t] for v in vals]) for t in ("previous_final", "final", *TERMS)]
            print(f"| {b} | {len(vals)} / {failed[b]} | " + " | ".join(cells)
                  + f" | {sum(v['guarded_claims'] for v in vals):.0f} | {sum(v['copied_personas'] for v in vals):.0f} |")
        print("\nPer user, builders from best to worst (failed sets last), previous -> current:\n")
        for user in users:
            def order(key: str, user: str = user, scores: dict = scores) -> str:  # type: ignore[type-arg]
                got = sorted(builders, key=lambda b: -scores[b][user][key] if user in scores[b] else 1)
                return " > ".join(f"{b} {scores[b][user][key]:.2f}" if user in scores[b] else f"{b} failed"
                                  for b in got)
            print(f"- {user}: {order('previous_final')}  ->  {order('final')}")
        report[name] = {"users": users, "failed": failed, "scores": scores}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    if llm is not None:
        llm.close()


if __name__ == "__main__":
    main()
