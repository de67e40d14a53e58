#!/usr/bin/env bash
# `make installer-bullseye`: build the release inside a Debian 11 root (glibc 2.31), so the bundle runs on
# Debian 11/12, Ubuntu 20.04-24.04 and RHEL 9 (installer/README.md, "Older Linux"). Needs root (chroot).
#
#   installer/buildroot/build_in_root.sh [--model FILE.gguf]
#
# 1. the root (make_root.sh; once), 2. CPython 3.11 from a pinned, hash-checked source (fetch_python.sh,
# build_python.sh; once), 3. this tree's tracked and untracked-but-not-ignored files copied into the root,
# 4. installer/build_bundle.sh run there with that Python (the llama.cpp wheel and the build venv are cached in
# the root's /build/cache), 5. the glibc floor checked (installer/floor.py), 6. dist/ copied out.
#
# Environment: ASCLEPIUS_BUILDROOT (default /work/cache/bullseye-root), ASCLEPIUS_BUNDLE_OUT (where the
# release goes; default /work/cache/bundle-bullseye), GLIBC_MAX (default 2.31: the build fails above it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BUILDROOT="${ASCLEPIUS_BUILDROOT:-/work/cache/bullseye-root}"
OUT="${ASCLEPIUS_BUNDLE_OUT:-/work/cache/bundle-bullseye}"
GLIBC_MAX="${GLIBC_MAX:-2.31}"
MODEL=""
case "${1:-}" in
    --model) MODEL="${2:?--model needs a GGUF file}" ;;
    --model=*) MODEL="${1#--model=}" ;;
    "") ;;
    *) echo "build_in_root: unknown argument $1" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "build_in_root: needs root (debootstrap, chroot)" >&2; exit 2; }
# shellcheck source=python.pins
. "$HERE/python.pins"
START=$(date +%s)

"$HERE/make_root.sh" "$BUILDROOT"
"$HERE/fetch_python.sh" "$BUILDROOT/build/python-dist"
cp "$HERE/build_python.sh" "$HERE/python.pins" "$BUILDROOT/build/"
"$HERE/enter.sh" "$BUILDROOT" /build/build_python.sh "/build/python-dist/${PYTHON_ORIG_URL##*/}" /build/python.pins

SRC="$BUILDROOT/build/asclepius-desk"
rm -rf "$SRC" && mkdir -p "$SRC"
git -C "$REPO" ls-files -z --cached --others --exclude-standard \
    | (cd "$REPO" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
    | (cd "$REPO" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
ARGS=""
if [ -n "$MODEL" ]; then
    mkdir -p "$BUILDROOT/build/model" && cp "$MODEL" "$BUILDROOT/build/model/"
    ARGS="--model /build/model/$(basename "$MODEL")"
fi
# pip inside the root trusts what this machine trusts: a site whose egress re-signs TLS with its own CA (as this
# build host's does) has that CA in the host's bundle only. Given to pip as a file; the root's store is untouched.
CERT=""
if [ -f "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" ]; then
    cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$BUILDROOT/build/host-ca.crt"
    CERT="PIP_CERT=/build/host-ca.crt"
fi
# The copy in the root is not a git checkout: the release's timestamps come from this commit (reproducible).
EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct)}"
"$HERE/enter.sh" "$BUILDROOT" sh -c "cd /build/asclepius-desk && export $CERT PYTHON=$PYTHON_PREFIX/bin/python3.11 \
    SOURCE_DATE_EPOCH=$EPOCH ASCLEPIUS_INSTALLER_CACHE=/build/cache && installer/build_bundle.sh $ARGS"
"$HERE/enter.sh" "$BUILDROOT" sh -c "cd /build/asclepius-desk && $PYTHON_PREFIX/bin/python3.11 -m installer.floor \
    --max-glibc $GLIBC_MAX build/installer/dist/asclepius-desk"

rm -rf "$OUT" && mkdir -p "$OUT"
cp -a "$SRC/dist/." "$OUT/"
END=$(date +%s)
{
    echo "built_in=Debian 11 (bullseye) root $BUILDROOT, $("$HERE/enter.sh" "$BUILDROOT" getconf GNU_LIBC_VERSION)"
    echo "commit=$(git -C "$REPO" rev-parse HEAD)$(git -C "$REPO" diff --quiet HEAD || echo +dirty)"
    echo "wall_seconds=$((END - START))"
} >"$OUT/BUILT-IN.txt"
echo "build_in_root: release in $OUT ($((END - START)) s)"
ls -la "$OUT"
