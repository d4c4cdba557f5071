#!/usr/bin/env bash
# Rebuild the future-interaction table (docs/evaluate.md) for each shared dataset, from raw files:
#   ingest -> split -> memories -> personas (each builder) -> score -> evaluate
# Resumable: ingest is skipped once done, split is idempotent, memories/personas/score skip stored
# work, and evaluate is re-run (it only reads). Timings go to OUT/<dataset>/timings.tsv.
#
#   benchmarks/run_paper_table.sh --no-llm --users 150               # baselines + extractive memories
#   benchmarks/run_paper_table.sh --users 60 --model qwen2.5-coder-1.5b-instruct --memory-mode llm \
#       --adapter dpo_listwise=/path/listwise.gguf --adapter dpo_pairwise=/path/pairwise.gguf
#
# Options:
#   --datasets LIST      comma list of aol, instacart, merrec, movielens (default: aol,instacart,merrec)
#   --users N            seeded user sample per dataset (default 150); --seed S (default 0)
#   --out DIR            workspaces and reports (default: paper-table)
#   --memory-mode M      extractive (default, no LLM) or llm; --max-days D limits memory days per user
#   --model NAME         catalog model / GGUF for every LLM step (default: the catalog default)
#   --builders LIST      persona builders (default: single,cluster,model)
#   --adapter NAME=PATH  a trained LoRA for the persona model, evaluated as system NAME (repeatable)
#   --judge J            quality judge for `score`: embedding (default) or llm
#   --protocol P         sampled, hard, full or all (default all); --max-targets T (default 20)
#   --no-llm             skip every LLM step (personas, LLM memories): non-LLM systems only
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"

datasets="aol,instacart,merrec"; users=150; seed=0; out="paper-table"; memory_mode="extractive"; max_days=""
model=""; builders="single,cluster,model"; judge="embedding"; protocol="all"; max_targets=20; no_llm=0
adapters=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --datasets) datasets="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --memory-mode) memory_mode="$2"; shift 2 ;;
    --max-days) max_days="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --builders) builders="$2"; shift 2 ;;
    --adapter) adapters+=("$2"); shift 2 ;;
    --judge) judge="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    --max-targets) max_targets="$2"; shift 2 ;;
    --no-llm) no_llm=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $no_llm == 1 && $memory_mode == llm ]]; then
  echo "--no-llm and --memory-mode llm exclude each other" >&2; exit 2
fi
model_args=(); [[ -n $model ]] && model_args=(--model "$model")
days_args=(); [[ -n $max_days ]] && days_args=(--max-days "$max_days")

input_of() {
  case "$1" in
    aol) echo "$shared/aol_top1000_users/user_search_logs.tar.gz" ;;
    instacart) echo "$shared/instacart_593_users" ;;
    merrec) echo "$shared/merrec_head_sample/merrec_head.csv" ;;
    movielens) echo "$shared/movielens_100k" ;;
    *) echo "unknown dataset $1" >&2; return 1 ;;
  esac
}

step() {  # step DATASET NAME COMMAND...: run, time, log
  local ds="$1" name="$2"; shift 2
  local t0; t0=$(date +%s)
  echo "== $ds: $name" >&2
  "$@"
  echo -e "$name\t$(( $(date +%s) - t0 ))" >> "$out/$ds/timings.tsv"
}

for ds in ${datasets//,/ }; do
  input="$(input_of "$ds")"
  if [[ ! -e $input ]]; then echo "skip $ds: $input not found" >&2; continue; fi
  ws="$out/$ds/ws"
  mkdir -p "$out/$ds"
  echo -e "# $(date -u +%FT%TZ) users=$users seed=$seed memory_mode=$memory_mode model=${model:-default} no_llm=$no_llm" \
    >> "$out/$ds/timings.tsv"
  if [[ ! -f $out/$ds/.ingested ]]; then
    step "$ds" ingest "$pm" ingest "$input" -w "$ws" -q && touch "$out/$ds/.ingested"
  fi
  step "$ds" split "$pm" split -w "$ws" --users "$users" --seed "$seed"
  mem_args=(--mode "$memory_mode" --users "$users" --seed "$seed" "${days_args[@]}")
  [[ $memory_mode == llm ]] && mem_args+=("${model_args[@]}")
  step "$ds" "memories-$memory_mode" "$pm" memories -w "$ws" "${mem_args[@]}" -q
  systems="baselines,memories=$memory_mode"
  if [[ $no_llm == 0 ]]; then
    for b in ${builders//,/ }; do
      step "$ds" "personas-$b" "$pm" personas -w "$ws" --builder "$b" --memories "$memory_mode" \
        --users "$users" --seed "$seed" "${model_args[@]}" -q
      if [[ $b == model ]]; then
        systems+=",personas:model_base=model:!lora@$memory_mode"
      else
        systems+=",personas:$b=$b@$memory_mode"
      fi
    done
    for a in "${adapters[@]}"; do
      name="${a%%=*}"; path="${a#*=}"
      step "$ds" "personas-$name" "$pm" personas -w "$ws" --builder model --adapter "$path" \
        --memories "$memory_mode" --users "$users" --seed "$seed" "${model_args[@]}" -q
      systems+=",personas:$name=model:$(basename "$path")@$memory_mode"
    done
    judge_args=(--judge "$judge"); [[ $judge == llm ]] && judge_args+=("${model_args[@]}")
    step "$ds" "score-$judge" "$pm" score -w "$ws" "${judge_args[@]}" -q
  fi
  step "$ds" evaluate "$pm" evaluate -w "$ws" --protocol "$protocol" --systems "$systems" \
    --max-targets "$max_targets" --seed "$seed" -q
  cp "$ws/reports/evaluate.md" "$out/$ds/evaluate.md"
  cp "$ws/reports/evaluate.json" "$out/$ds/evaluate.json"
  echo "== $ds: table in $out/$ds/evaluate.md" >&2
done
