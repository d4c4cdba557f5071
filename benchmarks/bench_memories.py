"""Intent-memory throughput for every mode on a fixed sample of real AOL users.

Usage::

    .venv/bin/python benchmarks/bench_memories.py [--users 5] [--max-days 2] [--model NAME]

Modes: ``extractive`` (no LLM), ``llm`` (the hybrid: yes/no boundary questions and short summaries)
and ``llm-segment`` (the LLM segments and summarizes whole windows). Each mode runs in a fresh
subprocess with the LLM cache off, so every request reaches the model and peak RSS is the mode's
own; run it on an idle machine. Prints users/hour, LLM requests, yes/no questions and tokens per
user, completion tokens per action, actions per memory and peak memory.
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
    import json, os, resource, sys, time
    os.environ["PERSONAMINER_NO_CACHE"] = "1"
    from personaminer import Workspace
    from personaminer.embed import MiniLMEmbedder
    from personaminer.memories import MemoryConfig, run_memories
    ws_path, mode, n_users, max_days, model = sys.argv[1:6]
    with Workspace(ws_path) as ws:
        users = ws.users(sample=int(n_users), seed=0, min_actions=20)
        llm = None
        if mode != "extractive":
            from personaminer.llm import LLMConfig, make_llm
            cfg = LLMConfig(); cfg.llamacpp.model = model
            llm = make_llm(cfg)
        s = run_memories(ws, users, MemoryConfig(mode=mode, max_days=int(max_days)), embedder=MiniLMEmbedder(),
                         llm=llm, progress=False)
    s.pop("per_user"); s.pop("config")
    s["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(s, default=str))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--max-days", type=int, default=2)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--modes", default="extractive,llm,llm-segment")
    args = ap.parse_args()
    aol = args.shared / "aol_top1000_users" / "user_search_logs.tar.gz"
    if not aol.exists():
        sys.exit(f"AOL data not found at {aol}; pass --shared")
    from personaminer import ingest

    print(f"AOL top-1000, {args.users} users (seed 0, >= 20 actions), {args.max_days} most recent days each; "
          f"model {args.model}; LLM cache off\n")
    print("| mode | users/hour | seconds | days | memories | actions/memory | LLM requests/user | "
          "questions/user | prompt tok/user | completion tok/user | completion tok/action | completion tok/s | "
          "repaired/fallback days | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "ws"
        ingest(aol, base, progress=False)
        for mode in args.modes.split(","):
            out = subprocess.run([sys.executable, "-c", CHILD, str(base), mode, str(args.users), str(args.max_days),
                                  args.model], check=True, capture_output=True, text=True)
            s = json.loads(out.stdout.strip().splitlines()[-1])
            n = s["users"]
            print(f"| {mode} | {s['users_per_hour']:,.0f} | {s['seconds']:.1f} | {s['days']} | {s['memories']} | "
                  f"{s['actions_per_memory']} | {s['llm_requests'] / n:.1f} | {s['questions'] / n:.1f} | "
                  f"{s['prompt_tokens'] / n:,.0f} | {s['completion_tokens'] / n:,.0f} | "
                  f"{s['completion_tokens'] / s['actions']:.2f} | {s['completion_tokens'] / s['seconds']:.1f} | "
                  f"{s['repaired_days']}/{s['fallback_days']} | {s['peak_mb']:,.0f} |")
            assert s["check"]["ok"], s["check"]


if __name__ == "__main__":
    main()
