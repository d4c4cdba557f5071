#!/bin/bash
# Device smoke run: the carried wheels import, the CUDA path of the trainer trains (random-weight SmolLM2
# architecture on synthetic groups: the loss must fall), and model sizes are timed.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.gpu/stub:$PWD PERSONAMINER_CACHE_DIR=/tmp/pmcache HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/train/test_losses.py 2>&1 | tail -1
python3 - <<'PY' || exit 4
import json, torch, transformers, peft
print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "cuda", torch.cuda.is_available())
from pathlib import Path
from tests.train.train_testkit import synthetic_groups
from personaminer.train.trainer import GroupwiseDPOTrainer, TrainConfig
g = synthetic_groups(Path("/tmp/g.jsonl"), n_train=8, n_val=2, size=4)
for loss in ("listwise", "pairwise"):
    cfg = TrainConfig(model="random:.gpu/smollm2", loss=loss, beta=1.0, learning_rate=2e-3, epochs=6, groups_per_step=2,
                      checkpoint_every=1000, max_length=1024)
    s = GroupwiseDPOTrainer(cfg, f"/tmp/smoke_{loss}").fit([g]).summary_
    print("smoke", loss, json.dumps({k: s[k] for k in ("device", "dtype", "steps", "loss_first_fifth", "loss_last_fifth", "seconds_per_step")}))
PY
timeout 300 python3 benchmarks/bench_train.py --models random:.gpu/smollm2,random:.gpu/qwen05,random:.gpu/qwen15 --groups 4,8 --steps 4 --json $OUT/bench_gpu.json
