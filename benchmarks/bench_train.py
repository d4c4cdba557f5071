"""Training cost of the persona model: seconds per step and peak memory, per model, loss and group size G.

Usage::

    .venv/bin/python benchmarks/bench_train.py [--models tiny,smollm2-135m-instruct] [--groups 2,4,8]
        [--prompt-tokens 600] [--completion-tokens 200] [--steps 4] [--device auto] [--forward shared,padded]
        [--losses listwise,softmax,pairwise,sft]

Each (model, G) runs in its own process (so peak memory is its own): synthetic groups of G
candidates with a prompt of about ``--prompt-tokens`` and completions of about
``--completion-tokens`` tokens (the sizes of real persona-model groups), one group per
optimizer step, LoRA r=8 on q/k/v/o, for each ``--losses`` (default listwise). ``sft`` (the
warm start: NLL of the best candidate, no reference pass) is timed once per model, with G = 1. The first step (warm-up) is not timed;
the reference pass is reported apart. Peak memory is the process's max RSS on CPU and
``torch.cuda.max_memory_allocated`` on CUDA. A model may be a catalog name, ``tiny`` or
``random:<folder>`` (the architecture with random weights: same cost, no weights needed).
``--forward`` times the trainer's shared-prompt forward (the prompt once per group) and/or
the padded one (every candidate as a whole sequence).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("trail running shoes marathon plan garden tools seeds tax return forms deduction birthday party cake "
         "recipe flight hotel booking piano lessons sheet music laptop review coffee grinder").split()


def synthetic(path: Path, tokenizer: object, g: int, prompt_tokens: int, completion_tokens: int, n: int) -> None:
    rng = random.Random(0)

    def text(k: int) -> str:  # about k tokens of words
        return " ".join(rng.choices(WORDS, k=max(1, int(k * 0.8))))

    with path.open("w") as f:
        for u in range(n):
            messages = [{"role": "system", "content": "You describe one user as several personas."},
                        {"role": "user", "content": text(prompt_tokens)}]
            cands = [{"set_id": f"{u}-{j}", "builder": "model", "score": 1.0 - j / g, "rank": j + 1,
                      "completion": json.dumps({"personas": [{"label": text(3), "description": text(
                          completion_tokens - 20), "evidence": [1, 2]}]})} for j in range(g)]
            f.write(json.dumps({"user_id": f"u{u}", "role": "train", "messages": messages, "candidates": cands}) + "\n")


def worker(args: argparse.Namespace) -> None:
    import torch

    from personaminer.train.hf import load_tokenizer
    from personaminer.train.trainer import GroupwiseDPOTrainer, TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        groups = Path(tmp) / "groups.jsonl"
        synthetic(groups, load_tokenizer(args.model), args.g, args.prompt_tokens, args.completion_tokens,
                  args.steps)
        cfg = TrainConfig(model=args.model, loss=args.loss, groups_per_step=1, groups_per_forward=1,
                          max_steps=args.steps, checkpoint_every=10_000, max_length=8192, device=args.device,
                          export_gguf=False, shared_prompt=args.forward == "shared")
        t0 = time.perf_counter()
        trainer = GroupwiseDPOTrainer(cfg, Path(tmp) / "run")
        trainer.fit([groups])
        total = time.perf_counter() - t0
        steps = [h["seconds"] for h in trainer.history_[1:]] or [trainer.history_[0]["seconds"]]
        peak = (torch.cuda.max_memory_allocated() / 2**30 if trainer.device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        enc = trainer.history_
        print(json.dumps({"model": args.model, "loss": args.loss, "G": args.g, "forward": args.forward, "device": str(trainer.device),
                          "dtype": str(trainer.dtype).split(".")[-1], "s_per_step": sum(steps) / len(steps),
                          "peak_gb": peak, "trainable_params": trainer.summary_["trainable_params"],
                          "total_s": total, "steps": len(enc)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,smollm2-135m-instruct")
    ap.add_argument("--groups", default="2,4,8")
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--completion-tokens", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--forward", default="shared", help="shared, padded or both (comma-separated)")
    ap.add_argument("--losses", default="listwise", help="listwise, softmax, pairwise, pairwise_margin, sft "
                    "(comma-separated)")
    ap.add_argument("--json", type=Path, help="Also write the rows here.")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--g", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--loss", default="listwise", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    print(f"prompt ~{args.prompt_tokens} tokens, completions ~{args.completion_tokens} tokens, "
          f"{args.steps} steps (first untimed)\n")
    print("| model | loss | G | forward | device | dtype | s/step | peak memory (GB) | trainable params |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for loss in args.losses.split(","):
            for g in ([1] if loss == "sft" else map(int, args.groups.split(","))):
                for forward in args.forward.split(","):
                    cmd = [sys.executable, __file__, "--worker", "--model", model, "--g", str(g), "--steps",
                           str(args.steps), "--prompt-tokens", str(args.prompt_tokens), "--completion-tokens",
                           str(args.completion_tokens), "--device", args.device, "--forward", forward,
                           "--loss", loss]
                    res = subprocess.run(cmd, capture_output=True, text=True)
                    if res.returncode != 0:
                        err = (res.stderr.strip().splitlines() or ["no output"])[-1][:120]
                        print(f"| {model} | {loss} | {g} | {forward} | failed: {err} |||||")
                        continue
                    row = json.loads(res.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    print(f"| {model} | {loss} | {g} | {forward} | {row['device']} | {row['dtype']} | "
                          f"{row['s_per_step']:.2f} | {row['peak_gb']:.2f} | {row['trainable_params']:,} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
