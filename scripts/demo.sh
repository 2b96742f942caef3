#!/usr/bin/env bash
# The main job on a fresh machine: set up, fetch the real footage, build, then upscale the
# held-out tail of a real surveillance clip (vtest.avi, frames 600+) ×4 with the embedded
# default model, and write a bicubic-vs-cyclesr comparison of one frame.
#   FRAMES=N  frames to upscale (default 10; on 2 idle CPU cores about 20 s per 768x576 frame
#             with the default model, 5 s with EMBEDDED_MODEL=fast)
#   EMBEDDED_MODEL=quality|fast  the embedded model to run (default quality, the element's)
#   PRECISION=fp32|bf16  the element's precision (default bf16 where the CPU computes bf16
#             natively, AVX512-BF16: about twice as fast, the same scores within 0.01 dB;
#             else fp32)
#   OUT=dir   where the results go (default out/)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-10}
EMBEDDED_MODEL=${EMBEDDED_MODEL:-quality}
case $EMBEDDED_MODEL in
  quality) model=plugin/models/srresnet-16x64.safetensors ;;
  fast) model=plugin/models/srresnet-6x32.safetensors ;;
  *) echo "demo: EMBEDDED_MODEL must be quality or fast, not '$EMBEDDED_MODEL'" >&2; exit 2 ;;
esac
OUT=${OUT:-out}
if [ -z "${PRECISION:-}" ]; then
  PRECISION=fp32
  grep -q -w avx512_bf16 /proc/cpuinfo 2>/dev/null && PRECISION=bf16
fi
case $PRECISION in
  fp32|bf16) ;;
  *) echo "demo: PRECISION must be fp32 or bf16, not '$PRECISION'" >&2; exit 2 ;;
esac

bash scripts/setup.sh
bash scripts/fetch-data.sh
echo "demo: building (the first build compiles libtorch's C++ glue: several minutes)"
cargo build --release -p cyclesr-examples -p cyclesr-train --bins

if [ ! -f "$model" ]; then
  echo "demo: this checkout has no $EMBEDDED_MODEL model ($model)" >&2
  exit 1
fi
mkdir -p "$OUT"
echo "demo: upscaling with the $EMBEDDED_MODEL model in $PRECISION"
video="$OUT/vtest-tail-x4.mp4"
png="$OUT/vtest-frame700-bicubic-vs-cyclesr.png"
target/release/upscale --input data/real_lr/vtest.avi --start-frame 600 --frames "$FRAMES" \
  --output "$video" --x264-preset veryfast --embedded-model "$EMBEDDED_MODEL" --precision "$PRECISION"
target/release/train compare --input data/real_lr/vtest.avi --frame 700 --model "$model" --out "$png"
echo
echo "demo: upscaled video (frames 600-$((600 + FRAMES - 1)) of vtest.avi, 768x576 -> 3072x2304): $video"
echo "demo: side by side, left bicubic, right cyclesr: $png"
