#!/usr/bin/env bash
# Which statistic of stage 1 predicts the gain of the G_l2h trained on it: for each run, stage
# 1's report on the benchmark (`train eval --translator`, 4 draws of G_s2r per photo) and the
# model's gain over bicubic on five draws of the benchmark (scripts/sr-draws.sh), then the
# Pearson and Spearman correlation of each statistic with the gain over the runs, and the
# gain's least-squares fit on the response PSNR alone and with the unexplained σ ratio.
#
# Usage: scripts/stage1-vs-gain.sh PRESET RUN...
#   PRESET  mild, wild, codec or camera (the benchmark data/bench/PRESET)
#   RUN     a run folder of mode explicit: RUN/checkpoints/latest.safetensors and
#           RUN/model.safetensors (e.g. runs/table1/mild/explicit)
# Each run's two measurements are kept in RUN/stage1-vs-gain/ and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 3 ]]; then
  sed -n '8,12p' "$0" >&2
  exit 2
fi
preset=$1
shift
train=${TRAIN:-target/release/train}
for run in "$@"; do
  for file in checkpoints/latest.safetensors model.safetensors; do
    [[ -f $run/$file ]] || { echo "stage1-vs-gain.sh: no $run/$file" >&2; exit 1; }
  done
  out=$run/stage1-vs-gain
  mkdir -p "$out"
  [[ -f $out/stage1-$preset.json ]] || "$train" eval --translator "$run/checkpoints/latest.safetensors" \
    --lr "data/bench/$preset/lr" --hr "data/bench/$preset/hr" --translator-draws 4 \
    --json "$out/stage1-$preset.json" > /dev/null
  [[ -f $out/sr-draws-$preset.txt ]] || scripts/sr-draws.sh "$run/model.safetensors" "$preset" 5 \
    > "$out/sr-draws-$preset.txt"
done

python3 - "$preset" "$@" <<'EOF'
import json, math, re, sys
preset, runs = sys.argv[1], sys.argv[2:]
rows = []
for run in runs:
    d = json.load(open(f"{run}/stage1-vs-gain/stage1-{preset}.json"))["degradation"]
    r = d["response"]
    if r is None:
        sys.exit(f"stage1-vs-gain.sh: {run}: the benchmark's photos hold no 32-px tile")
    text = open(f"{run}/stage1-vs-gain/sr-draws-{preset}.txt").read()
    gain = float(re.search(r"mean of \d+ draws: ([+-][0-9.]+) dB", text).group(1))
    rows.append({
        "run": run, "gain": gain, "response": r["psnr_translated"],
        "unexplained": r["unexplained_translated"] / r["unexplained_real"],
        "noise": d["noise_translated"] / d["noise_real"],
        "high band": d["high_band_translated"] / d["high_band_real"],
        "LR PSNR": d["psnr_translated"],
    })
width = max(len(r["run"]) for r in rows)
print(f"{'run':{width}}  {'gain dB':>7}  {'response dB':>11}  {'unexplained':>11}  {'noise':>5}  {'high band':>9}  {'LR PSNR':>7}")
for r in rows:
    print(f"{r['run']:{width}}  {r['gain']:>+7.2f}  {r['response']:>11.2f}  {r['unexplained']:>11.2f}  "
          f"{r['noise']:>5.2f}  {r['high band']:>9.2f}  {r['LR PSNR']:>7.2f}")

def pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))

def ranks(v):
    """Ranks from 0, ties sharing their mean rank (Spearman's, independent of the runs' order)."""
    return [sum(1 for b in v if b < a) + (sum(1 for b in v if b == a) - 1) / 2 for a in v]

def least_squares(columns, y):
    """Coefficients of y on [1, columns...] by the normal equations, and R²."""
    x = [[1.0, *c] for c in zip(*columns)]
    n = len(x[0])
    a = [[sum(row[i] * row[j] for row in x) for j in range(n)] + [sum(row[i] * t for row, t in zip(x, y))]
         for i in range(n)]
    for i in range(n):
        pivot = max(range(i, n), key=lambda k: abs(a[k][i]))
        a[i], a[pivot] = a[pivot], a[i]
        for k in range(n):
            if k != i:
                f = a[k][i] / a[i][i]
                a[k] = [p - f * q for p, q in zip(a[k], a[i])]
    coef = [a[i][n] / a[i][i] for i in range(n)]
    fitted = [sum(c * v for c, v in zip(coef, row)) for row in x]
    mean = sum(y) / len(y)
    residual = sum((t - f) ** 2 for t, f in zip(y, fitted))
    r2 = 1 - residual / sum((t - mean) ** 2 for t in y)
    return coef, r2, math.sqrt(residual / (len(y) - n))

gains = [r["gain"] for r in rows]
print(f"\ncorrelation with the gain over {len(rows)} runs:")
for name, value in [("response PSNR", lambda r: r["response"]),
                    ("|noise σ ratio − 1|", lambda r: abs(r["noise"] - 1)),
                    ("|high-band ratio − 1|", lambda r: abs(r["high band"] - 1)),
                    ("LR-scale PSNR to the real LR", lambda r: r["LR PSNR"]),
                    ("unexplained σ ratio", lambda r: r["unexplained"])]:
    x = [value(r) for r in rows]
    print(f"  {name:30} Pearson {pearson(x, gains):+.2f}  Spearman {pearson(ranks(x), ranks(gains)):+.2f}")
if len(rows) > 3:
    (a, b), r2, spread = least_squares([[r["response"] for r in rows]], gains)
    print(f"gain ≈ {a:+.3f} + {b:.4f} · response PSNR (R² {r2:.2f}, residual spread {spread:.3f} dB)")
    (a, b, c), r2, spread = least_squares([[r["response"] for r in rows], [r["unexplained"] for r in rows]], gains)
    print(f"gain ≈ {a:+.3f} + {b:.4f} · response PSNR + {c:.3f} · unexplained ratio "
          f"(R² {r2:.2f}, residual spread {spread:.3f} dB)")
EOF
