#!/usr/bin/env bash
# Packs what a bare GPU machine (CUDA + PyTorch at /opt/torch/.venv, no Rust, no GStreamer,
# no network) needs to run cyclesr's CUDA checks, benchmarks and training: the release
# binaries and CUDA-relevant test binaries, stripped; Debian's GStreamer runtime as .debs;
# optionally the Table 1 data and the real footage. Everything goes to .gpu/ (git-ignored
# through .git/info/exclude; the device tool carries at most 64 MiB), which scripts/gpu-run.sh
# reads on the GPU machine.
#   scripts/gpu-bundle.sh [--with-data]
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=.gpu
with_data=0
[ "${1:-}" = "--with-data" ] && with_data=1

grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
rm -rf "$bundle/bin"
mkdir -p "$bundle/bin" "$bundle/deb"

cargo build --release -p cyclesr-train --bins
# Test binaries whose results change on a CUDA machine (device=auto picks CUDA there).
tests=$(cargo test --release --no-run --message-format=json \
    -p gst-plugin-cyclesr --test cuda --test element -p cyclesr-train --test cuda 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["package_id"].split("#")[-1].split("@")[0] + "-" + m["target"]["name"], m["executable"])
')
while read -r name exe; do
  strip -o "$bundle/bin/test-$name" "$exe"
done <<<"$tests"
strip -o "$bundle/bin/train" target/release/train
xz -T0 -6 "$bundle"/bin/*

# GStreamer 1.22 and what it links, as Debian 12 ships them (the GPU image has neither).
(cd "$bundle/deb" && apt-get download -q \
  libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 gstreamer1.0-plugins-base liborc-0.4-0 \
  libglib2.0-0 libunwind8 libdw1 libelf1 libffi8 libpcre2-8-0 libmount1 libselinux1 \
  libblkid1 zlib1g liblzma5 libbz2-1.0 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)

if [ "$with_data" = 1 ]; then
  rm -rf "$bundle/data"
  mkdir -p "$bundle/data"
  cp -rL data/table1 data/real_lr "$bundle/data/"
  # The three benchmarks share their HR photos: carry them once (gpu-run.sh links them back).
  for preset in mild wild codec camera; do
    mkdir -p "$bundle/data/bench/$preset"
    cp -r "data/bench/$preset/lr" "data/bench/$preset/degradation.json" "$bundle/data/bench/$preset/"
  done
  cp -rL data/bench/mild/hr "$bundle/data/bench/mild/"
fi
du -sh "$bundle"/* "$bundle"
