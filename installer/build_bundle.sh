#!/usr/bin/env bash
# `make installer`: build dist/asclepius-desk-<version>-linux-x86_64.tar.gz and the files beside it.
#
#   installer/build_bundle.sh [--model FILE.gguf] [--buildroot]
#
# --buildroot: build inside a Debian 11 root instead (installer/buildroot/build_in_root.sh; needs root): the
# bundle then needs glibc 2.31, not this machine's. The steps below run there, with the root's CPython 3.11.
#
# 1. the portable llama-cpp-python wheel (installer/build_llama.sh; cached)
# 2. a build venv outside the repo with the app installed non-editable from this tree, plus PyInstaller
# 3. the PyInstaller one-folder bundle (installer/asclepius.spec); fails if torch/transformers got in
# 4. the archive, SHA256SUMS, SBOM, licence texts, VERIFY.md (installer/package.py)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${ASCLEPIUS_INSTALLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asclepius-desk-installer}"
PY="${PYTHON:-python3}"
MODEL=""
BUILDROOT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL="${2:?--model needs a GGUF file}"; shift 2 ;;
        --model=*) MODEL="${1#--model=}"; shift ;;
        --buildroot) BUILDROOT=1; shift ;;
        *) echo "build_bundle: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -n "$MODEL" ] && [ ! -f "$MODEL" ]; then
    echo "build_bundle: --model $MODEL: no such file" >&2; exit 2
fi
if [ -n "$BUILDROOT" ]; then
    exec "$ROOT/installer/buildroot/build_in_root.sh" ${MODEL:+--model "$MODEL"}
fi

PYTHON="$PY" "$ROOT/installer/build_llama.sh"

VENV="$CACHE/venv"
WHEEL="$(ls "$CACHE"/wheels/llama_cpp_python-*.whl | head -n1)"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
# The portable wheel first, so the app's own pin is already met and pip never builds llama.cpp natively.
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$WHEEL"
# Every other input pinned and hash-checked (installer/build-requirements.lock, written by installer/lock.py);
# llama-cpp-python, installed above from the wheel built from the locked sdist, is already satisfied.
"$VENV/bin/pip" install -q --require-hashes --no-deps -r "$ROOT/installer/build-requirements.lock"
"$VENV/bin/pip" check
# The app must be the one from this tree (not an editable link back to it).
"$VENV/bin/pip" install -q --force-reinstall --no-deps "$ROOT"

WORK="$ROOT/build/installer"
DIST="$WORK/dist"
rm -rf "$WORK"
mkdir -p "$WORK"
# Run from outside the repo so the frozen app is analysed from the build venv's installed copy.
# A fixed hash seed: PyInstaller writes base_library.zip in set-iteration order, which otherwise changes with
# every run (two builds of one commit differed only there; its members were byte-identical).
(cd "$WORK" && PYTHONHASHSEED=0 nice -n 10 "$VENV/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK/pyi" "$ROOT/installer/asclepius.spec")

ARGS=(--bundle "$DIST/asclepius-desk" --llama-build "$CACHE/wheels/llama-build.json" --out "$ROOT/dist")
if [ -n "$MODEL" ]; then ARGS+=(--model "$MODEL"); fi
(cd "$ROOT" && "$VENV/bin/python" -m installer.package "${ARGS[@]}")
