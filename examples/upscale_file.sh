#!/usr/bin/env bash
# Upscale a video file with cyclesr into an H.264 MP4.
#
# Usage: examples/upscale_file.sh IN OUT.mp4 MODEL.safetensors [cyclesr property=value ...]
#   e.g. examples/upscale_file.sh data/real_lr/vtest.avi vtest-x4.mp4 runs/g_l2h.safetensors device=cuda tile-size=256
#
# Pipeline:
#   filesrc ! decodebin caps=video/x-raw ! cyclesr model-location=MODEL [props] ! videoconvert
#     ! x264enc ! mp4mux ! filesink
#   filesrc ! decodebin caps=<MP4's audio codecs> ! queue ! mp4mux   (the audio, untouched)
# Decoders' formats (I420, NV12, Y444, YUY2, 10-bit I420_10LE and P010_10LE, RGB/BGR(x/A))
# go straight into cyclesr: it converts colour itself, so there is no videoconvert in front
# of it. A decoder that only gives another format fails to link: put "videoconvert !"
# before cyclesr then. The first audio stream is kept: remuxed as it is when MP4 holds its
# codec (AAC, MP3, AC-3, Opus, ALAC), else encoded to AAC.
#
# Environment: X264_PROPS (default "speed-preset=medium"), GST_PLUGIN_PATH and
# GST_REGISTRY (see examples/lib.sh).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
in=$1; out=$2; model=$3; shift 3
need_file "$in" "input"
need_file "$model" "model"
need_element filesrc decodebin identity fakesink queue cyclesr videoconvert x264enc mp4mux filesink

read -r -a x264_props <<<"${X264_PROPS:-speed-preset=medium}"

log "$in -> $out (model $model${*:+, $*})"
find_audio "$in" mux
start_ns=$(date +%s%N)
# -e: on Ctrl-C send EOS first so that mp4mux writes a playable file.
gst-launch-1.0 -e \
  mp4mux name=mux ! filesink location="$out" \
  filesrc location="$in" ! decodebin caps="video/x-raw(ANY)" expose-all-streams=false \
  ! cyclesr model-location="$model" "$@" \
  ! videoconvert ! x264enc "${x264_props[@]}" ! mux. \
  "${audio_branch[@]}"
ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
log "wrote $out ($(du -h "$out" | cut -f1)) in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
