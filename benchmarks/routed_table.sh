#!/usr/bin/env bash
# The persona-routed retrieval table of docs/results/ (#23): every baseline (the strong ones
# included), intent memories, persona texts and persona-routed retrieval on held-out users of one
# shared dataset, from its raw files. Resumable: every stage skips stored work, and every LLM
# answer is cached.
#
#   benchmarks/routed_table.sh aol 150 runs/routed          # AOL: 150 sampled users
#   benchmarks/routed_table.sh instacart 150 runs/routed
#   benchmarks/routed_table.sh movielens 150 runs/routed
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
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
py="${PYTHON:-$here/.venv/bin/python}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"
case "$ds" in
  aol) input="$shared/aol_top1000_users/user_search_logs.tar.gz"; single_tokens=1024 ;;
  instacart) input="$shared/instacart_593_users"; single_tokens=256 ;;   # see heldout_table.sh
  movielens) input="$shared/movielens_100k"; single_tokens=256 ;;
  *) echo "dataset must be aol, instacart or movielens" >&2; exit 2 ;;
esac
[[ -e $input ]] || { echo "$input not found (set PERSONAMINER_SHARED_DATASETS)" >&2; exit 1; }
ws="$out/$ds"; mkdir -p "$ws"
t() {  # t NAME COMMAND...: run and time one step
  local name="$1" t0; t0=$(date +%s); shift
  echo "== $ds: $name" >&2
  "$@"
  echo -e "$name\t$(( $(date +%s) - t0 ))" >> "$ws/timings.tsv"
}

[[ -f $ws/.ingested ]] || { t ingest "$pm" ingest "$input" -w "$ws" -q && touch "$ws/.ingested"; }
t split "$pm" split -w "$ws" --users "$users" --seed 0
t memories "$pm" memories -w "$ws" --mode extractive --history --users "$users" --seed 0 -q
t roles "$pm" train roles -w "$ws" --users "$users" --seed 0 --val-users "$val_users" --test-users "$test_users"
big=(--model qwen2.5-coder-1.5b-instruct --memories extractive -q)
systems='baselines,memories=extractive'
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
done
[[ $builders == *cluster* ]] && systems+=',multi_interest:mi_cluster=cluster@extractive'
t evaluate "$pm" evaluate -w "$ws" --role test --protocol all --systems "$systems" --failed-sets chance --seed 0 -q
t controls "$py" "$here/benchmarks/leakage_controls.py" -w "$ws" --role test --systems "$systems" --failed-sets chance
echo "== $ds: $ws/reports/evaluate.md, $ws/reports/controls.json" >&2
