#!/usr/bin/env bash
# Data of the paper's Table 1 on real photos (scripts/table1.sh), from what `make data` fetched:
#
#   data/table1/hr_domain/              the unpaired HR domain: one half of data/hr_train
#   data/table1/lr_domain_<preset>/     the "real LR" domain: the other half, degraded (LR only)
#   data/table1/paired_<preset>/lr/     hr_domain degraded, for the SR_paired oracle (HR = hr_domain)
#   data/bench/<preset>/{lr,hr}         data/eval_hr degraded, the evaluation sets
#   (presets mild, wild, codec and camera; camera was frozen before any tuning on it)
#
# The split (NTIRE's unpaired protocol, docs/DATA.md): files sorted by name, near-identical
# views of one scene grouped, then alternately to the LR half (even) and the HR half (odd)
# within each source (lomiri, mate, plasma, opencv), so both halves mix the same sources.
#
# Compactness (all of it must fit a 64 MiB copy to a GPU machine): JPEGs are halved as
# DATA.md says (by `train degrade`, with the project's imresize), then every training image is
# centre-cropped to at most CROP x CROP HR pixels (LR: CROP/4), on a 64-pixel grid so that
# H.264 macroblocks of the codec preset stay aligned; hr_domain is stored as PNG at that size,
# so that every mode (paired too, which never halves) sees the same HR pixels.
#
# Idempotent: a folder that is complete is kept; delete it to make it again.
# Usage: scripts/table1-data.sh [--data-dir DIR]   (default data/, or $CYCLESR_DATA)
set -euo pipefail

cd "$(dirname "$0")/.."
data=${CYCLESR_DATA:-data}
while [[ $# -gt 0 ]]; do
  case $1 in
    --data-dir) data=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "table1-data.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

readonly CROP=512
readonly TRAIN_SEED=2  # lr_domain and paired degradations
readonly BENCH_SEED=1  # as data/bench/mild in README.md
readonly PRESETS=(mild wild codec camera)
train=target/release/train
out=$data/table1

for dir in "$data/hr_train" "$data/eval_hr"; do
  if [[ ! -d $dir ]] || [[ -z $(ls -A "$dir") ]]; then
    echo "table1-data.sh: $dir is missing or empty: run 'make data' first" >&2
    exit 1
  fi
done
if [[ ! -x $train ]]; then
  echo "table1-data.sh: $train is missing: run 'cargo build --release -p cyclesr-train' first" >&2
  exit 1
fi
for tool in gst-launch-1.0 python3; do
  command -v "$tool" >/dev/null || { echo "table1-data.sh: $tool is not installed (make setup)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/table1-data.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

# The split: "<half> <file>" lines.
python3 - "$data/hr_train" >"$tmp/split" <<'EOF'
import os, sys
root = sys.argv[1]
# Second views of one scene (docs/DATA.md; aero1/aero3 too) go with their first.
same_scene = {"opencv_aloeR": "opencv_aloeL", "opencv_leuvenB": "opencv_leuvenA",
              "opencv_graf3": "opencv_graf1", "opencv_rubberwhale2": "opencv_rubberwhale1",
              "opencv_aero3": "opencv_aero1"}
units = {}
for f in sorted(os.listdir(root)):
    stem = os.path.splitext(f)[0]
    units.setdefault(same_scene.get(stem, stem), []).append(f)
index = {}
for key in sorted(units):
    source = key.split("_")[0]
    half = ("lr", "hr")[index.get(source, 0) % 2]
    index[source] = index.get(source, 0) + 1
    for f in units[key]:
        print(half, f)
EOF
mapfile -t lr_half < <(awk -v d="$data/hr_train" '$1 == "lr" {print d "/" $2}' "$tmp/split")
mapfile -t hr_half < <(awk -v d="$data/hr_train" '$1 == "hr" {print d "/" $2}' "$tmp/split")
echo "split of $data/hr_train: ${#lr_half[@]} files to the real-LR half, ${#hr_half[@]} to the HR half"

# crop SRC_HR_DIR SRC_LR_DIR DST_HR_DIR DST_LR_DIR: centre crops (empty DST = skip that side).
crop() {
  python3 - "$@" "$CROP" <<'EOF'
import os, struct, subprocess, sys
src_hr, src_lr, dst_hr, dst_lr, side = sys.argv[1:6]
side, grid = int(side), 64
def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"table1-data.sh: {path} is not a PNG")
    return struct.unpack(">II", head[16:24])
def cut(src, dst, x, y, w, h):
    W, H = png_size(src)
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "pngdec", "!",
                    "videocrop", f"left={x}", f"top={y}", f"right={W - x - w}",
                    f"bottom={H - y - h}", "!", "pngenc", "compression-level=9", "!",
                    "filesink", f"location={dst}"], check=True)
for name in sorted(os.listdir(src_hr)):
    W, H = png_size(os.path.join(src_hr, name))
    w, h = min(W, side), min(H, side)
    x, y = (W - w) // 2 // grid * grid, (H - h) // 2 // grid * grid
    if dst_hr:
        cut(os.path.join(src_hr, name), os.path.join(dst_hr, name), x, y, w, h)
    if dst_lr:
        cut(os.path.join(src_lr, name), os.path.join(dst_lr, name), x // 4, y // 4, w // 4, h // 4)
EOF
}

# degrade PRESET SEED OUT FILES...: `train degrade` quietly (it prints a line per image).
degrade() {
  local preset=$1 seed=$2 dest=$3
  shift 3
  "$train" degrade "$@" --out "$dest" --preset "$preset" --seed "$seed" 2>"$tmp/degrade.log" \
    || { cat "$tmp/degrade.log" >&2; echo "table1-data.sh: train degrade --preset $preset failed" >&2; exit 1; }
}

# Folders are made under $tmp and moved into place whole, so a complete folder means done.
for preset in "${PRESETS[@]}"; do
  dest=$out/lr_domain_$preset
  if [[ ! -d $dest ]]; then
    echo "making $dest"
    degrade "$preset" "$TRAIN_SEED" "$tmp/lr-$preset" "${lr_half[@]}"
    mkdir -p "$tmp/lr_domain_$preset"
    crop "$tmp/lr-$preset/hr" "$tmp/lr-$preset/lr" "" "$tmp/lr_domain_$preset"
    cp "$tmp/lr-$preset/degradation.json" "$tmp/lr_domain_$preset/"
    mv "$tmp/lr_domain_$preset" "$dest"
  fi
  dest=$out/paired_$preset
  if [[ ! -d $dest || ! -d $out/hr_domain ]]; then
    echo "making $dest"
    degrade "$preset" "$TRAIN_SEED" "$tmp/hr-$preset" "${hr_half[@]}"
    mkdir -p "$tmp/paired_$preset/lr" "$tmp/hr_domain"
    crop "$tmp/hr-$preset/hr" "$tmp/hr-$preset/lr" "$tmp/hr_domain" "$tmp/paired_$preset/lr"
    cp "$tmp/hr-$preset/degradation.json" "$tmp/paired_$preset/"
    rm -rf "$dest"
    mv "$tmp/paired_$preset" "$dest"
    # The HR crops are the same for every preset (halving and cropping are deterministic).
    if [[ ! -d $out/hr_domain ]]; then
      mv "$tmp/hr_domain" "$out/hr_domain"
    fi
    rm -rf "$tmp/hr_domain"
  fi
done
cp "$tmp/split" "$out/split.txt"

for preset in "${PRESETS[@]}"; do
  dest=$data/bench/$preset
  if [[ ! -f $dest/degradation.json ]]; then
    echo "making $dest"
    degrade "$preset" "$BENCH_SEED" "$tmp/bench-$preset" "$data/eval_hr"
    mkdir -p "$data/bench"
    rm -rf "$dest"
    mv "$tmp/bench-$preset" "$dest"
  fi
done

# The benchmarks' HR images are the same for every preset: hard links keep one copy on disk
# (a copy that does not keep links is still under 64 MiB).
for preset in "${PRESETS[@]}"; do
  [[ $preset == mild ]] && continue
  for hr in "$data/bench/$preset"/hr/*.png; do
    first=$data/bench/mild/hr/$(basename "$hr")
    if [[ -f $first ]] && ! [[ $hr -ef $first ]] && cmp -s "$hr" "$first"; then
      ln -f "$first" "$hr"
    fi
  done
done

echo "sizes (hard links counted once):"
du -sh "$out"/* "$data"/bench/*
du -shc "$out" "$data/bench" | tail -1
