#!/usr/bin/env bash
# Bicubic on the left, cyclesr on the right, same size, in one picture.
#
# Usage: examples/side_by_side.sh IN OUT.mp4|--show MODEL.safetensors [cyclesr property=value ...]
#   OUT.mp4   write an H.264 MP4 (twice as wide as the upscaled video)
#   --show    show it in a window instead (autovideosink, or $VIDEO_SINK)
#   e.g. examples/side_by_side.sh data/real_lr/tree.avi tree-sbs.mp4 runs/g_l2h.safetensors
#
# Pipeline (W x H: the input size, S: the model's scale):
#   filesrc ! decodebin caps=video/x-raw(ANY) ! tee name=t
#     t. ! queue ! videoscale method=catrom ! video/x-raw,width=S*W,height=S*H ! mix.sink_0
#     t. ! queue ! cyclesr model-location=MODEL [props] ! mix.sink_1
#   compositor name=mix sink_1::xpos=S*W ! video/x-raw,pixel-aspect-ratio=<the input's>
#     ! videoconvert ! x264enc ! mp4mux ! filesink   (or autovideosink)
#   filesrc ! decodebin caps=<MP4's audio codecs> ! queue ! mp4mux   (MP4 output: the
#     audio, untouched; encoded to AAC when MP4 cannot hold its codec)
# videoscale has no method called "bicubic": catrom (Catmull-Rom, the cubic kernel with
# a = -0.5) is what MATLAB/PIL/OpenCV call bicubic. The sizes are found first by running
# cyclesr on the first frame. With gst's textoverlay (pango plugin) installed, each half
# is labelled.
#
# Environment: X264_PROPS (default "speed-preset=medium"), VIDEO_SINK (default
# autovideosink), GST_PLUGIN_PATH and GST_REGISTRY (see examples/lib.sh).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
in=$1; out=$2; model=$3; shift 3
need_file "$in" "input"
need_file "$model" "model"
need_element filesrc decodebin tee queue videoscale compositor cyclesr videoconvert
if [ "$out" = "--show" ]; then
  read -r -a video_sink <<<"${VIDEO_SINK:-autovideosink}"
  need_element "${video_sink[0]}"
  sink=(videoconvert ! "${video_sink[@]}")
else
  need_element x264enc mp4mux filesink
  read -r -a x264_props <<<"${X264_PROPS:-speed-preset=medium}"
  sink=(videoconvert ! x264enc "${x264_props[@]}" ! mp4mux name=mux ! filesink location="$out")
fi

# Input and output sizes: caps on cyclesr's pads for the first frame (-v prints them).
log "probing sizes (one frame through cyclesr)"
probe=$(gst-launch-1.0 -v filesrc location="$in" ! decodebin caps="video/x-raw(ANY)" expose-all-streams=false \
          ! identity eos-after=1 \
          ! cyclesr name=sr model-location="$model" "$@" ! fakesink 2>&1) \
  || { printf '%s\n' "$probe" | tail -n 5 >&2; die "cyclesr failed on the first frame of $in"; }
size_of() { # <pad>: "W H" from its caps line
  printf '%s\n' "$probe" | grep -m1 "sr.GstPad:$1: caps" \
    | sed -E 's/.*width=\(int\)([0-9]+).*height=\(int\)([0-9]+).*/\1 \2/'
}
read -r in_w in_h <<<"$(size_of sink)"
read -r out_w out_h <<<"$(size_of src)"
[ -n "${out_w:-}" ] && [ -n "${out_h:-}" ] || die "could not read the video size from gst-launch -v"
# Keep the input's pixel aspect ratio on the output, or compositor would stretch each
# half to square pixels (and x264 refuses the odd width that can give).
par=$(printf '%s\n' "$probe" | grep -m1 "sr.GstPad:src: caps" \
        | sed -nE 's/.*pixel-aspect-ratio=\(fraction\)([0-9]+\/[0-9]+).*/\1/p')
par=${par:-1/1}
log "input ${in_w}x${in_h}, output ${out_w}x${out_h} per half, $((2 * out_w))x${out_h} in all, pixel aspect ratio $par"

left=(videoscale method=catrom ! "video/x-raw,width=$out_w,height=$out_h")
right=(cyclesr model-location="$model" "$@")
if gst-inspect-1.0 textoverlay >/dev/null 2>&1; then
  left+=(! textoverlay text=bicubic valignment=top halignment=left font-desc="Sans 24")
  right+=(! textoverlay text=cyclesr valignment=top halignment=left font-desc="Sans 24")
fi

audio_branch=()
if [ "$out" != "--show" ]; then
  need_element identity fakesink
  find_audio "$in" mux
fi

start_ns=$(date +%s%N)
gst-launch-1.0 -e \
  compositor name=mix background=black sink_0::xpos=0 "sink_1::xpos=$out_w" \
  ! "video/x-raw,pixel-aspect-ratio=$par" ! "${sink[@]}" \
  filesrc location="$in" ! decodebin caps="video/x-raw(ANY)" expose-all-streams=false ! tee name=t \
  t. ! queue ! "${left[@]}" ! mix.sink_0 \
  t. ! queue ! "${right[@]}" ! mix.sink_1 \
  "${audio_branch[@]}"
ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
if [ "$out" != "--show" ]; then
  log "wrote $out ($(du -h "$out" | cut -f1)) in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
fi
