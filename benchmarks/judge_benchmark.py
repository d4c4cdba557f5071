"""The judge benchmark (personaminer.quality.judgebench): per claim type, n, ROC AUC and accuracy of
each judge, on claims of known truth generated from real workspaces.

    .venv/bin/python benchmarks/judge_benchmark.py --workspace aol=runs/quality/aol \
        --workspace instacart=runs/quality/instacart --workspace movielens=runs/quality/movielens \
        [--merrec ../shared/datasets/merrec_head_sample/merrec_head.csv] [--per-type 12] [--no-llm] \
        [--out runs/quality/judge_benchmark.json]

Each workspace needs extractive memories (benchmarks/quality_workspaces.sh builds them); ``--merrec``
ingests the MerRec sample into a temporary workspace and builds them there. The LLM judge is the
default model (Qwen2.5-Coder-1.5B); its answers are cached, so a re-run costs nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from personaminer import Workspace, ingest
from personaminer.embed import MiniLMEmbedder
from personaminer.memories import MemoryConfig, run_memories
from personaminer.quality.judgebench import NEGATIVE, POSITIVE, make_cases, run_judges, summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", action="append", default=[], help="NAME=PATH of a workspace (repeatable)")
    ap.add_argument("--merrec", type=Path, help="the MerRec sample CSV (ingested into a temporary workspace)")
    ap.add_argument("--memories", default="extractive")
    ap.add_argument("--users", type=int, default=20, help="users per workspace (seeded sample of those with memories)")
    ap.add_argument("--per-type", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-llm", action="store_true", help="only the embedding judge")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    embedder = MiniLMEmbedder()
    llm = None
    if not args.no_llm:
        from personaminer.llm import make_llm

        llm = make_llm()
    spaces = [tuple(w.split("=", 1)) for w in args.workspace]
    tmp = tempfile.TemporaryDirectory()
    if args.merrec:
        path = Path(tmp.name) / "merrec"
        ingest(args.merrec, path, progress=False)
        with Workspace(path) as ws:
            run_memories(ws, ws.users(), MemoryConfig(mode="extractive", memory_set=args.memories), embedder=embedder,
                         progress=False)
        spaces.append(("merrec", str(path)))
    t0 = time.perf_counter()
    rows = []
    for name, path in spaces:
        with Workspace(path) as ws:
            users = [u for u in ws.users() if ws.con.execute(
                "SELECT count(*) FROM memories WHERE user_id = ? AND memory_set = ?", [u, args.memories]
            ).fetchall()[0][0] >= 2]
            import random

            users = sorted(random.Random(args.seed).sample(users, min(args.users, len(users))))
            cases = make_cases(ws, name, users, args.memories, per_type=args.per_type, seed=args.seed)
            rows += run_judges(ws, cases, args.memories, embedder=embedder, llm=llm)
    judges = ["embedding", "embedding+guards"] + (["llm", "llm+guards"] if llm is not None else [])
    summary = summarize(rows, judges)
    print(f"{len(rows)} claims from {', '.join(n for n, _ in spaces)}; {time.perf_counter() - t0:.0f} s\n")
    print("| type | label | n | " + " | ".join(f"{j} AUC | {j} acc" for j in judges) + " |")
    print("|---|---|---|" + "---|---|" * len(judges))
    for t in (*POSITIVE, *NEGATIVE):
        cells = []
        for j in judges:
            d = summary[j]["types"].get(t)
            cells += ["-", "-"] if d is None else [f"{d['auc']:.2f}" if d["auc"] is not None else "-",
                                                   f"{d['accuracy']:.2f}"]
        n = next((summary[j]["types"][t]["n"] for j in judges if t in summary[j]["types"]), 0)
        label = "yes" if t in POSITIVE else "no"
        print(f"| {t} | {label} | {n} | " + " | ".join(cells) + " |")
    print("| **all** | | " + str(len(rows)) + " | " + " | ".join(
        f"**{summary[j]['auc']:.2f}** | **{summary[j]['accuracy']:.2f}**" for j in judges) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=1, default=str) + "\n")
    if llm is not None:
        llm.close()


if __name__ == "__main__":
    main()
