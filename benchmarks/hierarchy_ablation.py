"""Does the hierarchy pay for itself? Personas from raw actions, extractive memories and LLM memories.

Usage::

    .venv/bin/python benchmarks/hierarchy_ablation.py --workspace aol=W1 --workspace instacart=W2 \
        [--users 20] [--max-days 15] [--sets actions,extractive,llm] [--judge embedding] [--out report.json]

On the same users of each (ingested) workspace, with the same builder (cluster-then-label, the
default 1.5B model, 8 memories per label prompt) and the same judge, it builds:

* ``actions``: no hierarchy, one memory per step summarized by the step itself (no LLM);
* ``extractive``: time-gap and embedding-shift memories with extractive summaries (no LLM);
* ``llm``: the hybrid LLM memories (yes/no boundary questions, short LLM summaries);

then the personas on each, and scores every set with the default score
(:class:`~personaminer.quality.QualityConfig`, ``--judge``). Prints per memory set: memories and
actions per memory, LLM tokens of the memories and of the personas per user, and mean final and
terms (± standard error). The score's relative terms (cohesion, alignment, specificity) compare a
persona with the user's memories of the same set, so a set of many tiny memories and one of few
large ones are not judged on the same ground: read the terms, not only final. Every stage is
stored in the workspace and resumable (LLM answers cached); the sets are ``ablation-<set>`` and the
collections ``cluster@ablation-<set>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.memories import MemoryConfig, run_memories
from personaminer.personas import PersonaConfig, run_personas
from personaminer.quality import QualityConfig, WorkspaceData, score_set
from personaminer.stats import mean_se

TERMS = ("final", "cohesion", "alignment", "truthfulness", "specificity", "distinctness", "abstraction")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", action="append", required=True, help="NAME=PATH (repeatable)")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--max-days", type=int, default=15)
    ap.add_argument("--sets", default="actions,extractive,llm")
    ap.add_argument("--judge", default="embedding", choices=["llm", "embedding"])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from personaminer.llm import LLMConfig, make_llm

    cfg = LLMConfig()
    cfg.llamacpp.model = args.model
    llm = make_llm(cfg)
    embedder = MiniLMEmbedder()
    modes = args.sets.split(",")
    report: dict[str, Any] = {"judge": args.judge, "users": args.users, "max_days": args.max_days, "results": {}}
    t0 = time.perf_counter()
    try:
        for spec in args.workspace:
            name, path = spec.split("=", 1)
            rows: dict[str, dict[str, Any]] = {}
            with Workspace(path) as ws:
                users = ws.users(sample=args.users, seed=0)
                for mode in modes:
                    mset = f"ablation-{mode}"
                    m = run_memories(ws, users, MemoryConfig(mode=mode, memory_set=mset, max_days=args.max_days),  # type: ignore[arg-type]
                                     embedder=embedder, llm=llm if mode in ("llm", "llm-segment") else None)
                    p = run_personas(ws, users, PersonaConfig(builder="cluster", memory_set=mset, max_memories=8,
                                                              max_tokens=256), embedder=embedder, llm=llm)
                    mem_tokens = ws.con.execute(
                        "SELECT sum(prompt_tokens), sum(completion_tokens), count(*), sum(n_actions) FROM memory_days "
                        "WHERE memory_set = ? AND list_contains(?, user_id)", [mset, users]).fetchone()
                    n_mem = ws.con.execute("SELECT count(*) FROM memories WHERE memory_set = ? AND "
                                           "list_contains(?, user_id)", [mset, users]).fetchone()[0]
                    rows[mode] = {"memories": n_mem, "actions": int(mem_tokens[3] or 0),
                                  "memory_prompt_tokens": int(mem_tokens[0] or 0),
                                  "memory_completion_tokens": int(mem_tokens[1] or 0),
                                  "persona_prompt_tokens": p["prompt_tokens"],
                                  "persona_completion_tokens": p["completion_tokens"],
                                  "coverage_ok": m["check"]["ok"], "set_ids": p["set_ids"]}
                    print(f"  {name} {mode}: built, {time.perf_counter() - t0:.0f} s", flush=True)
            with Workspace(path, read_only=True) as ws:
                qc = QualityConfig(judge=args.judge)
                data = WorkspaceData(ws, embedder, qc)
                for mode in modes:
                    scores = []
                    for user in users:
                        ids = rows[mode]["set_ids"].get(user) or []
                        if not ids:
                            continue
                        status = ws.con.execute("SELECT status FROM persona_sets WHERE set_id = ?", [ids[0]]).fetchone()
                        if status is None or status[0] not in ("ok", "repaired"):
                            continue
                        ctx, text, _ = data.context(ids[0])
                        scores.append(score_set(ctx, qc, embedder=embedder, llm=llm if args.judge == "llm" else None,
                                                memory_text=text, facts=data.set_facts(ids[0]))[0])
                    rows[mode]["scores"] = scores
                    print(f"  {name} {mode}: scored {len(scores)} sets, {time.perf_counter() - t0:.0f} s", flush=True)
            n = len(users)
            print(f"\n### {name}: {n} users, {args.max_days} most recent days each, cluster personas, "
                  f"{args.judge} judge\n")
            print("| memories from | memories | actions / memory | memory tokens / user (prompt + completion) | "
                  "persona tokens / user | coverage | sets | " + " | ".join(TERMS) + " |")
            print("|---|---|---|---|---|---|---|" + "---|" * len(TERMS))
            for mode in modes:
                r = rows[mode]
                apm = r["actions"] / r["memories"] if r["memories"] else 0.0
                mt = (r["memory_prompt_tokens"] + r["memory_completion_tokens"]) / n
                pt = (r["persona_prompt_tokens"] + r["persona_completion_tokens"]) / n
                cells = [mean_se([s[t] for s in r["scores"]]) for t in TERMS]
                print(f"| {mode} | {r['memories']} | {apm:.2f} | {mt:,.0f} | {pt:,.0f} | "
                      f"{'ok' if r['coverage_ok'] else 'FAILED'} | {len(r['scores'])} | " + " | ".join(cells) + " |")
            report["results"][name] = {"users": users, "rows": rows}
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    finally:
        llm.close()
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
