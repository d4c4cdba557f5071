"""Segmentation benchmark with known answers: boundary precision, recall and F1 on spliced days.

Usage::

    .venv/bin/python benchmarks/segmentation_benchmark.py --workspace aol=W1 --workspace merrec=W2 ... \
        [--days 10] [--modes extractive,llm,llm-segment] [--model NAME] [--out report.json]

Each workspace is an ingested dataset (``personaminer ingest``; nothing else is needed). For each, ``--days``
spliced days of each kind (:mod:`personaminer.memories.splicebench`: two users' sessions joined, or one
user's sessions from days at least ``--min-days-apart`` (14) days apart, re-timed so no pause shows the join) are segmented
by every mode with the same embedder and model, and scored against the known join. Precision assumes a
session is one intent (a lower bound; see the module). Also reported per mode: actions per memory,
LLM requests, prompt and completion tokens per action, seconds.

LLM answers are cached (the default cache), so an interrupted run resumes where it stopped. CPU on 2
cores with the default 1.5B model: extractive is instant; about 1 s per step for ``llm`` and 2-3 s per
action for ``llm-segment`` (measured in docs/memories.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.progress import track

from personaminer import Workspace
from personaminer.embed import MiniLMEmbedder
from personaminer.memories import MemoryConfig, build_memories
from personaminer.memories.splicebench import KINDS, SplicedDay, make_days, predicted_starts, score


def run_mode(days: list[SplicedDay], mode: str, embedder: MiniLMEmbedder, llm: Any, label: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    preds, cost = [], {"llm_requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "questions": 0,
                       "summaries": 0, "fallback_days": 0}
    config = MemoryConfig(mode=mode)  # type: ignore[arg-type]
    for d in track(days, description=label, transient=True):
        res = build_memories(d.actions, config, embedder=embedder, llm=llm if mode != "extractive" else None)
        mems = [m for r in res for m in r.memories]
        preds.append(predicted_starts(d, mems))
        for r in res:
            cost["llm_requests"] += r.llm_requests
            cost["prompt_tokens"] += r.prompt_tokens
            cost["completion_tokens"] += r.completion_tokens
            cost["questions"] += r.questions
            cost["summaries"] += r.summaries
            cost["fallback_days"] += r.status == "fallback"
    out = score(days, preds)
    n_act = sum(len(d.actions) for d in days)
    out.update(cost, seconds=round(time.perf_counter() - t0, 1), actions=n_act,
               prompt_tokens_per_action=cost["prompt_tokens"] / n_act if n_act else 0.0,
               completion_tokens_per_action=cost["completion_tokens"] / n_act if n_act else 0.0,
               predictions=preds)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", action="append", required=True, help="NAME=PATH of an ingested workspace")
    ap.add_argument("--days", type=int, default=10, help="spliced days per kind and dataset")
    ap.add_argument("--modes", default="extractive,llm,llm-segment")
    ap.add_argument("--model", default=None, help="catalog model or GGUF (default: the catalog default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-users", type=int, default=400)
    ap.add_argument("--min-days-apart", type=int, default=14, help="days between one user's two sessions")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    embedder = MiniLMEmbedder()
    llm = None
    if any(m != "extractive" for m in modes):
        from personaminer.llm import LLMConfig, make_llm

        cfg = LLMConfig()
        if args.model:
            cfg.llamacpp.model = args.model
        llm = make_llm(cfg)
    report: dict[str, Any] = {"days_per_kind": args.days, "seed": args.seed, "modes": modes,
                              "min_days_apart": args.min_days_apart, "max_users": args.max_users,
                              "model": llm.model_id if llm is not None else None, "results": []}
    t0 = time.perf_counter()
    try:
        for spec in args.workspace:
            name, _, path = spec.partition("=")
            with Workspace(path, read_only=True) as ws:
                sets = {k: make_days(ws, n_days=args.days, kind=k, seed=args.seed, max_users=args.max_users,
                                     min_days_apart=args.min_days_apart)
                        for k in KINDS}
            for kind, days in sets.items():
                for mode in modes:
                    r = run_mode(days, mode, embedder, llm, f"{name} / {kind} / {mode}")
                    r.update(dataset=name, kind=kind, mode=mode)
                    report["results"].append(r)
                    print(f"{name:10} {kind:24} {mode:12} days {r['days']:3}  P {r['precision']:.2f}  "
                          f"R {r['recall']:.2f}  F1 {r['f1']:.2f}  act/mem {r['actions_per_memory']:.2f}  "
                          f"compl tok/act {r['completion_tokens_per_action']:.2f}  {r['seconds']:.0f} s", flush=True)
                    if args.out:
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    finally:
        if llm is not None:
            llm.close()
    print(f"\n{time.perf_counter() - t0:.0f} s. Precision assumes one intent per session (a lower bound).\n")
    print("| dataset | kind | mode | days | precision | recall | F1 | false boundaries / session | actions / memory "
          "| completion tok / action | prompt tok / action | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["results"]:
        print(f"| {r['dataset']} | {r['kind']} | {r['mode']} | {r['days']} | {r['precision']:.2f} | {r['recall']:.2f} "
              f"| {r['f1']:.2f} | {r['false_boundaries_per_session']:.2f} | {r['actions_per_memory']:.2f} "
              f"| {r['completion_tokens_per_action']:.2f} | {r['prompt_tokens_per_action']:.1f} | {r['seconds']:.0f} |")
    # pooled over datasets and kinds, per mode
    print("\n| mode | days | precision | recall | F1 | actions / memory | completion tok / action |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        rs = [r for r in report["results"] if r["mode"] == mode]
        tp, fp, fn = (sum(r[k] for r in rs) for k in ("tp", "fp", "fn"))
        p = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
        acts = sum(r["actions"] for r in rs)
        mems = sum(r["actions"] / r["actions_per_memory"] for r in rs if r["actions_per_memory"])
        comp = sum(r["completion_tokens"] for r in rs)
        print(f"| {mode} | {sum(r['days'] for r in rs)} | {p:.2f} | {rc:.2f} | **{f1:.2f}** | "
              f"{acts / mems if mems else 0:.2f} | {comp / acts if acts else 0:.2f} |")
        report.setdefault("pooled", {})[mode] = {"precision": p, "recall": rc, "f1": f1}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
