#!/usr/bin/env bash
# `make wheelhouse`: every wheel that `asclepius-desk[train,quantize]` needs on Linux x86-64 with this
# Python, hash-locked, for air-gapped training servers.
#
#   installer/wheelhouse.sh [--torch cpu|cuda] [--out DIR]
#
# --torch cpu   torch==2.13.0+cpu (here: the CPU wheel pip finds on this machine)
# --torch cuda  torch==2.13.0 from PyPI, the CUDA build with its nvidia-* wheels (~3 GB; not tested here)
# The app's own llama-cpp-python is the portable wheel from installer/build_llama.sh (training servers have
# no compiler either). Writes DIR/*.whl, DIR/requirements.lock (name==version --hash=sha256:...),
# DIR/install.sh, DIR/SHA256SUMS and DIR/README.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ASCLEPIUS_INSTALLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asclepius-desk-installer}"
PY="${PYTHON:-python3}"
TORCH=cpu
OUT="$ROOT/dist/wheelhouse"
while [ $# -gt 0 ]; do
    case "$1" in
        --torch) TORCH="${2:?}"; shift 2 ;;
        --out) OUT="${2:?}"; shift 2 ;;
        *) echo "wheelhouse: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$TORCH" in cpu|cuda) ;; *) echo "wheelhouse: --torch must be cpu or cuda" >&2; exit 2 ;; esac
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

"$ROOT/installer/build_llama.sh"
rm -rf "$OUT"
mkdir -p "$OUT"
BUILD="$CACHE/wheelhouse-build"
rm -rf "$BUILD"; mkdir -p "$BUILD"
# The project's own wheel, built from this tree.
"$PY" -m pip wheel -q --no-deps -w "$OUT" "$ROOT"
VERSION="$("$PY" -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")"
cp "$CACHE"/wheels/llama_cpp_python-*.whl "$OUT/"

if [ "$TORCH" = cpu ]; then
    TORCH_REQ="torch==2.13.0+cpu"
    ENVCONF=()
else
    # Only PyPI (ignore this machine's local wheel directories, which hold the CPU build).
    TORCH_REQ="torch==2.13.0"
    ENVCONF=(env PIP_CONFIG_FILE=/dev/null)
fi
# Resolve and fetch wheels only (no sdists: the servers cannot build them); any package without a wheel
# for this platform fails here, not on the server.
"${ENVCONF[@]}" "$PY" -m pip download -q --only-binary=:all: -d "$OUT" --find-links "$OUT" \
    "asclepius-desk[train,quantize]==$VERSION" "$TORCH_REQ"
"$PY" -m installer.wheelhouse lock "$OUT" --project "asclepius-desk[train,quantize]"
cp "$ROOT/installer/wheelhouse/install.sh" "$OUT/install.sh"
chmod 755 "$OUT/install.sh"
cp "$ROOT/installer/wheelhouse/README.txt" "$OUT/README.txt"
(cd "$OUT" && sha256sum -- *.whl requirements.lock install.sh > SHA256SUMS)
echo "wheelhouse: $(ls "$OUT"/*.whl | wc -l) wheels, $(du -sh "$OUT" | cut -f1) in $OUT (torch: $TORCH)"
