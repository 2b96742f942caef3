# shellcheck shell=bash
# Shared set-up for the example scripts (sourced, not run).
#
# - GST_PLUGIN_PATH: when unset, the plugin built in this checkout
#   (target/release/libgstcyclesr.so, `cargo build --release`) is used; set it to the
#   meson install folder (e.g. /usr/local/lib/x86_64-linux-gnu/gstreamer-1.0) to use an
#   installed plugin instead.
# - GST_REGISTRY: when unset, a private registry file, because GStreamer blacklists a
#   plugin in its registry cache once it failed to load (e.g. libtorch not found) and
#   keeps it blacklisted after the fix.

EXAMPLES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$EXAMPLES_DIR/.." && pwd)

if [ -z "${GST_PLUGIN_PATH:-}" ] && [ -f "$REPO_DIR/target/release/libgstcyclesr.so" ]; then
  export GST_PLUGIN_PATH="$REPO_DIR/target/release"
fi
export GST_REGISTRY="${GST_REGISTRY:-${TMPDIR:-/tmp}/cyclesr-examples-registry-$(id -u).bin}"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Fails with a useful message when an element is missing.
need_element() {
  local e
  for e in "$@"; do
    gst-inspect-1.0 "$e" >/dev/null 2>&1 && continue
    case "$e" in
      cyclesr) die "GStreamer cannot find the cyclesr element (GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-unset}); build it with 'cargo build --release' or install it with meson, and check: GST_REGISTRY=$GST_REGISTRY gst-inspect-1.0 cyclesr" ;;
      x264enc) die "no x264enc: install gstreamer1.0-plugins-ugly" ;;
      avdec_*) die "no $e: install gstreamer1.0-libav" ;;
      *) die "no GStreamer element '$e' (check gst-inspect-1.0 $e)" ;;
    esac
  done
}

need_file() { [ -f "$1" ] || die "$2 '$1' does not exist"; }

# Audio codecs an MP4 holds as they are (AAC, MP3, AC-3, Opus, ALAC).
MP4_AUDIO_CAPS="audio/mpeg,mpegversion=(int)4,stream-format=(string)raw;audio/mpeg,mpegversion=(int)1,layer=(int)3;audio/x-ac3;audio/x-opus;audio/x-alac"

# Sets audio_branch to a gst-launch branch that brings the first audio stream of the file $1
# into the muxer named $2: remuxed untouched when MP4 holds its codec, else decoded and
# encoded to AAC; empty when the file has no audio. The branch reads the file a second time,
# so the audio queue filling while the video is upscaled never stalls the video. Its
# decodebin stops at the caps wanted and exposes no other stream.
find_audio() {
  local in=$1 mux=$2 enc
  audio_branch=()
  # Each probe stops after one audio buffer; it fails when there is no such stream.
  if audio_probe "$in" "$MP4_AUDIO_CAPS"; then
    log "audio: kept as it is"
    audio_branch=(filesrc location="$in" ! decodebin caps="$MP4_AUDIO_CAPS" expose-all-streams=false
                  ! queue ! "$mux.")
  elif audio_probe "$in" "audio/x-raw(ANY)"; then
    for enc in avenc_aac voaacenc ""; do
      [ -n "$enc" ] && gst-inspect-1.0 "$enc" >/dev/null 2>&1 && break
    done
    [ -n "$enc" ] || die "MP4 cannot hold the audio codec of $in and no AAC encoder is installed (avenc_aac: gstreamer1.0-libav)"
    log "audio: encoded to AAC with $enc (MP4 cannot hold its codec)"
    audio_branch=(filesrc location="$in" ! decodebin caps="audio/x-raw(ANY)" expose-all-streams=false
                  ! queue ! audioconvert ! audioresample ! "$enc" ! "$mux.")
  else
    log "audio: none"
  fi
}

# Whether the file $1 has a stream decodebin can bring to caps $2.
audio_probe() {
  gst-launch-1.0 -q filesrc location="$1" ! decodebin caps="$2" expose-all-streams=false \
    ! identity eos-after=1 ! fakesink >/dev/null 2>&1
}
