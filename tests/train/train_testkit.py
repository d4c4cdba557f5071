"""Synthetic preference groups for trainer tests (no LLM, no workspace)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = "running shoes garden tools tax forms birthday cake trail maps coffee beans piano lessons".split()


def synthetic_groups(path: Path, n_train: int = 6, n_val: int = 2, size: int = 4, seed: int = 0) -> Path:
    """Groups whose best candidate always starts with the same persona label, so a model can
    learn the ranking; prompts and completions vary in length (exercises padding)."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for u in range(n_train + n_val):
            memories = "\n".join(f"{i}. [2006-03-0{i % 9 + 1}] " + " ".join(rng.choices(WORDS, k=rng.randint(3, 9)))
                                 for i in range(1, rng.randint(3, 7)))
            messages = [{"role": "system", "content": "You describe users as personas."},
                        {"role": "user", "content": f"Memories:\n{memories}\nAnswer with JSON."}]
            cands = []
            for j in range(size):
                label = "Trail Runner" if j == 0 else rng.choice(["Cake Baker", "Tax Filer", "Piano Student"])
                desc = " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))
                comp = json.dumps({"personas": [{"label": label, "description": desc, "evidence": [1]}]})
                cands.append({"set_id": f"s{u}-{j}", "builder": "model", "completion": comp,
                              "score": 1.0 - 0.2 * j, "rank": j + 1})
            rng.shuffle(cands)
            f.write(json.dumps({"user_id": f"u{u}", "role": "train" if u < n_train else "val",
                                "messages": messages, "candidates": cands}) + "\n")
    return path
