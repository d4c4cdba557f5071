# Shared by heldout_table.sh and routed_table.sh (sourced, not run): paths, the dataset's raw
# input, the timing helper and the first four steps (ingest, split, extractive history memories,
# train roles). Expects ds, users, out, and VAL (validation users) and TEST (test users) set.
# shellcheck shell=bash
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pm="${PERSONAMINER:-$here/.venv/bin/personaminer}"
py="${PYTHON:-$here/.venv/bin/python}"
shared="${PERSONAMINER_SHARED_DATASETS:-$here/../shared/datasets}"
roles_opts=()
case "$ds" in
  # single's completion budget: AOL keeps the default 1,024 tokens. On Instacart the 1.5B model
  # often loops on basket lists ("They also buy ...") up to the budget, 2 to 3 minutes per
  # answer here, so single gets 256 there, as cluster does (a valid answer is 50 to 120 tokens).
  aol) input="$shared/aol_top1000_users/user_search_logs.tar.gz"; single_tokens=1024 ;;
  instacart) input="$shared/instacart_593_users"; single_tokens=256 ;;
  # MovieLens: 65% of a random sample (294 of 450) rated everything on one day, so cannot be split; roles go
  # only to split users (--split-only), and the sample must be about 3x the held-out users (450).
  movielens) input="$shared/movielens_100k"; single_tokens=256; roles_opts=(--split-only) ;;
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
t roles "$pm" train roles -w "$ws" --users "$users" --seed 0 --val-users "$VAL" --test-users "$TEST" "${roles_opts[@]}"
