#!/usr/bin/env bash
# The full learning loop of #22 (docs/training.md, "The full loop"), from the shared datasets to the
# held-out table, in phases. Every phase is resumable: stored sets, scores and LLM answers are reused,
# the trainers resume from their checkpoints; re-run the same command after a stop.
#
#   benchmarks/learning_loop.sh OUT [PHASE ...]   # PHASE: data teachers verified sft groups dpo heldout
#                                                 #        table judge hr (default: all, in this order)
#
# Sizes and choices (environment): STUDENT (qwen2.5-coder-0.5b-instruct), USERS per dataset (90),
# TEST_USERS (30), VAL_USERS (6) -> 54 train users per dataset, 162 in all; G (4) samples per group;
# DECODING of the student (stepwise); EPOCHS of SFT (3) and of DPO (2); BEST, the trained system the
# LLM judge scores (listwise). Datasets: AOL, Instacart, MovieLens; extractive memories of the 15
# most recent history days (actions before each user's split cutoff, so HR@10 reads the future).
#
# Phases, and their CPU estimate on 2 cores at the default sizes (measured per-user costs of
# docs/training.md; the estimate of each phase is printed before it runs):
#   data      ingest, split (last 20% of active days), memories, roles             minutes
#   teachers  cluster-then-label (1.5B labeller) on the 180 train/val users        ~2.7 h (55 s/user)
#   verified  each train/val user's best teacher set with final >= 0.5             ~5 min
#   sft       LoRA SFT of STUDENT on the verified sets                             ~0.5-1 h
#   groups    G samples of the SFT student per train/val user + its verified set   ~2.5 h (0.5B: ~12 s/sample)
#   dpo       listwise, pairwise, softmax and listwise + RPO anchor from SFT,      ~2-3 h
#             same groups, epochs and steps each (equal compute)
#   heldout   on the 90 test users: cluster and single (1.5B), the untrained 1.5B  ~4-5 h
#             persona model (AOL), and base / SFT / 4 trained students (compare)
#   table     the held-out quality table, embedding judge (heldout_quality.py)      minutes
#   judge     the LLM judge on base, SFT, BEST and cluster (~0.6 s per claim)       ~2 h
#   hr        HR@10 under every protocol, failed sets at chance                    minutes
set -euo pipefail
out="${1:?usage: learning_loop.sh OUT [PHASE ...]}"; shift
phases=("$@"); [[ ${#phases[@]} -gt 0 ]] || phases=(data teachers verified sft groups dpo heldout table judge hr)
student="${STUDENT:-qwen2.5-coder-0.5b-instruct}"
users="${USERS:-90}"; test_users="${TEST_USERS:-30}"; val_users="${VAL_USERS:-6}"
g="${G:-4}"; decoding="${DECODING:-stepwise}"; sft_epochs="${EPOCHS:-3}"; dpo_epochs="${DPO_EPOCHS:-2}"
best="${BEST:-listwise}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
py="${PYTHON:-$here/.venv/bin/python}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"
datasets=(aol instacart movielens)
runs="$out/runs"; mkdir -p "$runs"
big=(--memories extractive --model qwen2.5-coder-1.5b-instruct)
cluster=(-b cluster "${big[@]}" --max-memories 8 --max-tokens 256)
losses=(listwise pairwise softmax listwise-rpo)
input() {
  case "$1" in
    aol) echo "$shared/aol_top1000_users/user_search_logs.tar.gz" ;;
    instacart) echo "$shared/instacart_593_users" ;;
    movielens) echo "$shared/movielens_100k" ;;
  esac
}
t() {  # t PHASE NAME COMMAND...: run one step and append its wall seconds to OUT/timings.tsv
  local phase="$1" name="$2" t0; t0=$(date +%s); shift 2
  echo "== $phase: $name ($(date -u +%H:%M))" >&2
  "$@"
  echo -e "$phase\t$name\t$(( $(date +%s) - t0 ))" >> "$out/timings.tsv"
}
estimate() { echo "== phase $1: estimated $2 on 2 cores (one LLM job at a time)" >&2; }
adapters() {  # --adapter NAME=PATH for every trained student that exists
  local a=(--adapter "sft=$runs/sft/adapter.gguf")
  for l in "${losses[@]}"; do [[ -f $runs/$l/adapter.gguf ]] && a+=(--adapter "$l=$runs/$l/adapter.gguf"); done
  echo "${a[@]}"
}

for phase in "${phases[@]}"; do
  case "$phase" in
  data)
    estimate data "a few minutes"
    for d in "${datasets[@]}"; do
      ws="$out/ws/$d"; mkdir -p "$ws"; src="$(input "$d")"
      [[ -e $src ]] || { echo "$src not found (set PERSONAMINER_SHARED_DATASETS)" >&2; exit 1; }
      [[ -f $ws/.ingested ]] || { t data "$d ingest" "$pm" ingest "$src" -w "$ws" -q && touch "$ws/.ingested"; }
      t data "$d split" "$pm" split -w "$ws" --users "$users" --seed 0
      t data "$d memories" "$pm" memories -w "$ws" --mode extractive --history --max-days 15 --users "$users" --seed 0 -q
      t data "$d roles" "$pm" train roles -w "$ws" --users "$users" --seed 0 --val-users "$val_users" --test-users "$test_users"
    done ;;
  teachers)
    estimate teachers "$(( 3 * (users - test_users) * 55 / 60 )) min (cluster 1.5B, ~55 s/user)"
    for d in "${datasets[@]}"; do
      for r in train val; do t teachers "$d cluster $r" "$pm" personas -w "$out/ws/$d" "${cluster[@]}" --role "$r" -q; done
    done ;;
  verified)
    estimate verified "~5 min (embedding judge)"
    for d in "${datasets[@]}"; do
      t verified "$d" "$pm" train verified -w "$out/ws/$d" --teacher cluster@extractive --max-memories 24 --out "$out/verified/$d"
    done ;;
  sft)
    estimate sft "~$(( 3 * (users - test_users) * sft_epochs / 4 )) steps of 4 sets (0.5B: ~1-2 min/step in fp32)"
    t sft "$student" "$pm" train sft "$out"/verified/*/verified.jsonl --out "$runs/sft" --model "$student" --epochs "$sft_epochs" ;;
  groups)
    estimate groups "$(( 3 * (users - test_users) * g * 12 / 60 )) min (G=$g samples of ~12 s)"
    for d in "${datasets[@]}"; do
      t groups "$d" "$pm" train build-groups -w "$out/ws/$d" --users "$users" --seed 0 --val-users "$val_users" \
        --test-users "$test_users" -G "$g" --model "$student" --adapter "$runs/sft/adapter.gguf" \
        --verified "$out/verified/$d/verified.jsonl" --name "candidates-sft@extractive" --max-memories 24 \
        --decoding "$decoding" --out "$out/groups/$d"
    done ;;
  dpo)
    estimate dpo "4 losses x ${dpo_epochs} epochs over the groups (see the sft phase's s/step)"
    for l in "${losses[@]}"; do
      extra=(--loss "${l%-rpo}"); [[ $l == *-rpo ]] && extra+=(--sft-weight 1.0)
      t dpo "$l" "$pm" train fit "$out"/groups/*/groups.jsonl --out "$runs/$l" --model "$student" \
        --init-adapter "$runs/sft/adapter" --epochs "$dpo_epochs" "${extra[@]}"
    done ;;
  heldout)
    estimate heldout "$(( 3 * test_users * (55 + 45) / 60 )) min (cluster, single) + $(( test_users * 15 / 60 )) min (1.5B persona model, AOL) + $(( 3 * test_users * 6 * 12 / 60 )) min (6 students)"
    for d in "${datasets[@]}"; do
      ws="$out/ws/$d"
      t heldout "$d cluster" "$pm" personas -w "$ws" "${cluster[@]}" --role test -q
      t heldout "$d single" "$pm" personas -w "$ws" -b single "${big[@]}" --max-memories 16 --max-tokens 256 --role test -q
      [[ $d == aol ]] && t heldout "$d model-1.5b" "$pm" personas -w "$ws" -b model "${big[@]}" --max-memories 24 \
        --name model-1.5b@extractive --role test -q
      # shellcheck disable=SC2046
      t heldout "$d students" "$pm" train compare -w "$ws" --model "$student" $(adapters) --max-retries 0 \
        --decoding "$decoding" --max-memories 24 --tag loop
    done ;;
  table|judge)
    judge=embedding; systems=(cluster=cluster@extractive single=single@extractive base=compare:loop-base@extractive
                              sft=compare:loop-sft@extractive)
    for l in "${losses[@]}"; do systems+=("$l=compare:loop-$l@extractive"); done
    systems+=(model-1.5b=model-1.5b@extractive)
    if [[ $phase == judge ]]; then
      judge=llm; systems=(cluster=cluster@extractive base=compare:loop-base@extractive sft=compare:loop-sft@extractive
                          "$best=compare:loop-$best@extractive")
      estimate judge "~2 h (LLM judge on 4 systems x $(( 3 * test_users )) sets)"
    fi
    sys=(); for s in "${systems[@]}"; do sys+=(--system "$s"); done
    t "$phase" "$judge judge" "$py" "$here/benchmarks/heldout_quality.py" \
      --workspace "aol=$out/ws/aol" --workspace "instacart=$out/ws/instacart" --workspace "movielens=$out/ws/movielens" \
      "${sys[@]}" --reference cluster --reference sft --judge "$judge" --score --out "$out/heldout-$judge.json" \
      | tee "$out/heldout-$judge.md" ;;
  hr)
    estimate hr "minutes"
    for d in "${datasets[@]}"; do
      spec='baselines,memories=extractive,personas:cluster=cluster@extractive,personas:single=single@extractive'
      for s in base sft "${losses[@]}"; do spec+=",personas:$s=compare:loop-$s@extractive"; done
      [[ $d == aol ]] && spec+=',personas:model-1.5b=model-1.5b@extractive'
      t hr "$d" "$pm" evaluate -w "$out/ws/$d" --role test --protocol all --systems "$spec" --failed-sets chance --seed 0 -q
    done ;;
  *) echo "unknown phase $phase (data teachers verified sft groups dpo heldout table judge hr)" >&2; exit 2 ;;
  esac
done
