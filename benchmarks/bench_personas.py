"""Persona-builder throughput on a fixed sample of real AOL users.

Usage::

    .venv/bin/python benchmarks/bench_personas.py [--users 5] [--memories extractive] [--model NAME]

Memories come from the fast extractive mode (so this measures the persona stage alone) on the
users' 10 most recent days. Each builder runs in a fresh subprocess with the LLM cache off.
Prints users/hour, LLM requests and tokens per user, personas per set, failures, peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, os, resource, sys
    os.environ["PERSONAMINER_NO_CACHE"] = "1"
    from personaminer import Workspace
    from personaminer.embed import MiniLMEmbedder
    from personaminer.llm import LLMConfig, make_llm
    from personaminer.personas import PersonaConfig, run_personas
    ws_path, builder, n_users, memory_set, model = sys.argv[1:6]
    cfg = LLMConfig(); cfg.llamacpp.model = model
    llm = make_llm(cfg)
    with Workspace(ws_path) as ws:
        users = ws.users(sample=int(n_users), seed=0, min_actions=100)
        s = run_personas(ws, users, PersonaConfig(builder=builder, memory_set=memory_set), embedder=MiniLMEmbedder(),
                         llm=llm, progress=False)
    llm.close()
    s.pop("config")
    s["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(s, default=str))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--builders", default="single,cluster,model")
    args = ap.parse_args()
    aol = args.shared / "aol_top1000_users" / "user_search_logs.tar.gz"
    if not aol.exists():
        sys.exit(f"AOL data not found at {aol}; pass --shared")
    from personaminer import Workspace, ingest
    from personaminer.embed import MiniLMEmbedder
    from personaminer.memories import MemoryConfig, run_memories

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "ws"
        ingest(aol, base, progress=False)
        with Workspace(base) as ws:
            users = ws.users(sample=args.users, seed=0, min_actions=100)
            mem = run_memories(ws, users, MemoryConfig(mode="extractive", max_days=args.days),
                               embedder=MiniLMEmbedder(), progress=False)
        print(f"AOL top-1000, {args.users} users (seed 0, >= 100 actions), extractive memories of their "
              f"{args.days} most recent days ({mem['memories'] / args.users:.1f} memories/user); model {args.model}; "
              "LLM cache off\n")
        print("| builder | users/hour | seconds | sets | failed | personas/set | LLM requests/user | prompt tok/user | "
              "completion tok/user | unassigned memories | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for builder in args.builders.split(","):
            out = subprocess.run([sys.executable, "-c", CHILD, str(base), builder, str(args.users), "extractive",
                                  args.model], check=True, capture_output=True, text=True)
            s = json.loads(out.stdout.strip().splitlines()[-1])
            n = max(1, s["users"])
            print(f"| {builder} | {s['users_per_hour']:,.0f} | {s['seconds']:.1f} | {s['sets']} | {s['failed_sets']} | "
                  f"{s['personas_per_set']} | {s['llm_requests'] / n:.1f} | {s['prompt_tokens'] / n:,.0f} | "
                  f"{s['completion_tokens'] / n:,.0f} | {s['unassigned_memories']} | {s['peak_mb']:,.0f} |")
            assert s["check"]["ok"], s["check"]


if __name__ == "__main__":
    main()
