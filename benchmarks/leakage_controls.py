"""The two controls of the evaluation harness, on a real workspace (docs/evaluate.md, "Controls").

1. **Copied future.** A copy of the workspace gets every evaluated user's future actions
   inserted into their history (one hour before the cutoff, source ``leak``). The history
   retrieval baselines must then find nearly every target: the harness can see a real signal.
2. **Shuffled targets.** Each user is scored against another user's targets
   (``evaluate --shuffle-targets``). No personalized system may stay above chance. Under
   ``hard`` an unrelated user can land *below* chance: the target is the centre of its own
   negatives' neighbourhood, and the candidate nearest to a far-away user is on its edge.

The original workspace is never written: both controls run on copies.

    python benchmarks/leakage_controls.py -w paper-table/aol/ws --role test \\
        --systems baselines,memories=extractive,personas:single=single --failed-sets chance
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.evaluate import EvalConfig, run_evaluation
from personaminer.schema import action_id

#: the history-reading rows of the copied-future control (each must find nearly every copied target)
HISTORY_ROWS = ("history_embed", "history_tfidf", "history_recency", "history_hybrid")


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in src.glob("workspace.duckdb*"):
        shutil.copy2(f, dest / f.name)
    return dest


def _hr(report: dict, protocol: str, system: str, metric: str = "hit@10") -> float:
    return report["results"][protocol]["all"][system][metric]["mean"]


def _plant_future(path: Path, users: list[str]) -> int:
    with Workspace(path) as ws:
        batch = []
        for uid in users:
            cutoff = ws.cutoff(uid)
            for i, a in enumerate(ws.user_future_actions(uid)):
                ts = cutoff - dt.timedelta(hours=1, seconds=i)
                aid = action_id("leak", uid, ts.isoformat(sep=" "), a.kind, a.item_id, a.text, "{}")
                batch.append([aid, uid, ts, a.kind, a.text, a.item_id, json.dumps({}), "leak", i])
        ws.con.executemany("INSERT INTO actions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", batch)
    return len(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-w", "--workspace", type=Path, required=True)
    ap.add_argument("--role", default=None, help="evaluate only the users holding this held-out role")
    ap.add_argument("--systems", default="baselines", help="systems of the shuffled control (default: baselines)")
    ap.add_argument("--failed-sets", default="missing", choices=["missing", "chance"],
                    help="how a failed persona set counts (see `evaluate --failed-sets`)")
    ap.add_argument("--max-targets", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON summary (default: W/reports/controls.json)")
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    summary: dict = {"workspace": str(args.workspace), "role": args.role, "seed": args.seed,
                     "systems": args.systems, "failed_sets": args.failed_sets}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shuffled_ws = _copy(args.workspace, Path(tmp) / "shuffled")
        with Workspace(shuffled_ws) as ws:
            conf = dict(max_targets=args.max_targets, seed=args.seed, role=args.role, bootstrap=200,
                        failed_sets=args.failed_sets)
            real = run_evaluation(ws, EvalConfig(systems=args.systems, **conf), embedder=embedder, progress=False)
            shuf = run_evaluation(ws, EvalConfig(systems=args.systems, shuffle_targets=True, **conf),
                                  embedder=embedder, progress=False)
        users = real["common_users"]
        n_t = shuf["targets"]["targets"]
        print(f"shuffled targets: {len(users)} users, {n_t} targets ({shuf['targets']['shuffled_shared_dropped']} left "
              "out: the scored user has them too); HR@10 in percent, real -> shuffled "
              "(chance = 10 / candidates; 'at chance' = within 4 standard errors)")
        summary["shuffled"] = {}
        for p in real["results"]:
            chance = 10 / shuf["protocols"][p]["candidates_per_target"]["mean"]
            tol = 4 * math.sqrt(chance * (1 - chance) / max(n_t, 1))
            rows = {s: (_hr(real, p, s), _hr(shuf, p, s)) for s in real["results"][p]["all"]}
            verdict = {s: "at chance" if abs(b - chance) <= tol else ("ABOVE chance" if b > chance else "below chance")
                       for s, (_, b) in rows.items()}
            summary["shuffled"][p] = {"chance": chance, "tolerance": tol, "hit@10": rows, "verdict": verdict}
            print(f"  {p:8s} chance {100 * chance:.1f} ± {100 * tol:.1f}: " + ", ".join(
                f"{s} {100 * a:.1f}->{100 * b:.1f}{'' if verdict[s] == 'at chance' else f' ({verdict[s]})'}"
                for s, (a, b) in rows.items()))
        leak_ws = _copy(args.workspace, Path(tmp) / "leak")
        planted = _plant_future(leak_ws, users)
        with Workspace(leak_ws) as ws:
            leak = run_evaluation(ws, EvalConfig(systems="random," + ",".join(HISTORY_ROWS), **conf),
                                  embedder=embedder, progress=False)
        print(f"copied future: {planted} future actions of {len(users)} users copied into their history; "
              f"repeats {leak['targets']['repeats']} of {leak['targets']['targets']} targets; HR@10 / MRR in percent, "
              "before -> after")
        summary["copied_future"] = {"planted_actions": planted, "targets": leak["targets"]}
        for p in leak["results"]:
            rows = {s: {"hit@10": (_hr(real, p, s), _hr(leak, p, s)),
                        "mrr": (_hr(real, p, s, "mrr"), _hr(leak, p, s, "mrr"))}
                    for s in HISTORY_ROWS if s in real["results"][p]["all"]}
            summary["copied_future"][p] = rows
            print(f"  {p:8s} " + ", ".join(f"{s} HR@10 {100 * r['hit@10'][0]:.1f}->{100 * r['hit@10'][1]:.1f} "
                                          f"MRR {100 * r['mrr'][0]:.1f}->{100 * r['mrr'][1]:.1f}"
                                          for s, r in rows.items()))
        summary["seconds"] = round(time.perf_counter() - t0, 1)
    out = args.out or args.workspace / "reports" / "controls.json"
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out} ({summary['seconds']} s)")


if __name__ == "__main__":
    main()
