#!/usr/bin/env bash
# Live super-resolution of a camera, shown in a window.
#
# Usage: examples/camera.sh MODEL.safetensors [cyclesr property=value ...]
#   e.g. examples/camera.sh runs/g_l2h.safetensors device=cuda precision=fp16
#
# Pipeline:
#   v4l2src device=$DEVICE ! video/x-raw,width=..,height=.. ! videoconvert
#     ! queue max-size-buffers=1 leaky=downstream ! cyclesr model-location=MODEL [props]
#     ! videoconvert ! autovideosink
# It needs a V4L2 camera (/dev/video0 or $DEVICE) and a display. It cannot run on the
# headless build machine (no camera, no display): there it was only tried with
# CAMERA_SRC="videotestsrc is-live=true num-buffers=30" VIDEO_SINK=fakevideosink.
# Cameras give YUY2/MJPEG and the like, hence the videoconvert in front of cyclesr.
# Real-time needs a GPU: on a CPU, keep the camera size small (CAMERA_CAPS). The leaky
# queue and the element's QoS drop frames that arrive while one is being upscaled.
#
# Environment:
#   DEVICE       camera device (default /dev/video0)
#   CAMERA_CAPS  caps asked of the camera (default video/x-raw,width=320,height=240)
#   CAMERA_SRC   source element and properties (default "v4l2src device=$DEVICE")
#   VIDEO_SINK   sink element and properties (default autovideosink)
#   GST_PLUGIN_PATH, GST_REGISTRY: see examples/lib.sh
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
model=$1; shift
need_file "$model" "model"

device=${DEVICE:-/dev/video0}
read -r -a src <<<"${CAMERA_SRC:-v4l2src device=$device}"
read -r -a sink <<<"${VIDEO_SINK:-autovideosink}"
caps=${CAMERA_CAPS:-video/x-raw,width=320,height=240}
need_element "${src[0]}" videoconvert queue cyclesr "${sink[0]}"
if [ "${src[0]}" = "v4l2src" ] && [ ! -e "$device" ]; then
  die "no camera at $device (set DEVICE=/dev/videoN)"
fi

log "${src[*]} ($caps) -> cyclesr (model $model${*:+, $*}) -> ${sink[*]}"
gst-launch-1.0 -e \
  "${src[@]}" ! "$caps" ! videoconvert \
  ! queue max-size-buffers=1 leaky=downstream \
  ! cyclesr model-location="$model" "$@" \
  ! videoconvert ! "${sink[@]}"
