#!/usr/bin/env bash
# Stage 1's report (`train eval --translator`) of one training state against several draws of a
# benchmark, and the verdict on their mean. wild, codec and camera draw their degradation per
# image, so one draw's real high band moves by up to ±20% from seed to seed (docs/RESULTS.md):
# a verdict on one draw says as much about the draw as about stage 1.
#
# Usage: scripts/stage1-draws.sh STATE PRESET [DRAWS [G_S2R_DRAWS]]
#   STATE   a training state of `train fit` in a mode with a stage 1
#   PRESET  mild, wild, codec or camera
#   DRAWS   how many draws (default 5): seed 1 is data/bench/PRESET itself; seeds 2..DRAWS are
#           made once by scripts/draws.sh under data/bench-draws/PRESET/
#   G_S2R_DRAWS  draws of a random G_s2r per image (`--translator-draws`, default 1)
# Prints each draw's noise σ and high-band energy (G_s2r(synthetic) and real), their ratios, and
# the verdict on the mean ratios (each within ±15%, as `train eval --translator` judges one draw);
# then, where the photos hold 32-px tiles, what the pairs read: the PSNR between the real LR's
# linear response to the synthetic LR and G_s2r's (blur alone, noise aside; higher is closer)
# and the σ each leaves unexplained.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 2 || $# -gt 4 ]]; then
  sed -n '7,17p' "$0" >&2
  exit 2
fi
state=$1 preset=$2 draws=${3:-5} translator_draws=${4:-1}
[[ -f $state ]] || { echo "stage1-draws.sh: no training state $state" >&2; exit 1; }

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
scripts/draws.sh "$preset" "$draws" "$reports" --translator "$state" --translator-draws "$translator_draws"

python3 - "$reports" "$draws" "$preset" <<'EOF'
import json, os, sys
reports, draws, preset = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(f"stage 1 on {draws} draws of {preset} (noise σ on Y in code values; high band: energy at f ≥ 0.25 cycles/px)")
print(f"{'seed':>4} {'noise G_s2r':>12} {'noise real':>11} {'ratio':>6} {'high G_s2r':>11} {'high real':>10} {'ratio':>6}")
noise_ratios, high_ratios = [], []
for seed in range(1, draws + 1):
    d = json.load(open(os.path.join(reports, f"seed-{seed}.json")))["degradation"]
    n, h = d["noise_translated"] / d["noise_real"], d["high_band_translated"] / d["high_band_real"]
    noise_ratios.append(n)
    high_ratios.append(h)
    print(f"{seed:>4} {d['noise_translated']:>12.2f} {d['noise_real']:>11.2f} {n:>6.2f} "
          f"{d['high_band_translated']:>11.1f} {d['high_band_real']:>10.1f} {h:>6.2f}")
noise, high = sum(noise_ratios) / draws, sum(high_ratios) / draws
tolerance = 0.15  # STAGE1_TOLERANCE of train/src/eval.rs, which judges one draw the same way
within = all(abs(r - 1.0) <= tolerance for r in (noise, high))
print(f"mean G_s2r(synthetic) / real over {draws} draws: noise σ {noise:.3f} "
      f"({min(noise_ratios):.2f}–{max(noise_ratios):.2f}), high-band energy {high:.3f} "
      f"({min(high_ratios):.2f}–{max(high_ratios):.2f}) "
      f"({'both' if within else 'not both'} within ±15%)")
responses = [json.load(open(os.path.join(reports, f"seed-{seed}.json")))["degradation"].get("response")
             for seed in range(1, draws + 1)]
if all(responses):
    print(f"from the pairs: {'seed':>4} {'response dB':>11} {'none dB':>8} {'σ unexplained G_s2r':>20} {'real':>6} {'ratio':>6}")
    for seed, r in enumerate(responses, 1):
        print(f"{'':16}{seed:>4} {r['psnr_translated']:>11.2f} {r['psnr_synthetic']:>8.2f} "
              f"{r['unexplained_translated']:>20.2f} {r['unexplained_real']:>6.2f} "
              f"{r['unexplained_translated'] / r['unexplained_real']:>6.2f}")
    mean = lambda key: sum(r[key] for r in responses) / draws
    print(f"mean over {draws} draws: G_s2r's response against the real LR's {mean('psnr_translated'):.2f} dB "
          f"(no blur at all: {mean('psnr_synthetic'):.2f} dB), unexplained σ "
          f"{sum(r['unexplained_translated'] / r['unexplained_real'] for r in responses) / draws:.3f} of the real LR's")
EOF
