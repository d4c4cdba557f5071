"""Summary faithfulness of LLM-written memories: the supported share per memory set.

Usage::

    .venv/bin/python benchmarks/memory_faithfulness.py --workspace W --set llm [--set llm-segment] \
        [--max-memories 150] [--judge llm] [--users-of SET] [--out report.json]

Every summary written by the LLM (``summary_by = 'llm'``) in each set, or a seeded sample of
``--max-memories``, is split into claims and judged against that memory's own actions only
(:mod:`personaminer.memories.faithfulness`): the default quality judge (the LLM yes/no judge with
the evidence guards) or the embedding judge. Prints per set: summaries, claims, supported share of
claims and of summaries, guard refusals and summaries naming a neighbouring segment's action.
``--users-of SET`` restricts every set to the users of SET (compare modes on the same users).
LLM answers are cached, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.memories import faithfulness


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", required=True, type=Path)
    ap.add_argument("--set", action="append", required=True, dest="sets")
    ap.add_argument("--max-memories", type=int, default=150)
    ap.add_argument("--judge", choices=("llm", "embedding"), default="llm")
    ap.add_argument("--users-of", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    llm = None
    if args.judge == "llm":
        from personaminer.llm import LLMConfig, make_llm

        cfg = LLMConfig()
        if args.model:
            cfg.llamacpp.model = args.model
        llm = make_llm(cfg)
    report = {"workspace": str(args.workspace), "judge": args.judge, "sets": {}}
    try:
        with Workspace(args.workspace, read_only=True) as ws:
            users = None
            if args.users_of:
                users = [r[0] for r in ws.con.execute("SELECT DISTINCT user_id FROM memories WHERE memory_set = ?",
                                                      [args.users_of]).fetchall()]
            print("| set | summaries | claims | supported claims | supported summaries | guard refusals | "
                  "leaking summaries | s |")
            print("|---|---|---|---|---|---|---|---|")
            for s in args.sets:
                t0 = time.perf_counter()
                items = faithfulness.cases(ws, s, max_memories=args.max_memories, seed=args.seed, users=users)
                verdicts = faithfulness.judge(items, judge_kind=args.judge, embedder=embedder, llm=llm)
                r = faithfulness.summarize(items, verdicts)
                r["seconds"] = round(time.perf_counter() - t0, 1)
                report["sets"][s] = {**r, "verdicts": verdicts}
                sc, ss = r["supported_claims"], r["supported_summaries"]
                print(f"| {s} | {r['summaries']} | {r['claims']} | {sc if sc is None else f'{sc:.3f}'} | "
                      f"{ss if ss is None else f'{ss:.3f}'} | {r['guard_refusals']} | {r['leaking_summaries']} | "
                      f"{r['seconds']:.0f} |", flush=True)
    finally:
        if llm is not None:
            llm.close()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
