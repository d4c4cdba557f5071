#!/usr/bin/env bash
# Build the real persona sets that the quality benchmarks of docs/quality.md read: for AOL and
# Instacart 20 sampled users with all three builders, for MovieLens 10 with cluster-then-label.
# Resumable (every stage skips stored work; LLM answers are cached).
#
#   benchmarks/quality_workspaces.sh [OUT] [PHASE]   # OUT default runs/quality; PHASE memories|all
#   (memories: ingest and extractive memories only, no LLM, enough for judge_benchmark.py); then:
#   .venv/bin/python benchmarks/quality_sanity.py --workspace OUT/aol --workspace OUT/instacart \
#       --workspace OUT/movielens --per-workspace 10 --judge llm
#
# Models: single and cluster with the default Qwen2.5-Coder-1.5B, the persona model with
# SmolLM2-135M (as in docs/evaluate.md). Extractive memories, the 15 most recent days per user.
# CPU estimate on 2 cores (from earlier runs: cluster ~70 s/user, single ~40 s, SmolLM2 ~10 s):
# about 90 minutes in all at the default sizes. Sizes: AOL_USERS, INSTACART_USERS (default 20),
# MOVIELENS_USERS (10); a seeded sample of N users holds the sample of any smaller N, so a larger
# run extends a smaller one.
set -euo pipefail
out="${1:-runs/quality}"
phase="${2:-all}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"
big=(--model qwen2.5-coder-1.5b-instruct)
small=(--model smollm2-135m-instruct --max-memories 16 --max-retries 0 --max-tokens 512)
for ds in aol instacart movielens; do
  case "$ds" in
    aol) input="$shared/aol_top1000_users/user_search_logs.tar.gz"; n="${AOL_USERS:-20}" ;;
    instacart) input="$shared/instacart_593_users"; n="${INSTACART_USERS:-20}" ;;
    movielens) input="$shared/movielens_100k"; n="${MOVIELENS_USERS:-10}" ;;
  esac
  ws="$out/$ds"; mkdir -p "$ws"
  [[ -f $ws/.ingested ]] || { "$pm" ingest "$input" -w "$ws" -q && touch "$ws/.ingested"; }
  who=(--users "$n" --seed 0)
  "$pm" memories -w "$ws" --mode extractive --max-days 15 "${who[@]}" -q
  [[ $phase == memories ]] && continue
  "$pm" personas -w "$ws" -b cluster --memories extractive "${big[@]}" --max-memories 8 --max-tokens 256 "${who[@]}" -q
  if [[ $ds != movielens ]]; then
    "$pm" personas -w "$ws" -b single --memories extractive "${big[@]}" --max-memories 16 --max-tokens 256 "${who[@]}" -q
    "$pm" personas -w "$ws" -b model --memories extractive "${small[@]}" "${who[@]}" -q
  fi
done
echo "persona sets in $out/{aol,instacart,movielens}" >&2
