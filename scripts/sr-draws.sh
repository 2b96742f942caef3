#!/usr/bin/env bash
# A G_l2h model against bicubic on several draws of a benchmark (`train eval --max-shift 8
# --crop 256` on each): how much of a gain over bicubic is the model's and how much the draw's.
#
# Usage: scripts/sr-draws.sh MODEL PRESET [DRAWS]
#   MODEL   a model file of `train export` or `train camera` (the element's model-location)
#   PRESET  mild, wild, codec or camera
#   DRAWS   how many draws (default 5), made once by scripts/draws.sh
# Prints each draw's PSNR / SSIM on Y for the model and bicubic, the gain, and the gains' mean
# and range over the draws.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 || $# -gt 3 ]]; then
  sed -n '5,10p' "$0" >&2
  exit 2
fi
model=$1 preset=$2 draws=${3:-5}
[[ -f $model ]] || { echo "sr-draws.sh: no model file $model" >&2; exit 1; }

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
scripts/draws.sh "$preset" "$draws" "$reports" --model "$model"

python3 - "$reports" "$draws" "$preset" "$model" <<'PY'
import json, os, sys
reports, draws, preset, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"{model} on {draws} draws of {preset} (12 held-out photos each; PSNR dB / SSIM on Y)")
print(f"{'seed':>4} {'model':>16} {'bicubic':>16} {'gain dB':>8} {'SSIM gain':>10}")
gains, ssim_gains = [], []
for seed in range(1, draws + 1):
    mean = json.load(open(os.path.join(reports, f"seed-{seed}.json")))["mean"]
    m, b = mean["model"], mean["bicubic"]
    gains.append(m["psnr_y"] - b["psnr_y"])
    ssim_gains.append(m["ssim_y"] - b["ssim_y"])
    print(f"{seed:>4} {m['psnr_y']:>8.2f} / {m['ssim_y']:.4f} {b['psnr_y']:>8.2f} / {b['ssim_y']:.4f} "
          f"{gains[-1]:>+8.2f} {ssim_gains[-1]:>+10.4f}")
print(f"gain over bicubic, mean of {draws} draws: {sum(gains) / draws:+.2f} dB "
      f"({min(gains):+.2f} to {max(gains):+.2f}), SSIM {sum(ssim_gains) / draws:+.4f} "
      f"({min(ssim_gains):+.4f} to {max(ssim_gains):+.4f})")
PY
