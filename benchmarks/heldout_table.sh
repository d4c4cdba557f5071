#!/usr/bin/env bash
# Rebuild the held-out future-interaction table of docs/results/2026-11-26-heldout-50-users.md ("every system on
# 50 held-out users") for one shared dataset, from its raw files. Resumable: every stage skips
# stored work, and every LLM answer is cached.
#
#   benchmarks/heldout_table.sh aol 150 runs/heldout        # AOL: 150 sampled users, 50 held out
#   benchmarks/heldout_table.sh instacart 110 runs/heldout  # Instacart: 110 sampled users, 50 held out
#
# Steps: ingest -> split (last 20% of active days) -> extractive memories of the history -> held-out roles
# (train roles: 50 test, 10 val, the rest train; the same roles as `train build-groups`) ->
# personas for the 50 test users: single and cluster-then-label with the default model
# (Qwen2.5-Coder-1.5B), the persona model (SmolLM2-135M) before training and with the LoRA
# adapters of docs/training.md ("Results") when ADAPTERS holds listwise/adapter.gguf and
# pairwise/adapter.gguf -> quality scores (embedding judge) -> evaluate (all protocols, failed
# persona sets at chance) -> the two controls (benchmarks/leakage_controls.py).
set -euo pipefail

ds="${1:?dataset: aol, instacart or movielens}"; users="${2:?users to sample, e.g. 150}"; out="${3:-runs/heldout}"
adapters="${ADAPTERS:-runs}"
VAL=10 TEST=50
# shellcheck source=benchmarks/heldout_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/heldout_lib.sh"
test=(--memories extractive --role test -q)
big=(--model qwen2.5-coder-1.5b-instruct)
small=(--model smollm2-135m-instruct --max-memories 16 --max-retries 0 --max-tokens 512)
t single "$pm" personas -w "$ws" -b single "${big[@]}" --max-memories 16 --max-tokens "$single_tokens" "${test[@]}"
t cluster "$pm" personas -w "$ws" -b cluster "${big[@]}" --max-memories 8 --max-tokens 256 "${test[@]}"
t model_base "$pm" personas -w "$ws" -b model --name model_base "${small[@]}" "${test[@]}"
systems='baselines,memories=extractive,personas:single=single@extractive,personas:cluster=cluster@extractive'
systems+=',personas:model_base=model_base'
for loss in listwise pairwise; do
  a="$adapters/$loss/adapter.gguf"
  if [[ -f $a ]]; then
    t "dpo_$loss" "$pm" personas -w "$ws" -b model --name "dpo_$loss" "${small[@]}" --adapter "$a" "${test[@]}"
    systems+=",personas:dpo_$loss=dpo_$loss"
  else
    echo "no $a: the dpo_$loss row is left out (train it as in docs/training.md)" >&2
  fi
done
t score "$pm" score -w "$ws" --judge embedding -q
t evaluate "$pm" evaluate -w "$ws" --role test --protocol all --systems "$systems" --failed-sets chance --seed 0 -q
t controls "$py" "$here/benchmarks/leakage_controls.py" -w "$ws" --role test --systems "$systems" --failed-sets chance
echo "== $ds: $ws/reports/evaluate.md, $ws/reports/controls.json" >&2
