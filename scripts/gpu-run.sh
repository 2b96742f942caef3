#!/usr/bin/env bash
# cyclesr's GPU work, run from the repository root on a bare GPU machine (CUDA and PyTorch at
# /opt/torch/.venv; no Rust, no GStreamer, no network) prepared by scripts/gpu-bundle.sh.
#   scripts/gpu-run.sh OUT_DIR check
#       CUDA tests (CUDA against CPU: model, precisions, tiles, element, a training step; the
#       element tests with device=auto on CUDA), `train bench` at 320x180, 480x270 and 960x540
#       (fp32 and bf16 element runs, PyTorch eager alongside), `train bench-step` (a training
#       iteration against PyTorch's) at the paper's sizes and for configs/table1.toml, and the
#       element with `overlap` and with `batch=4`.
#   scripts/gpu-run.sh OUT_DIR explicit SECONDS
#       configs/default-model.toml as planned, then its recipe at the paper's G_l2h size for the
#       rest of about SECONDS, one run at a time; exported to OUT_DIR/*.safetensors, evaluated.
#   scripts/gpu-run.sh OUT_DIR claim SECONDS
#       CycleSR against Cycle+SR with stage 1 trained as long, on mild, seeds 1-3 while SECONDS
#       allow, one run at a time; evaluated there.
#   scripts/gpu-run.sh OUT_DIR train SECONDS
#       scripts/table1.sh on CUDA, plus the default model's run, both stopped (with a
#       checkpoint) SECONDS after the start, then exported and evaluated; OUT_DIR gets a tarball.
# Each stage logs to <stage>.log, a failing stage does not stop the next, and everything ends
# up in OUT_DIR/<phase>.tar.gz (the device tool brings back few files).
set -uo pipefail
dest=${1:?usage: scripts/gpu-run.sh OUT_DIR check|train|explicit|claim [SECONDS]}
what=${2:?usage: scripts/gpu-run.sh OUT_DIR check|train|explicit|claim [SECONDS]}
out=/tmp/cyclesr-$what
mkdir -p "$out" "$dest"
bin=$PWD/.gpu/bin
for x in .gpu/bin/*.xz; do [ -e "$x" ] && xz -d -T0 "$x"; done
chmod +x .gpu/bin/*

# GStreamer from the bundled .debs, kept only where this machine has no library of that name, so
# that Python and libtorch keep their own (newer) zlib, lzma and friends.
gst=/tmp/cyclesr-gst
if [ ! -d "$gst" ]; then
  for f in .gpu/deb/*.deb; do dpkg -x "$f" "$gst"; done
  for so in "$gst"/usr/lib/x86_64-linux-gnu/lib*.so.* "$gst"/lib/x86_64-linux-gnu/lib*.so.*; do
    name=$(basename "$so")
    case "$name" in libgst* | liborc*) continue ;; esac
    if ldconfig -p | grep -q "^[[:space:]]$name "; then rm -f "$so"; fi
  done
fi
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$gst/usr/lib/x86_64-linux-gnu:$gst/lib/x86_64-linux-gnu:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export GST_PLUGIN_SYSTEM_PATH=$gst/usr/lib/x86_64-linux-gnu/gstreamer-1.0
export GST_PLUGIN_SCANNER=$gst/usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner
export GST_REGISTRY=/tmp/cyclesr-registry.bin
export CYCLESR_PYTHON=python3
export PYTHONUNBUFFERED=1

t0=$SECONDS
stage() { # stage NAME TIMEOUT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "=== $name (t=$((SECONDS - t0)) s, limit $limit s): $*"
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc $rc at t=$((SECONDS - t0)) s"
  tail -n "${TAIL:-30}" "$out/$name.log"
}

# The data and binary where scripts/table1.sh and the configs expect them.
place_data() {
  mkdir -p target/release data
  cp "$bin/train" target/release/train
  cp -r .gpu/data/table1 .gpu/data/bench data/
  for preset in wild codec camera; do
    [ -e "data/bench/$preset/hr" ] || ln -s ../mild/hr "data/bench/$preset/hr"
  done
}

# The default model's real footage: this machine has no GStreamer decoders, so OpenCV's
# FFmpeg decodes the frames configs/default-model.toml takes (same ranges and steps) into
# /tmp/footage/<clip>/.
decode_footage() {
  stage decode-footage 60 python3 - <<'PY'
import os, shutil, cv2
clips = {"vtest.avi": (0, 600, 3), "tree.avi": (0, None, 2), "carphone_distorted.mp4": (0, None, 4), "bikes.mp4": (0, None, 8)}
for name, (start, end, step) in clips.items():
    out = f"/tmp/footage/{os.path.splitext(name)[0]}"
    os.makedirs(out, exist_ok=True)
    video, index, kept = cv2.VideoCapture(f".gpu/data/real_lr/{name}"), 0, 0
    while True:
        ok, frame = video.read()
        if not ok or (end is not None and index >= end):
            break
        if index >= start and (index - start) % step == 0:
            cv2.imwrite(f"{out}/{index:05d}.png", frame)
            kept += 1
        index += 1
    print(name, "frames read", index, "kept", kept)
shutil.copytree(".gpu/data/real_lr/kphotoalbum", "/tmp/footage/kphotoalbum", dirs_exist_ok=True)
PY
}
footage='["/tmp/footage/vtest", "/tmp/footage/tree", "/tmp/footage/carphone_distorted", "/tmp/footage/bikes", "/tmp/footage/kphotoalbum"]'

case $what in
check)
  stage machine 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc; python3 -c 'import torch; print(torch.__version__, torch.backends.cudnn.version())'; $bin/train --version"
  stage test-plugin-cuda 120 "$bin/test-gst-plugin-cyclesr-cuda" --nocapture --test-threads 1
  stage test-train-cuda 120 "$bin/test-cyclesr-train-cuda" --nocapture
  stage test-element-auto-cuda 120 "$bin/test-gst-plugin-cyclesr-element" --test-threads 1 \
    --skip plugin_loads_with_fresh_registry
  stage bench-bf16 200 "$bin/train" bench --device cuda --precision bf16 \
    --size 320x180 --size 480x270 --size 960x540 --frames 30 --runs 10 --warmup 3 \
    --pytorch-script tests/reference/bench_pytorch.py --json "$out/bench-bf16.json"
  stage bench-fp32 120 "$bin/train" bench --device cuda --precision fp32 --size 960x540 \
    --frames 30 --runs 10 --warmup 3 --skip-pytorch --json "$out/bench-fp32.json"
  # The element's worker thread and batches (raw forward and PyTorch as in bench-bf16).
  stage bench-bf16-overlap 150 "$bin/train" bench --device cuda --precision bf16 --overlap \
    --size 320x180 --size 960x540 --frames 30 --runs 10 --warmup 3 --skip-pytorch \
    --json "$out/bench-bf16-overlap.json"
  stage bench-bf16-batch4 120 "$bin/train" bench --device cuda --precision bf16 --batch 4 \
    --overlap --size 320x180 --size 480x270 --frames 33 --runs 10 --warmup 3 --skip-pytorch \
    --json "$out/bench-bf16-batch4.json"
  stage bench-step-paper 150 "$bin/train" bench-step -o configs/cyclesr.toml --device cuda \
    --warmup 3 --steps 10 --pytorch-script tests/reference/train_step_pytorch.py \
    --json "$out/bench-step-paper.json"
  stage bench-step-table1 90 "$bin/train" bench-step -o configs/table1.toml --device cuda \
    --warmup 5 --steps 30 --pytorch-script tests/reference/train_step_pytorch.py \
    --json "$out/bench-step-table1.json"
  ;;
train)
  # Training ends SECONDS after this script starts; export, evaluation and packing follow.
  seconds=${3:?train needs SECONDS}
  place_data
  TAIL=12 stage test-plugin-cuda 60 "$bin/test-gst-plugin-cyclesr-cuda" --nocapture --test-threads 1
  TAIL=12 stage test-train-cuda 60 "$bin/test-cyclesr-train-cuda" --nocapture
  TAIL=12 stage bench-step-table1 60 "$bin/train" bench-step -o configs/table1.toml --device cuda \
    -s data.batch="${BATCH:-32}" --warmup 5 --steps 30 \
    --pytorch-script tests/reference/train_step_pytorch.py --json "$out/bench-step-table1.json"
  TAIL=12 stage bench-step-paper 60 "$bin/train" bench-step -o configs/cyclesr.toml --device cuda \
    --warmup 3 --steps 10 --pytorch-script tests/reference/train_step_pytorch.py \
    --json "$out/bench-step-paper.json"
  export OMP_NUM_THREADS=1
  decode_footage
  left=$((seconds - (SECONDS - t0)))
  echo "=== training for $left s"
  dm=runs/default-model-gpu
  mkdir -p "$dm"
  (timeout --signal=INT --kill-after=60 "$left" target/release/train fit -o configs/default-model.toml \
    -s device=cuda -s output="$dm" -s data.hr='["data/table1/hr_domain"]' \
    -s data.jpeg_downscale=false -s data.batch="${BATCH:-32}" \
    -s data.real_lr="$footage" \
    -s schedule.iterations="${DEFAULT_MAIN:-800}" -s validation.every=200 -s checkpoints.every=100 \
    --quiet >"$dm/fit.log" 2>&1
   target/release/train export --state "$dm/checkpoints/latest.safetensors" \
    --out "$dm/model.safetensors" >>"$dm/fit.log" 2>&1) &
  default_model=$!
  TAIL=60 stage table1 $((left + 200)) bash scripts/table1.sh --device cuda --jobs 20 \
    --deadline "$left" --iterations "${ITERATIONS:-1400}" --set data.batch="${BATCH:-32}" \
    --note "GPU run (one H200 shared by 20 runs): see the iterations each run reached"
  wait "$default_model"
  tail -n 5 "$dm/fit.log"
  mkdir -p "$out/models"
  for f in runs/table1/sr-syn/model.safetensors runs/table1/*/*/model.safetensors "$dm/model.safetensors"; do
    [ -f "$f" ] && cp "$f" "$out/models/$(echo "${f#runs/}" | tr / _)"
  done
  rsync -a --exclude checkpoints --exclude '*.safetensors' --exclude 'compare-*' runs/table1 "$dm" "$out/" 2>/dev/null ||
    cp -r runs/table1 "$dm" "$out/"
  find "$out" -path '*/checkpoints/*' -delete
  tar -czf "$dest/models.tar.gz" -C "$out" models
  rm -rf "$out/models"
  ;;
explicit)
  # Two runs, one after the other, each owning the GPU: the embedded default model exactly as
  # configs/default-model.toml plans it (the CPU run it stands for takes about 40 minutes), then
  # the same recipe with the paper's G_l2h (MSRResNet 16x64), batch 32 of 64x64 LR patches, for
  # as many iterations as fit in the rest of SECONDS (timed by a 40-iteration probe). Both are
  # exported and evaluated on the four benchmarks.
  seconds=${3:?explicit needs SECONDS}
  place_data
  decode_footage
  # The configuration's sources, minus any clip that could not be decoded here (said in the log).
  sources=$(python3 - <<'PY'
import json, os
dirs = [f"/tmp/footage/{c}" for c in ("vtest", "tree", "carphone_distorted", "bikes", "kphotoalbum")]
dirs += [f"data/table1/lr_domain_{p}" for p in ("mild", "wild", "codec", "camera")]
kept = [d for d in dirs if os.path.isdir(d) and os.listdir(d)]
print("missing sources:", [d for d in dirs if d not in kept], file=open("/dev/stderr", "w"))
print(json.dumps(kept))
PY
)
  common=(-o configs/default-model.toml -s device=cuda -s data.real_lr="$sources" --quiet)
  default_run=runs/default-model-gpu
  stage default-model 300 target/release/train fit "${common[@]}" -s output="$default_run" \
    -s data.workers=4 -s data.prefetch=16 -s validation.every=1000
  paper_run=runs/explicit-paper-size
  paper=("${common[@]}" -s data.workers=12 -s data.prefetch=24 -s data.batch=32 -s data.lr_patch=64
    -s 'networks.sr={arch="srresnet", blocks=16, features=64}' -s validation.every=1000
    -s checkpoints.every=1000 -s logging.samples_every=0)
  stage probe 90 target/release/train fit "${paper[@]}" -s output=/tmp/probe --max-iterations 40
  per_iteration=$(grep -oE '[0-9.]+ s/iteration' "$out/probe.log" | tail -1 | cut -d' ' -f1)
  left=$((seconds - (SECONDS - t0) - 90))
  iterations=$(python3 -c "print(max(100, int($left / $per_iteration * 0.9 / 100) * 100))")
  echo "=== $per_iteration s/iteration in the probe: $iterations iterations in $left s"
  stage paper-size $((left + 60)) target/release/train fit "${paper[@]}" -s output="$paper_run" \
    -s schedule.iterations="$iterations"
  for run in "$default_run" "$paper_run"; do
    name=$(basename "$run")
    TAIL=2 stage "export-$name" 60 target/release/train export \
      --state "$run/checkpoints/latest.safetensors" --out "$dest/$name.safetensors"
    for preset in mild wild codec camera; do
      TAIL=2 stage "eval-$name-$preset" 60 target/release/train eval --device cuda --max-shift 8 \
        --crop 256 --lr "data/bench/$preset/lr" --hr "data/bench/$preset/hr" \
        --model "$dest/$name.safetensors" --json "$out/eval-$name-$preset.json"
    done
    mkdir -p "$out/$name"
    cp "$run"/*.jsonl "$run/degradation-fit.json" "$run/options.toml" "$out/$name/"
  done
  ;;
claim)
  # The paper's claim, CycleSR against Cycle+SR with stage 1 trained as long (1,200 iterations
  # each: CycleSR's G_s2r in its pretraining and joint phase, Cycle+SR's before G_l2h), on mild,
  # seed after seed, one run at a time, while SECONDS allow (a run is not started with less
  # than 75 s left); each finished run is evaluated on the GPU.
  seconds=${3:?claim needs SECONDS}
  place_data
  for seed in 1 2 3; do
    for column in cyclesr cycle-sr; do
      if (( seconds - (SECONDS - t0) < 75 )); then break 2; fi
      sets=(--set "seed=$seed" --set data.workers=4)
      [[ $column == cycle-sr ]] && sets+=(--set schedule.pretrain_translator=1200)
      TAIL=2 stage "fit-$column-$seed" 120 bash scripts/table1.sh --device cuda --runs "runs/claim-seed$seed" \
        --presets mild --columns "$column" --train-only "${sets[@]}"
      model=runs/claim-seed$seed/mild/$column/model.safetensors
      TAIL=1 stage "eval-$column-$seed" 40 target/release/train eval --device cuda --max-shift 8 \
        --crop 256 --lr data/bench/mild/lr --hr data/bench/mild/hr --model "$model" \
        --json "$out/eval-$column-seed$seed.json"
      TAIL=1 stage "stage1-$column-$seed" 40 target/release/train eval --device cuda --max-shift 8 \
        --crop 256 --lr data/bench/mild/lr --hr data/bench/mild/hr \
        --translator "runs/claim-seed$seed/mild/$column/checkpoints/latest.safetensors" \
        --json "$out/stage1-$column-seed$seed.json"
    done
  done
  ;;
*)
  echo "unknown phase '$what' (check, train, explicit or claim)" >&2
  exit 2
  ;;
esac
tar -czf "$dest/$what.tar.gz" -C "$out" --exclude='*.safetensors' --exclude='checkpoints' \
  --exclude='table1/*/samples' --exclude='table1/*/*/samples' .
# The device tool brings back files of at most 16 MiB.
for f in "$dest"/*.tar.gz; do
  if [ "$(stat -c %s "$f")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d "$f" "$f.part" && rm "$f"
  fi
done
echo "done after $((SECONDS - t0)) s"
