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
