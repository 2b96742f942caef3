#!/usr/bin/env bash
# What `train camera --budget B` achieves on the wild benchmark of docs/RESULTS.md, its
# training LR (data/table1/lr_domain_wild, 34 degraded photos) used as a camera's "footage"
# and data/table1/hr_domain (the other half of the photos) as the HR domain, against the
# embedded fast model (SRResNet 6x32, the network `train camera` trains) and bicubic on
# data/bench/wild (`train eval --max-shift 8 --crop 256`, PSNR-Y / SSIM-Y, as
# scripts/table1.sh scores). The fast model trained on lr_domain_wild
# among its nine sources, for 9,100 iterations; `train camera` sees this one source only.
#
# Usage: scripts/camera-bench.sh [--budget 30m] [--out DIR] [-s KEY=VALUE ...]
#   --budget   `train camera --budget` (wall time or iterations; default 30m)
#   --out      where the run, the model and the scores go (default runs/camera-bench;
#              a run already there is replaced)
#   -s         extra `train camera -s` overrides, e.g. device=cpu
# Data: `make data`, then scripts/table1-data.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
budget=30m out=runs/camera-bench
sets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --budget) budget=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -s) sets+=(-s "$2"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "camera-bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
train=target/release/train
default_model=plugin/models/srresnet-6x32.safetensors
[[ -x $train ]] || { echo "camera-bench.sh: $train is missing: cargo build --release -p cyclesr-train" >&2; exit 1; }
[[ -f $default_model ]] || { echo "camera-bench.sh: $default_model is missing" >&2; exit 1; }
for dir in data/table1/lr_domain_wild data/table1/hr_domain data/bench/wild/lr data/bench/wild/hr; do
  [[ -d $dir ]] || { echo "camera-bench.sh: $dir is missing: run 'make data', then scripts/table1-data.sh" >&2; exit 1; }
done

rm -rf "$out/run"
mkdir -p "$out"
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$train" camera data/table1/lr_domain_wild --hr data/table1/hr_domain --budget "$budget" \
  --out "$out/camera.safetensors" --run-dir "$out/run" "${sets[@]}"
eval_args=(--lr data/bench/wild/lr --hr data/bench/wild/hr --max-shift 8 --crop 256)
"$train" eval --model "$out/camera.safetensors" "${eval_args[@]}" --json "$out/eval-camera.json" >/dev/null
"$train" eval --model "$default_model" "${eval_args[@]}" --json "$out/eval-default.json" >/dev/null

python3 - "$out" "$budget" "$started" <<'EOF'
import json, os, platform, struct, sys
out, budget, started = sys.argv[1:4]
def scores(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)["mean"]
def provenance(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(json.loads(f.read(n))["__metadata__"]["provenance"])
camera, default = scores("eval-camera.json"), scores("eval-default.json")
meta = provenance(os.path.join(out, "camera.safetensors"))
with open(os.path.join(out, "run", "losses.jsonl")) as f:
    last = [json.loads(l) for l in f if l.strip()][-1]
commit = meta.get("commit", "unknown")  # the build of `train` that trained the model
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
rows = [("Bicubic", camera["bicubic"]), ("fast model (embedded, 6x32)", default["model"]),
        (f"train camera --budget {budget}", camera["model"])]
bicubic = camera["bicubic"]["psnr_y"]
summary = {"started": started, "commit": commit, "cpu": cpu, "cores": os.cpu_count(), "budget": budget,
           "iterations": meta.get("iterations"), "training_seconds": last["seconds"],
           "scores": {name: {"psnr_y": s["psnr_y"], "ssim_y": s["ssim_y"]} for name, s in rows}}
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(f"\nwild benchmark (data/bench/wild, 12 photos, --max-shift 8 --crop 256), {started}, commit {commit}, "
      f"{cpu} x {os.cpu_count()}; train camera: {meta.get('iterations')} iterations in {last['seconds']:.0f} s of training")
print("| model | PSNR-Y (dB) | SSIM-Y | vs bicubic (dB) |\n|---|---|---|---|")
for name, s in rows:
    print(f"| {name} | {s['psnr_y']:.2f} | {s['ssim_y']:.4f} | {s['psnr_y'] - bicubic:+.2f} |")
print(f"\nscores: {out}/summary.json; report: {out}/run/report/report.html")
EOF
