#!/usr/bin/env bash
# Install Asclepius Desk from this unpacked archive. Needs no network, no Python, no compiler.
#
#   ./install.sh                 per user: ~/.local/opt/asclepius-desk, `asclepius` in ~/.local/bin
#   sudo ./install.sh            system-wide (as root): /opt/asclepius-desk, `asclepius` in /usr/local/bin
#   ./install.sh --user          per user even as root
#   ./install.sh --prefix DIR --bin-dir DIR [--no-desktop]
#
# Exit codes: 0 installed; 2 usage; 3 the archive's contents fail their checksums (MANIFEST.sha256);
# 4 the target is not writable or has too little space; 1 anything else. Nothing is left half-installed:
# the new version is copied to a temporary directory and switched in only when complete.
# The user's evaluation log, settings and models (~/.local/share/asclepius-desk, ~/.config/asclepius-desk)
# are never written or removed here; installing over an older version keeps them.
set -euo pipefail
umask 022

HERE="$(cd "$(dirname "$0")" && pwd)"
VERSION="$(cat "$HERE/VERSION")"
APP=asclepius-desk

die() { echo "install.sh: error: $2" >&2; exit "$1"; }

MODE=user
[ "$(id -u)" = 0 ] && MODE=system
for arg in "$@"; do
    case "$arg" in --user) MODE=user ;; --system) MODE=system ;; esac
done
if [ "$MODE" = system ]; then
    [ "$(id -u)" = 0 ] || die 4 "a system-wide install needs root (sudo ./install.sh), or install per user: ./install.sh --user"
    PREFIX=/opt/$APP; BIN_DIR=/usr/local/bin; APPS_DIR=/usr/share/applications
    ICON_DIR=/usr/share/icons/hicolor/scalable/apps; SYSTEM=1
else
    DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
    PREFIX="$HOME/.local/opt/$APP"; BIN_DIR="$HOME/.local/bin"; APPS_DIR="$DATA_HOME/applications"
    ICON_DIR="$DATA_HOME/icons/hicolor/scalable/apps"; SYSTEM=0
fi
DESKTOP=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --bin-dir) BIN_DIR="${2:?--bin-dir needs a directory}"; shift 2 ;;
        --no-desktop) DESKTOP=0; shift ;;
        --user|--system) shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) die 2 "unknown argument: $1 (see --help)" ;;
    esac
done
case "$PREFIX" in /*) ;; *) PREFIX="$PWD/$PREFIX" ;; esac
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$PWD/$BIN_DIR" ;; esac

echo "Asclepius Desk $VERSION"
echo "checking the archive's contents against MANIFEST.sha256 ..."
if ! bad="$(cd "$HERE" && sha256sum --quiet --strict -c MANIFEST.sha256 2>&1)"; then
    die 3 "the unpacked files do not match their checksums; do not install this copy:
$(echo "$bad" | head -n 5)
(unpack the archive again from a copy whose SHA256SUMS check passed; see VERIFY.md)"
fi

# The nearest existing parent of a path (for the writability and free-space checks).
existing_parent() { local d="$1"; while [ ! -e "$d" ]; do d="$(dirname "$d")"; done; echo "$d"; }

need_kb=$(( $(du -sk "$HERE/$APP" | cut -f1) + $(du -sk "$HERE/models" 2>/dev/null | cut -f1 || echo 0) + 10240 ))
for dir in "$PREFIX" "$BIN_DIR"; do
    parent="$(existing_parent "$dir")"
    [ -d "$parent" ] && [ -w "$parent" ] || die 4 "cannot write to $parent (for $dir): choose another --prefix/--bin-dir, or run as root for a system-wide install"
done
parent="$(existing_parent "$PREFIX")"
free_kb=$(df -Pk "$parent" | awk 'NR==2 {print $4}')
[ "$free_kb" -ge "$need_kb" ] || die 4 "not enough free space in $parent: $((need_kb / 1024)) MiB needed, $((free_kb / 1024)) MiB free"

TMP="$PREFIX/.installing-$VERSION.$$"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'die 1 "interrupted; nothing was changed"' INT TERM
mkdir -p "$PREFIX" "$BIN_DIR" || die 4 "cannot create $PREFIX or $BIN_DIR"
cp -a "$HERE/$APP" "$TMP" 2>/dev/null || die 4 "copying into $PREFIX failed (disk full or not writable); nothing was changed"
cp "$HERE/uninstall.sh" "$TMP/uninstall.sh" || die 4 "copying into $PREFIX failed"

# Switch in the new version: rename the complete copy, then repoint `current` atomically.
rm -rf "${PREFIX:?}/$VERSION"
mv "$TMP" "$PREFIX/$VERSION"
ln -sfn "$VERSION" "$PREFIX/.current.new" && mv -T "$PREFIX/.current.new" "$PREFIX/current"
for old in "$PREFIX"/*/; do
    old="${old%/}"; name="$(basename "$old")"
    [ -L "$old" ] && continue  # `current`
    if [ "$name" != "$VERSION" ] && [ "$name" != models ] && [ -x "$old/asclepius" ]; then rm -rf "$old"; fi
done
cp "$HERE/uninstall.sh" "$PREFIX/uninstall.sh"; chmod 755 "$PREFIX/uninstall.sh"

# `asclepius` on PATH: a small launcher (the bundle's executable finds its libraries next to itself).
LAUNCHER="$BIN_DIR/asclepius"
printf '#!/bin/sh\nexec "%s/current/asclepius" "$@"\n' "$PREFIX" > "$LAUNCHER.new" && chmod 755 "$LAUNCHER.new" \
    && mv "$LAUNCHER.new" "$LAUNCHER" || die 4 "cannot write $LAUNCHER"
MANIFEST="$PREFIX/installed-files.txt"
echo "$LAUNCHER" > "$MANIFEST"

if [ "$DESKTOP" = 1 ]; then
    mkdir -p "$APPS_DIR" "$ICON_DIR"
    cp "$HERE/share/$APP.svg" "$ICON_DIR/$APP.svg"
    sed -e "s|@EXEC@|$LAUNCHER|" "$HERE/share/$APP.desktop.in" > "$APPS_DIR/$APP.desktop"
    chmod 644 "$APPS_DIR/$APP.desktop" "$ICON_DIR/$APP.svg"
    printf '%s\n' "$APPS_DIR/$APP.desktop" "$ICON_DIR/$APP.svg" >> "$MANIFEST"
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
fi

# A model carried in the archive (build option --model): kept in $PREFIX/models, which upgrades and the
# uninstaller leave alone, and registered as the default model (per user; for all users, each user runs
# the printed command once).
for gguf in "$HERE"/models/*.gguf; do
    [ -f "$gguf" ] || continue
    mkdir -p "$PREFIX/models"
    dest="$PREFIX/models/$(basename "$gguf")"
    cp "$gguf" "$dest.partial" && mv "$dest.partial" "$dest" || die 4 "copying $(basename "$gguf") failed"
    chmod 644 "$dest"
    if [ "$SYSTEM" = 0 ]; then
        "$LAUNCHER" models import "$dest" --set-default || die 1 "registering $dest failed (see the message above)"
    else
        echo "model installed for all users: each user registers it once with:"
        echo "  asclepius models import '$dest' --set-default"
    fi
done

echo "installed Asclepius Desk $VERSION in $PREFIX"
echo "  command: $LAUNCHER  (desktop app: asclepius gui)"
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "  note: $BIN_DIR is not on your PATH; add it, or run $LAUNCHER" ;; esac
echo "  uninstall: $PREFIX/uninstall.sh  (keeps your evaluation log and models)"
