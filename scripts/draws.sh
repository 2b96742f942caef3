#!/usr/bin/env bash
# The LR folders of several draws of a benchmark, one per line: seed 1 is data/bench/PRESET/lr
# itself; seeds 2..DRAWS are made once from data/eval_hr by `train degrade` under
# data/bench-draws/PRESET/seed-S/lr. Every draw pairs with data/bench/PRESET/hr: the HR crops do
# not depend on the seed. wild, codec and camera draw their degradation per image, so a figure
# on one draw says as much about the draw as about what is measured (docs/RESULTS.md).
#
# Usage: scripts/draws.sh PRESET DRAWS   (used by stage1-draws.sh and sr-draws.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 2 ]]; then
  sed -n '8p' "$0" >&2
  exit 2
fi
preset=$1 draws=$2
train=${TRAIN:-target/release/train}
[[ -x $train ]] || { echo "draws.sh: no $train (cargo build --release)" >&2; exit 1; }
[[ $draws =~ ^[1-9][0-9]*$ ]] || { echo "draws.sh: DRAWS must be a positive integer, got $draws" >&2; exit 1; }
bench=data/bench/$preset
[[ -d $bench/lr && -d $bench/hr ]] || { echo "draws.sh: no $bench (scripts/table1-data.sh makes it)" >&2; exit 1; }

echo "$bench/lr"
for seed in $(seq 2 "$draws"); do
  dest=data/bench-draws/$preset/seed-$seed
  if [[ ! -f $dest/degradation.json ]]; then
    echo "making $dest" >&2
    rm -rf "$dest.partial"
    log=$(mktemp)
    "$train" degrade data/eval_hr --out "$dest.partial" --preset "$preset" --seed "$seed" \
      2>"$log" || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
    rm -rf "$dest.partial/hr"
    mv "$dest.partial" "$dest"
  fi
  echo "$dest/lr"
done
