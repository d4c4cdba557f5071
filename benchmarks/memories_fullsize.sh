#!/usr/bin/env bash
# The memory issue's full-size runs: extractive and hybrid `llm` memories over every history day of
# 20 MovieLens, 20 Instacart and 20 AOL users and of the MerRec sample's one user with enough data
# (213: 1,218 actions over 13 days; the other six users hold 1 to 8 actions), then `llm-segment` on
# the most recent SEGMENT_DAYS day(s) of the same users (the token comparison), then the report and
# the summary faithfulness of the hybrid summaries. Resumable: every stage skips stored user-days and
# every LLM answer is cached, so a stopped run repeats no model call.
#
#   benchmarks/memories_fullsize.sh [OUT] [PHASE]    # OUT default runs/memories; PHASE all|report
#
# CPU estimate on 2 cores with the default Qwen2.5-Coder-1.5B (from the pilots in docs/memories.md:
# hybrid ~0.5 s per action, llm-segment ~6 s per action): hybrid MovieLens ~25 min, Instacart
# ~30 min, MerRec ~40 min, AOL (14,986 actions) ~2 h; llm-segment on one day per user ~15 min per
# dataset; faithfulness ~6 min per 150 summaries. About 4.5 CPU hours in all; run it alone.
# Sizes: USERS (default 20), SEGMENT_DAYS (1), FAITH_MAX (150).
set -euo pipefail
out="${1:-runs/memories}"
phase="${2:-all}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"
n="${USERS:-20}"
datasets=(movielens instacart merrec aol)
who() {
  case "$1" in
    merrec) echo "--user 213" ;;
    *) echo "--users $n --seed 0" ;;
  esac
}
if [[ $phase != report ]]; then
  for ds in "${datasets[@]}"; do
    case "$ds" in
      aol) input="$shared/aol_top1000_users/user_search_logs.tar.gz" ;;
      instacart) input="$shared/instacart_593_users" ;;
      movielens) input="$shared/movielens_100k" ;;
      merrec) input="$shared/merrec_head_sample/merrec_head.csv" ;;
    esac
    ws="$out/$ds"; mkdir -p "$ws"
    [[ -f $ws/.ingested ]] || { "$pm" ingest "$input" -w "$ws" -q && touch "$ws/.ingested"; }
    # shellcheck disable=SC2046
    "$pm" memories -w "$ws" --mode extractive $(who "$ds") -q
  done
  for ds in "${datasets[@]}"; do
    # shellcheck disable=SC2046
    "$pm" memories -w "$out/$ds" --mode llm $(who "$ds") -q
  done
  for ds in "${datasets[@]}"; do
    # shellcheck disable=SC2046
    "$pm" memories -w "$out/$ds" --mode llm-segment --max-days "${SEGMENT_DAYS:-1}" $(who "$ds") -q
  done
fi
args=()
for ds in "${datasets[@]}"; do args+=(--workspace "$ds=$out/$ds"); done
"$py" "$here/benchmarks/memories_report.py" "${args[@]}" --set extractive --set llm --set llm-segment \
  --versus llm:llm-segment --versus extractive:llm --out "$out/memories_report.json" | tee "$out/memories_report.md"
for ds in "${datasets[@]}"; do
  "$py" "$here/benchmarks/memory_faithfulness.py" --workspace "$out/$ds" --set llm --set llm-segment \
    --max-memories "${FAITH_MAX:-150}" --out "$out/$ds/faithfulness.json" | tee "$out/$ds/faithfulness.md"
done
