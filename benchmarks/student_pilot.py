"""Pilot of a student for the learning loop (#22 item 6): verified sets -> SFT -> held-out valid rate and final.

Usage::

    .venv/bin/python benchmarks/student_pilot.py --workspace W1 [--workspace W2 ...] --out DIR \\
        [--student smollm2-135m-instruct] [--val-users 1] [--test-users 6] [--epochs 3] [--min-score 0.5]

For each workspace (holding teacher sets: ``cluster@M`` and/or ``model@M``, or ``--teacher``):

1. roles over the users that have memories of ``M`` (seeded; a workspace that already has
   roles keeps them);
2. verified sets (``personaminer train verified``, embedding judge) into ``DIR/verified/<ws>``;
3. one SFT run of the student on every workspace's verified sets (``DIR/sft-<student>``);
4. the base student and the SFT student write one greedy set per test user (persona model,
   prompt v3 with its grammar, no retries, so the first answer's validity is what is measured),
   scored by the embedding judge (``train compare``).

Writes ``DIR/pilot-<student>.json`` and prints a table: valid share, final (failed = 0) and
final over valid sets, seconds per sample, SFT seconds per step. Every step is resumable:
roles and verified sets are stored, SFT resumes from its checkpoint, sets and scores are cached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--student", default="smollm2-135m-instruct")
    ap.add_argument("--memories", default="extractive")
    ap.add_argument("--teacher", action="append", default=None,
                    help="Teacher collection (default: cluster@M and model@M, those the workspace holds).")
    ap.add_argument("--val-users", type=int, default=1)
    ap.add_argument("--test-users", type=int, default=6)
    ap.add_argument("--min-score", type=float, default=0.5)
    ap.add_argument("--max-memories", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--sets-per-step", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decoding", choices=("oneshot", "stepwise"), default="oneshot",
                    help="How the student writes its held-out sets (the verified targets are the same either way).")
    ap.add_argument("--memory-order", choices=("time", "similarity"), default="time",
                    help="The student's memory order, for the verified targets and the held-out sets alike.")
    ap.add_argument("--tag", default="pilot", help="Prefix of the compared systems' names (their collections).")
    ap.add_argument("--roles-only", action="store_true", help="Assign the roles (step 1) and stop, so the "
                    "teachers can be run on the train/val users first (`personas --role train`).")
    args = ap.parse_args()

    from personaminer import Workspace
    from personaminer.cli import llm_config
    from personaminer.embed import MiniLMEmbedder
    from personaminer.evaluate.split import assign_roles, load_roles, store_roles
    from personaminer.llm import make_llm
    from personaminer.personas.base import PersonaConfig
    from personaminer.personas.model import STUDENT_MAX_TOKENS
    from personaminer.quality.scorer import QualityConfig
    from personaminer.train.compare import compare_systems
    from personaminer.train.trainer import GroupwiseDPOTrainer, TrainConfig
    from personaminer.train.verified import VerifiedConfig, build_verified

    def llm(adapter: Path | None = None):  # type: ignore[no-untyped-def]
        cfg = llm_config("llamacpp", args.student, None, None)
        cfg.llamacpp.adapter = adapter
        return make_llm(cfg)

    args.out.mkdir(parents=True, exist_ok=True)
    embedder = MiniLMEmbedder()
    student = PersonaConfig(builder="model", memory_set=args.memories, max_memories=args.max_memories, max_tokens=STUDENT_MAX_TOKENS,
                            max_retries=0, memory_order=args.memory_order)
    compared = dataclasses.replace(student, decoding=args.decoding)
    verified_files, report = [], {"student": args.student, "workspaces": {}, "args": vars(args)}
    for w in args.workspace:
        with Workspace(w) as ws:
            if not load_roles(ws):
                have = [r[0] for r in ws.con.execute("SELECT DISTINCT user_id FROM memories WHERE memory_set = ? "
                                                     "ORDER BY 1", [args.memories]).fetchall()]
                store_roles(ws, assign_roles(have, val_users=args.val_users, test_users=args.test_users,
                                             seed=args.seed), args.seed)
            if args.roles_only:
                from collections import Counter
                print(f"{w.name}: roles {dict(Counter(load_roles(ws).values()))}", flush=True)
                continue
            present = {r[0] for r in ws.con.execute("SELECT DISTINCT collection FROM persona_sets").fetchall()}
            teachers = tuple(args.teacher or [c for c in (f"cluster@{args.memories}", f"model@{args.memories}")
                                              if c in present])
            meta = build_verified(ws, VerifiedConfig(teachers=teachers, min_score=args.min_score, student=student),
                                  embedder=embedder, out_dir=args.out / "verified" / w.name, progress=False)
            verified_files.append(args.out / "verified" / w.name / "verified.jsonl")
            report["workspaces"][w.name] = {"verified": meta["counts"], "mean_kept_score": meta["mean_kept_score"]}
            print(f"{w.name}: verified {meta['counts']}", flush=True)
    if args.roles_only:
        return
    t0 = time.perf_counter()
    sft = GroupwiseDPOTrainer(TrainConfig(model=args.student, loss="sft", epochs=args.epochs, learning_rate=args.lr,
                                          groups_per_step=args.sets_per_step, seed=args.seed, device="cpu"),
                              args.out / f"sft-{args.student}").fit(verified_files)
    report["sft"] = {k: sft.summary_[k] for k in ("train_groups", "val_groups", "steps", "seconds_per_step",
                                                  "loss_first_fifth", "loss_last_fifth", "val_before", "val_after",
                                                  "candidates_too_long", "gguf")}
    report["sft"]["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"sft: {report['sft']}", flush=True)
    gguf = Path(sft.summary_["gguf"])
    for w in args.workspace:
        with Workspace(w) as ws:
            users = sorted(u for u, r in load_roles(ws).items() if r == "test")
            systems = {f"{args.tag}-base": (llm(), None), f"{args.tag}-sft": (llm(gguf), str(gguf))}
            try:
                rep = compare_systems(ws, users, systems, compared, QualityConfig(judge="embedding"),
                                      embedder=embedder, judge=None, progress=False)
            finally:
                for m, _ in systems.values():
                    m.close()
            report["workspaces"][w.name]["compare"] = rep
    (args.out / f"pilot-{args.student}.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\n{args.student}: SFT {report['sft']['steps']} steps, {report['sft']['seconds_per_step']:.1f} s/step, "
          f"val NLL/token {report['sft']['val_before']['best_nll']:.3f} -> {report['sft']['val_after']['best_nll']:.3f}")
    print("| workspace | system | test users | valid | final (failed = 0) | final (valid) | s/sample |")
    print("|---|---|---|---|---|---|---|")
    for name, w in report["workspaces"].items():
        for sys_name, s in w["compare"]["systems"].items():
            per = s["seconds"] / w["compare"]["users"] if s.get("seconds") else float("nan")

            def f(d: dict) -> str:  # type: ignore[type-arg]
                return "-" if d["mean"] is None else (f"{d['mean']:.3f} ± {d['se']:.3f}" if d["se"] else f"{d['mean']:.3f}")
            print(f"| {name} | {sys_name} | {w['compare']['users']} | {f(s['valid'])} | {f(s['final_all'])} | "
                  f"{f(s['final'])} | {per:.1f} |")


if __name__ == "__main__":
    main()
