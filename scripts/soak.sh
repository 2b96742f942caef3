#!/usr/bin/env bash
# Memory soak of the element: FRAMES frames through
#   filesrc ! decodebin ! cyclesr ! videoconvert ! x264enc ! mp4mux ! filesink
# (the upscale binary), sampling the process's resident memory every second, and its CUDA
# memory on a GPU (nvidia-smi). Prints the memory after warm-up (the first tenth of the
# run), at the middle and at the end, and the peak; memory that keeps growing shows as an
# end figure above the warm-up one. A benchmark, not a test.
#   FRAMES=N    frames (default 10000)
#   SIZE=WxH    input size (default 64x48)
#   UPSCALE_ARGS  more arguments for the upscale binary (e.g. "--batch 4 --overlap --device cuda")
#   JSON=file   also write the figures there
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${FRAMES:-10000}
SIZE=${SIZE:-64x48}
read -r -a extra <<<"${UPSCALE_ARGS:-}"
[ -x target/release/upscale ] || cargo build --release -p cyclesr-examples --bins

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "soak: making $FRAMES frames of ${SIZE} H.264"
gst-launch-1.0 -q videotestsrc num-buffers="$FRAMES" pattern=ball \
  ! "video/x-raw,format=I420,width=${SIZE%x*},height=${SIZE#*x},framerate=25/1" \
  ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location="$work/in.mp4"

target/release/upscale --input "$work/in.mp4" --output "$work/out.mp4" \
  --x264-preset ultrafast "${extra[@]}" 2>"$work/log" &
pid=$!
gpu=$(command -v nvidia-smi || true)
samples=()   # "seconds rss_kib cuda_mib"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  cuda=0
  if [ -n "$gpu" ]; then
    cuda=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits \
             | awk -F', ' -v p="$pid" '$1 == p {print $2}')
    cuda=${cuda:-0}
  fi
  [ -n "$rss" ] && samples+=("$(( $(date +%s) - start )) $rss ${cuda}") && last_peak=$peak
  sleep 1
done
wait "$pid" || { tail -n 20 "$work/log" >&2; echo "soak: the upscale binary failed" >&2; exit 1; }
grep "done:" "$work/log" >&2 || true

n=${#samples[@]}
[ "$n" -ge 3 ] || { echo "soak: the run was too short to sample ($n samples)" >&2; exit 1; }
at() { printf '%s\n' "${samples[$1]}"; }
read -r t_warm rss_warm cuda_warm <<<"$(at $(( n / 10 )))"
read -r t_mid rss_mid cuda_mid <<<"$(at $(( n / 2 )))"
read -r t_end rss_end cuda_end <<<"$(at $(( n - 1 )))"
cuda_peak=$(printf '%s\n' "${samples[@]}" | awk '$3 > m {m = $3} END {print m + 0}')
mib() { echo "$(( $1 / 1024 )) MiB"; }
echo "soak: $FRAMES frames of $SIZE, ${UPSCALE_ARGS:-default arguments}, $t_end s"
echo "soak: RSS after warm-up (${t_warm} s) $(mib "$rss_warm"), middle (${t_mid} s) $(mib "$rss_mid"), end (${t_end} s) $(mib "$rss_end"), peak $(mib "${last_peak:-0}")"
[ -n "$gpu" ] && echo "soak: CUDA memory after warm-up ${cuda_warm} MiB, middle ${cuda_mid} MiB, end ${cuda_end} MiB, peak ${cuda_peak} MiB"
if [ -n "${JSON:-}" ]; then
  cat >"$JSON" <<JSON
{"frames": $FRAMES, "size": "$SIZE", "upscale_args": "${UPSCALE_ARGS:-}", "seconds": $t_end,
 "rss_kib": {"warm": $rss_warm, "middle": $rss_mid, "end": $rss_end, "peak": ${last_peak:-0}},
 "cuda_mib": {"warm": $cuda_warm, "middle": $cuda_mid, "end": $cuda_end, "peak": $cuda_peak}}
JSON
  echo "soak: wrote $JSON"
fi
