#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine for cyclesr: system packages,
# a project-local virtualenv with PyTorch 2.11.0 (libtorch for tch, and the
# Python reference used by tests and benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config g++ meson ninja-build
  python3 python3-venv  # the virtualenv below; the scripts' small Python helpers (3.11: tomllib)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium  # renders `train camera`'s report.html headless in its test
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The full torch wheel: `import torch` (the Python reference) needs its CUDA
# runtime libraries even on a CPU machine, and tch links against its libtorch.
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, safetensors.torch, numpy; assert torch.__version__.startswith('2.11.0')" 2>/dev/null; then
  # The wheels take about 5 GiB once installed; pip's download of them needs room on top.
  need_kib=$((7 * 1024 * 1024))
  for dir in "$VENV" "${TMPDIR:-/tmp}"; do
    free_kib=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
    if [ "$free_kib" -lt "$need_kib" ]; then
      echo "setup: $dir has $((free_kib / 1024)) MiB free; installing PyTorch needs about 7 GiB there" >&2
      exit 1
    fi
  done
  echo "setup: installing PyTorch 2.11.0 and friends into $VENV (about 3 minutes when fresh)"
  # No pip cache: it would keep a second copy of every wheel.
  "$VENV/bin/pip" install -q --no-cache-dir --disable-pip-version-check -r scripts/requirements.txt
fi
# A stable path to libtorch for tch (.cargo/config.toml), whatever the Python version.
torch_dir=$("$VENV/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))")
ln -sfn "$torch_dir" "$VENV/libtorch"
echo "setup: done"
