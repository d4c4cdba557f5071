#!/usr/bin/env bash
# Rebuild the future-interaction table (docs/evaluate.md) for each shared dataset, from raw files:
#   ingest -> split -> memories -> personas (each builder) -> score -> evaluate
# Resumable: ingest is skipped once done, split is idempotent, memories/personas/score skip stored
# work, and evaluate is re-run (it only reads). Timings go to OUT/<dataset>/timings.tsv.
#
#   benchmarks/run_paper_table.sh --no-llm --users 150               # baselines + extractive memories
#   benchmarks/run_paper_table.sh --users 60 --model qwen2.5-coder-1.5b-instruct --memory-mode llm \
#       --adapter dpo_listwise=/path/listwise.gguf --adapter dpo_pairwise=/path/pairwise.gguf
#   # the table of docs/results/2026-11-26-heldout-50-users.md: 50 held-out test users of 150 per dataset, a model per builder
#   benchmarks/run_paper_table.sh --datasets aol --users 150 --role test --test-users 50 --max-memories 16 \
#       --builders single:qwen2.5-coder-1.5b-instruct,cluster:qwen2.5-coder-0.5b-instruct,model:smollm2-135m-instruct \
#       --model-retries 0 --model-max-tokens 512 --failed-sets chance --adapter dpo_listwise=runs/listwise/adapter.gguf --adapter dpo_pairwise=runs/pairwise/adapter.gguf
#
# Options:
#   --datasets LIST      comma list of aol, instacart, merrec, movielens (default: aol,instacart,merrec)
#   --users N            seeded user sample per dataset (default 150); --seed S (default 0)
#   --out DIR            workspaces and reports (default: paper-table)
#   --memory-mode M      extractive (default, no LLM) or llm; --max-days D limits memory days per user
#   --model NAME         catalog model / GGUF for every LLM step (default: the catalog default)
#   --builders LIST      persona builders, each B or B:MODEL (default: single,cluster,model)
#   --max-memories M     memories per persona prompt (default 40); --model-retries R and
#                        --model-max-tokens N: re-asks and answer budget of the persona model
#                        (defaults 2 and 1024; `train build-groups`/`compare` use 0 and 512)
#   --adapter NAME=PATH  a trained LoRA for the persona model, evaluated as system NAME (repeatable)
#   --role R             build personas for and evaluate only the users holding held-out role R (test):
#                        `train roles --users N --seed S --test-users T --val-users V` assigns them, as
#                        `train build-groups` with the same flags does (the pool stays every split user)
#   --judge J            quality judge for `score`: embedding (default) or llm
#   --protocol P         sampled, hard, full or all (default all); --max-targets T (default 20)
#   --failed-sets F      missing (default) or chance: how `evaluate` counts a failed persona set
#   --no-llm             skip every LLM step (personas, LLM memories): non-LLM systems only
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"

datasets="aol,instacart,merrec"; users=150; seed=0; out="paper-table"; memory_mode="extractive"; max_days=""
model=""; builders="single,cluster,model"; judge="embedding"; protocol="all"; max_targets=20; no_llm=0
adapters=(); failed_sets="missing"; max_memories=40; model_retries=""; model_max_tokens=""; role=""; test_users=30; val_users=10
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
    --max-memories) max_memories="$2"; shift 2 ;;
    --failed-sets) failed_sets="$2"; shift 2 ;;
    --model-retries) model_retries="$2"; shift 2 ;;
    --model-max-tokens) model_max_tokens="$2"; shift 2 ;;
    --role) role="$2"; shift 2 ;;
    --test-users) test_users="$2"; shift 2 ;;
    --val-users) val_users="$2"; shift 2 ;;
    --judge) judge="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    --max-targets) max_targets="$2"; shift 2 ;;
    --no-llm) no_llm=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $no_llm == 1 && $memory_mode == llm ]]; then
  echo "--no-llm and --memory-mode llm exclude each other" >&2; exit 2
fi
model_args=(); [[ -n $model ]] && model_args=(--model "$model")
days_args=(); [[ -n $max_days ]] && days_args=(--max-days "$max_days")
retry_args=(); [[ -n $model_retries ]] && retry_args=(--max-retries "$model_retries")
[[ -n $model_max_tokens ]] && retry_args+=(--max-tokens "$model_max_tokens")
short() { local m="${1#qwen2.5-coder-}"; echo "${m%-instruct}" | tr -c 'a-z0-9\n' '_'; }

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
  who=(--users "$users" --seed "$seed"); eval_who=()
  if [[ -n $role ]]; then
    step "$ds" roles "$pm" train roles -w "$ws" --users "$users" --seed "$seed" --test-users "$test_users" \
      --val-users "$val_users"
    who=(--role "$role" --seed "$seed"); eval_who=(--role "$role")
  fi
  mem_args=(--mode "$memory_mode" --history --users "$users" --seed "$seed" "${days_args[@]}")
  [[ $memory_mode == llm ]] && mem_args+=("${model_args[@]}")
  step "$ds" "memories-$memory_mode" "$pm" memories -w "$ws" "${mem_args[@]}" -q
  systems="baselines,memories=$memory_mode"
  if [[ $no_llm == 0 ]]; then
    entries=(${builders//,/ }); persona_model=("${model_args[@]}")
    for e in "${entries[@]}"; do
      b="${e%%:*}"; m=""; [[ $e == *:* ]] && m="${e#*:}"
      margs=("${model_args[@]}"); [[ -n $m ]] && margs=(--model "$m")
      name="$b"; [[ $(printf '%s\n' "${entries[@]}" | grep -c "^$b\(:\|$\)") -gt 1 && -n $m ]] && name="${b}_$(short "$m")"
      extra=(); [[ $b == model ]] && extra=("${retry_args[@]}") && persona_model=("${margs[@]}")
      [[ $b == model ]] && name="${name/#model/model_base}"
      step "$ds" "personas-$name" "$pm" personas -w "$ws" --builder "$b" --name "$name" --memories "$memory_mode" \
        --max-memories "$max_memories" "${who[@]}" "${margs[@]}" "${extra[@]}" -q
      systems+=",personas:$name=$name"
    done
    for a in "${adapters[@]}"; do
      name="${a%%=*}"; path="${a#*=}"
      step "$ds" "personas-$name" "$pm" personas -w "$ws" --builder model --name "$name" --adapter "$path" \
        --memories "$memory_mode" --max-memories "$max_memories" "${who[@]}" "${persona_model[@]}" \
        "${retry_args[@]}" -q
      systems+=",personas:$name=$name"
    done
    judge_args=(--judge "$judge"); [[ $judge == llm ]] && judge_args+=("${model_args[@]}")
    step "$ds" "score-$judge" "$pm" score -w "$ws" "${judge_args[@]}" -q
  fi
  step "$ds" evaluate "$pm" evaluate -w "$ws" --protocol "$protocol" --systems "$systems" \
    --max-targets "$max_targets" --seed "$seed" --failed-sets "$failed_sets" "${eval_who[@]}" -q
  cp "$ws/reports/evaluate.md" "$out/$ds/evaluate.md"
  cp "$ws/reports/evaluate.json" "$out/$ds/evaluate.json"
  echo "== $ds: table in $out/$ds/evaluate.md" >&2
done
