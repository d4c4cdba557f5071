#!/usr/bin/env bash
# Rebuild a student pilot of docs/training.md (#22 item 6) from nothing but the shared datasets.
#
#   benchmarks/student_pilot.sh OUT [STUDENT] [TAG]   # STUDENT default qwen2.5-coder-0.5b-instruct
#   TEACHERS="model" DECODING=stepwise benchmarks/student_pilot.sh OUT ...   # the shortened pilot of docs/training.md
# DECODING (oneshot or stepwise) is how the persona model writes sets, the 1.5B teacher's (collection
# model-stepwise@extractive) and the student's held-out ones; TEACHERS the builders run as teachers.
#
# 1. OUT/ws/{aol,instacart,movielens}: 20 seeded users each, extractive memories of the 15 most
#    recent days (benchmarks/quality_workspaces.sh, memories phase; no LLM, about a minute);
# 2. roles over those users, seed 0: 13 train, 1 val, 6 test per dataset (student_pilot.py --roles-only);
# 3. teachers on the train/val users only: the 1.5B persona model (prompt v3, the 24 memories the
#    student is shown; ~15 s/user) and cluster-then-label with the 1.5B labeller (~70 s/user);
# 4. benchmarks/student_pilot.py: verified sets, SFT of STUDENT, held-out base vs SFT.
# CPU estimate on 2 cores: teachers ~1 h for the 42 users; SFT 21 steps (SmolLM2 31 s/step, the
# 0.5B model several times that); held-out sampling 18 users x 2 systems (15 to 60 s each).
# Resumable: every stage skips stored work and every LLM answer is cached (re-run the same command).
set -euo pipefail
out="${1:?usage: student_pilot.sh OUT [STUDENT] [TAG]}"
student="${2:-qwen2.5-coder-0.5b-instruct}"
tag="${3:-pilot}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
py="${PYTHON:-$here/.venv/bin/python}"
MOVIELENS_USERS=20 "$here/benchmarks/quality_workspaces.sh" "$out/ws" memories
ws=(--workspace "$out/ws/aol" --workspace "$out/ws/instacart" --workspace "$out/ws/movielens")
"$py" "$here/benchmarks/student_pilot.py" "${ws[@]}" --out "$out/pilot-$student" --roles-only
big=(--memories extractive --model qwen2.5-coder-1.5b-instruct)
teachers="${TEACHERS:-model cluster}"   # the builders whose sets the verified sets are chosen from
decoding="${DECODING:-oneshot}"          # of the persona model, teacher (1.5B) and student alike
teacher_name() {  # the collection of a teacher's sets
  if [[ $1 == model && $decoding != oneshot ]]; then echo "model-$decoding@extractive"; else echo "$1@extractive"; fi
}
for builder in $teachers; do
  for d in aol instacart movielens; do
    for r in train val; do
      if [[ $builder == model ]]; then
        extra=(--max-memories 24 --decoding "$decoding" --name "$(teacher_name model)")
      else
        extra=(--max-memories 8 --max-tokens 256)
      fi
      "$pm" personas -w "$out/ws/$d" -b "$builder" "${big[@]}" "${extra[@]}" --role "$r" -q
    done
  done
done
teacher_args=()
for builder in $teachers; do teacher_args+=(--teacher "$(teacher_name "$builder")"); done
"$py" "$here/benchmarks/student_pilot.py" "${ws[@]}" --out "$out/pilot-$student" --student "$student" --tag "$tag" \
  "${teacher_args[@]}" --decoding "$decoding"
