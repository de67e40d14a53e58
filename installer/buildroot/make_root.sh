#!/usr/bin/env bash
# Make the Debian 11 (bullseye, glibc 2.31) build root the bundle is built in (installer/buildroot/README.md).
#
#   sudo installer/buildroot/make_root.sh [ROOT]        (default ROOT: /work/cache/bullseye-root)
#
# debootstrap verifies the Release file's signature with debian-archive-keyring and every package against
# the hashes that Release lists, so the root is pinned to what Debian signed. Idempotent: a finished root
# (marker file .asclepius-root, holding the package list below) is left as it is; a changed list is installed.
set -euo pipefail

ROOT="${1:-${ASCLEPIUS_BUILDROOT:-/work/cache/bullseye-root}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
HERE="$(cd "$(dirname "$0")" && pwd)"

# Compilers and the headers CPython 3.11 needs for sqlite3, ssl, ctypes, lzma, bz2, zlib and uuid. No
# libreadline-dev (GPL-3: the bundle must not link it) and no libgdbm-dev (GPL-3) either.
BUILD_DEPS="build-essential pkg-config ca-certificates curl xz-utils git patchelf binutils file
 libssl-dev libsqlite3-dev libffi-dev liblzma-dev libbz2-dev zlib1g-dev uuid-dev"
# What the PySide6 wheels' Qt libraries and plugins link to (the Wayland platform plugin: libwayland-*): PyInstaller bundles the ones it finds in the
# root, as `make installer` does on the host (libGL/libEGL and the C library stay the system's).
QT_RUNTIME="libgl1 libegl1 libopengl0 libglib2.0-0 libdbus-1-3 libfontconfig1 libfreetype6 libxkbcommon0
 libxkbcommon-x11-0 libx11-6 libx11-xcb1 libxcb1 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xinerama0
 libxcb-xkb1 libxcb-util1 libsm6 libice6 libxext6 libxrender1 libwayland-cursor0 libwayland-egl1"
# Qt >= 6.5's X11 platform plugin links libxcb-cursor.so.0, which Debian has packaged since 12 only. Debian
# 12's package needs nothing newer than Debian 11 has (libc6 >= 2.8, libxcb*): it is installed into the root
# from its pinned sha256 (the one bookworm's signed Packages index lists) and bundled like the other X
# libraries, so the desktop app starts on Debian 11 and Ubuntu 20.04 too.
XCB_CURSOR_URL="$MIRROR/pool/main/x/xcb-util-cursor/libxcb-cursor0_0.1.4-1_amd64.deb"
XCB_CURSOR_SHA256=a4b3c32dc008275ffcacccc1c77c030f01aad38e232e05d5ad116b76656c607c

if [ ! -x "$ROOT/usr/bin/apt-get" ]; then  # debootstrap finished before
    mkdir -p "$ROOT"
    # --variant=minbase: essential packages and apt only; the rest comes from the lists above.
    debootstrap --variant=minbase --keyring="$KEYRING" --include=ca-certificates \
        bullseye "$ROOT" "$MIRROR"
fi

APT="$(echo $BUILD_DEPS $QT_RUNTIME)"
WANT="$APT ${XCB_CURSOR_URL##*/}"
if [ -f "$ROOT/.asclepius-root" ] && [ "$(cat "$ROOT/.asclepius-root")" = "$WANT" ]; then
    echo "make_root: $ROOT is ready"
    exit 0
fi
"$HERE/enter.sh" "$ROOT" sh -c "apt-get update -q && DEBIAN_FRONTEND=noninteractive \
    apt-get install -q -y --no-install-recommends $APT"
deb="$ROOT/var/cache/apt/archives/${XCB_CURSOR_URL##*/}"
[ -f "$deb" ] || curl -fsSL --retry 3 -o "$deb" "$XCB_CURSOR_URL"
echo "$XCB_CURSOR_SHA256  $deb" | sha256sum -c --quiet - || { echo "make_root: $deb: sha256 mismatch" >&2; exit 1; }
"$HERE/enter.sh" "$ROOT" dpkg -i "/var/cache/apt/archives/${XCB_CURSOR_URL##*/}"
"$HERE/enter.sh" "$ROOT" sh -c 'dpkg-query -W -f "\${Package}=\${Version}\n"' >"$ROOT/.asclepius-packages"
echo "$WANT" >"$ROOT/.asclepius-root"
echo "make_root: $ROOT ready ($(wc -l <"$ROOT/.asclepius-packages") packages, glibc $("$HERE/enter.sh" "$ROOT" ldd --version | head -n1 | awk '{print $NF}'))"
