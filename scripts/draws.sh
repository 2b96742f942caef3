#!/usr/bin/env bash
# `train eval` on several draws of a benchmark, one JSON report per draw: seed 1 is
# data/bench/PRESET/lr itself; seeds 2..DRAWS are made once from data/eval_hr by `train degrade`
# under data/bench-draws/PRESET/seed-S/lr. Every draw pairs with data/bench/PRESET/hr: the HR
# crops do not depend on the seed. wild, codec and camera draw their degradation per image, so a
# figure on one draw says as much about the draw as about what is measured (docs/RESULTS.md).
#
# Usage: scripts/draws.sh PRESET DRAWS REPORTS EVAL_ARGS...
#   runs `train eval EVAL_ARGS --lr LR --hr HR --max-shift 8 --crop 256 --json REPORTS/seed-S.json`
#   for S = 1..DRAWS (used by stage1-draws.sh and sr-draws.sh, which summarise the reports)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 4 ]]; then
  sed -n '8,10p' "$0" >&2
  exit 2
fi
preset=$1 draws=$2 reports=$3
shift 3
train=${TRAIN:-target/release/train}
[[ -x $train ]] || { echo "draws.sh: no $train (cargo build --release)" >&2; exit 1; }
[[ $draws =~ ^[1-9][0-9]*$ ]] || { echo "draws.sh: DRAWS must be a positive integer, got $draws" >&2; exit 1; }
bench=data/bench/$preset
[[ -d $bench/lr && -d $bench/hr ]] || { echo "draws.sh: no $bench (scripts/table1-data.sh makes it)" >&2; exit 1; }
mkdir -p "$reports"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for seed in $(seq 1 "$draws"); do
  lr=$bench/lr
  if [[ $seed -gt 1 ]]; then
    dest=data/bench-draws/$preset/seed-$seed
    if [[ ! -f $dest/degradation.json ]]; then
      echo "making $dest" >&2
      rm -rf "$dest.partial"
      "$train" degrade data/eval_hr --out "$dest.partial" --preset "$preset" --seed "$seed" \
        2>"$log" || { cat "$log" >&2; exit 1; }
      rm -rf "$dest.partial/hr"
      mv "$dest.partial" "$dest"
    fi
    lr=$dest/lr
  fi
  "$train" eval "$@" --lr "$lr" --hr "$bench/hr" --max-shift 8 --crop 256 \
    --json "$reports/seed-$seed.json" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
done
