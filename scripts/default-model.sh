#!/usr/bin/env bash
# The embedded fast model's recipe (plugin/models/srresnet-6x32.safetensors) in one command, in the order that makes it (the same
# recipe with compression from the first iteration scores about 0.1 dB lower on mild and wild:
# plugin/models/README.md):
#
#   1. pretrain: configs/default-model.toml with no compression in stage 1, 7,000 iterations;
#   2. finetune: configs/default-model.toml (JPEG [30, 95] for compressed footage), 2,100
#      iterations from the pretrained G_l2h (networks.sr_init);
#   3. the fine-tuned G_l2h exported to RUNS/finetune/model.safetensors, its provenance naming
#      the pretrained file.
#
# Needs `make data && scripts/table1-data.sh` first. Each phase resumes from its own state
# after an interruption and is kept once exported; delete RUNS/<phase> to train it again. On
# the 2-core build machine, about 30 minutes with 2 threads (OMP_NUM_THREADS).
# Usage: scripts/default-model.sh [--runs DIR] [--seed N]   (default runs/default-model-recipe, 1)
set -euo pipefail

cd "$(dirname "$0")/.."
runs=runs/default-model-recipe
seed=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "default-model.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

train=target/release/train
[[ -x $train ]] || cargo build --release -p cyclesr-train
for folder in data/table1/hr_domain data/table1/lr_domain_codec data/real_lr; do
  [[ -d $folder ]] || { echo "default-model.sh: $folder is missing: run make data && scripts/table1-data.sh" >&2; exit 1; }
done

# The iteration a training state reached (0 when there is none).
state_iteration() { python3 scripts/state-iteration.py "$1"; }

# One phase of ITERATIONS: fit (resuming its own state if one exists), then export its G_l2h;
# an interrupted fit (Ctrl-C writes a checkpoint) stops the script, to be resumed by rerunning.
phase() {
  local name=$1 iterations=$2 dir=$runs/$1
  shift 2
  local state=$dir/checkpoints/latest.safetensors
  if [[ -f $dir/model.safetensors ]] && (($(state_iteration "$state") >= iterations)); then
    echo "default-model.sh: kept $dir/model.safetensors"
    return
  fi
  local resume=()
  [[ -f $state ]] && resume=(--resume latest)
  "$train" fit -o configs/default-model.toml -s "name=$(basename "$runs")-$name" \
    -s "output=$dir" -s "seed=$seed" -s "schedule.iterations=$iterations" "$@" "${resume[@]}"
  local reached
  reached=$(state_iteration "$state")
  if ((reached < iterations)); then
    echo "default-model.sh: $name stopped at iteration $reached of $iterations; rerun to resume" >&2
    exit 1
  fi
  "$train" export --state "$state" --out "$dir/model.safetensors"
}

# Stage 1 as in the config but without `jpeg_quality`: no compression for any source.
uncompressed=$(python3 -c '
import tomllib
with open("configs/default-model.toml", "rb") as f:
    degradation = tomllib.load(f)["networks"]["degradation"]
degradation.pop("jpeg_quality", None)
print("{ " + ", ".join(f"{k} = {v}" for k, v in degradation.items()) + " }")
')
phase pretrain 7000 -s "networks.degradation=$uncompressed"
phase finetune 2100 -s "networks.sr_init=\"$runs/pretrain/model.safetensors\""
echo "default-model.sh: $runs/finetune/model.safetensors (copy it to plugin/models/srresnet-6x32.safetensors to embed it as the fast model)"
