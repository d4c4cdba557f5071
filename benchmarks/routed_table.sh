#!/usr/bin/env bash
# The persona-routed retrieval table of docs/results/ (#23): every baseline (the strong ones
# included), intent memories, persona texts and persona-routed retrieval on held-out users of one
# shared dataset, from its raw files. Resumable: every stage skips stored work, and every LLM
# answer is cached.
#
#   benchmarks/routed_table.sh aol 150 runs/routed          # AOL: 150 sampled users
#   benchmarks/routed_table.sh instacart 150 runs/routed
#   benchmarks/routed_table.sh movielens 450 runs/routed    # 450: most MovieLens users cannot be split
#   BUILDERS=cluster benchmarks/routed_table.sh aol 150 runs/routed   # cluster only (no single rows)
#
# Steps: ingest -> split (last 20% of active days) -> extractive memories of the history -> roles
# (TEST_USERS test, VAL_USERS val, the rest train) -> personas (Qwen2.5-Coder-1.5B) of the test AND
# the validation users, for each builder of BUILDERS (the routed systems fit their weights on the
# validation users' sets) -> evaluate --role test (all protocols, failed sets at chance, the fit on
# the val users) -> the leakage controls (copied future, shuffled targets) with the same systems.
#
# CPU on 2 cores (2026-12-03): cluster about 37 s per user (8 memories per cluster, 256 tokens),
# single 40 to 90 s per user; evaluation a few minutes. 70 users per builder: about 45 CPU minutes
# for cluster, 50 to 100 for single.
set -euo pipefail

ds="${1:?dataset: aol, instacart or movielens}"; users="${2:?users to sample, e.g. 150}"; out="${3:-runs/routed}"
builders="${BUILDERS:-cluster single}"; test_users="${TEST_USERS:-50}"; val_users="${VAL_USERS:-20}"
VAL="$val_users" TEST="$test_users"
# shellcheck source=benchmarks/heldout_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/heldout_lib.sh"
big=(--model qwen2.5-coder-1.5b-instruct --memories extractive -q)
systems='baselines,memories=extractive'
compare=''  # each routed row against each strong non-persona baseline, paired (the bar of #23)
for b in $builders; do
  case "$b" in
    cluster) opts=(--max-memories 8 --max-tokens 256) ;;
    single) opts=(--max-memories 16 --max-tokens "$single_tokens") ;;
    *) echo "BUILDERS: cluster and/or single" >&2; exit 2 ;;
  esac
  for role in val test; do
    t "$b-$role" "$pm" personas -w "$ws" -b "$b" "${big[@]}" "${opts[@]}" --role "$role"
  done
  systems+=",personas:$b=$b@extractive,routed:routed_$b=$b@extractive"
  for ref in history_hybrid history_recency history_tfidf multi_interest; do compare+="${compare:+,}routed_$b:$ref"; done
done
[[ $builders == *cluster* ]] && { systems+=',multi_interest:mi_cluster=cluster@extractive'; compare+=',routed_cluster:mi_cluster'; }
t evaluate "$pm" evaluate -w "$ws" --role test --protocol all --systems "$systems" --failed-sets chance --seed 0 -q \
  --compare "$compare"
t controls "$py" "$here/benchmarks/leakage_controls.py" -w "$ws" --role test --systems "$systems" --failed-sets chance
echo "== $ds: $ws/reports/evaluate.md, $ws/reports/controls.json" >&2
