#!/usr/bin/env bash
# Install Asclepius Desk from this unpacked archive. Needs no network, no Python, no compiler.
#
#   ./install.sh                 per user: ~/.local/opt/asclepius-desk, `asclepius` in ~/.local/bin
#   sudo ./install.sh            system-wide (as root): /opt/asclepius-desk, `asclepius` in /usr/local/bin,
#                                every file owned by root and writable by root only
#   ./install.sh --user          per user even as root
#   ./install.sh --prefix DIR [--bin-dir DIR] [--no-desktop]
#                                the program in DIR/opt/asclepius-desk, `asclepius` in DIR/bin (or --bin-dir),
#                                desktop entry and icon under DIR/share; e.g. --prefix ~/.local or /usr/local
#
# Exit codes: 0 installed; 2 usage; 3 the archive's contents fail their checksums (MANIFEST.sha256);
# 4 the target is not writable or has too little space; 5 this machine cannot run the program (glibc too old,
# CPU lacks an instruction set: REQUIRES); 1 anything else. Nothing is left half-installed: the new version
# is copied to a temporary directory and switched in only when complete. Only the program's own directory
# and the files listed in its installed-files.txt are ever removed (never a shared directory such as bin).
# The user's evaluation log, settings and models (~/.local/share/asclepius-desk, ~/.config/asclepius-desk)
# are never written or removed here; installing over an older version keeps them.
set -euo pipefail
umask 022

HERE="$(cd "$(dirname "$0")" && pwd)"
VERSION="$(cat "$HERE/VERSION")"
APP=asclepius-desk

die() { echo "install.sh: error: $2" >&2; exit "$1"; }

# The version names a directory that upgrades replace: never a path.
case "$VERSION" in ""|.|..|models|current|*[!A-Za-z0-9._+-]*) die 3 "VERSION holds '$VERSION', not a version" ;; esac

MODE=user
[ "$(id -u)" = 0 ] && MODE=system
for arg in "$@"; do
    case "$arg" in --user) MODE=user ;; --system) MODE=system ;; esac
done
PREFIX=""; BIN_DIR=""; DESKTOP=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --bin-dir) BIN_DIR="${2:?--bin-dir needs a directory}"; shift 2 ;;
        --no-desktop) DESKTOP=0; shift ;;
        --user|--system) shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) die 2 "unknown argument: $1 (see --help)" ;;
    esac
done
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
if [ "$MODE" = system ]; then
    [ "$(id -u)" = 0 ] || die 4 "a system-wide install needs root (sudo ./install.sh), or install per user: ./install.sh --user"
fi
if [ -n "$PREFIX" ]; then
    PREFIX="$(absolute "$PREFIX")"
    APP_DIR="$PREFIX/opt/$APP"; DEFAULT_BIN="$PREFIX/bin"; SHARE="$PREFIX/share"
elif [ "$MODE" = system ]; then
    APP_DIR="/opt/$APP"; DEFAULT_BIN=/usr/local/bin; SHARE=/usr/share
else
    APP_DIR="$HOME/.local/opt/$APP"; DEFAULT_BIN="$HOME/.local/bin"; SHARE="${XDG_DATA_HOME:-$HOME/.local/share}"
fi
BIN_DIR="$(absolute "${BIN_DIR:-$DEFAULT_BIN}")"
APPS_DIR="$SHARE/applications"; ICON_DIR="$SHARE/icons/hicolor/scalable/apps"

echo "Asclepius Desk $VERSION"

# -- preflight: can this machine run the program at all? (before anything is copied) ----------------------
[ -f "$HERE/REQUIRES" ] || die 3 "REQUIRES is missing from the unpacked archive; unpack it again"
for f in preflight.sh MANIFEST.sha256 MANIFEST.links; do
    [ -f "$HERE/$f" ] || die 3 "$f is missing from the unpacked archive; unpack it again"
done
REQUIRES_TEXT="$(cat "$HERE/REQUIRES")"
# shellcheck source=preflight.sh
. "$HERE/preflight.sh"
preflight

echo "checking the archive's contents against MANIFEST.sha256 ..."
if ! bad="$(cd "$HERE" && sha256sum --quiet --strict -c MANIFEST.sha256 2>&1)"; then
    die 3 "the unpacked files do not match their checksums; do not install this copy:
$(echo "$bad" | head -n 5)
(unpack the archive again from a copy whose SHA256SUMS check passed; see VERIFY.md)"
fi

# The nearest existing parent of a path (for the writability and free-space checks).
existing_parent() { local d="$1"; while [ ! -e "$d" ]; do d="$(dirname "$d")"; done; echo "$d"; }

need_kb=$(( $(du -sk "$HERE/$APP" | cut -f1) + $(du -sk "$HERE/models" 2>/dev/null | cut -f1 || echo 0) + 10240 ))
for dir in "$APP_DIR" "$BIN_DIR"; do
    parent="$(existing_parent "$dir")"
    [ -d "$parent" ] && [ -w "$parent" ] || die 4 "cannot write to $parent (for $dir): choose another --prefix/--bin-dir, or run as root for a system-wide install"
done
parent="$(existing_parent "$APP_DIR")"
free_kb=$(df -Pk "$parent" | awk 'NR==2 {print $4}')
[ "$free_kb" -ge "$need_kb" ] || die 4 "not enough free space in $parent: $((need_kb / 1024)) MiB needed, $((free_kb / 1024)) MiB free"

# Directories this run creates are removed again (when empty) if it fails.
CREATED=()
make_dirs() {
    local d p chain
    for d in "$@"; do
        chain=()
        p="$d"
        while [ ! -e "$p" ]; do chain=("$p" ${chain[@]+"${chain[@]}"}); p="$(dirname "$p")"; done
        for p in ${chain[@]+"${chain[@]}"}; do mkdir "$p" && CREATED+=("$p") || return 1; done
    done
}
TMP="$APP_DIR/.installing-$VERSION.$$"
cleanup() {
    local rc=$? i
    rm -rf "$TMP"
    if [ "$rc" != 0 ]; then
        for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do rmdir "${CREATED[i]}" 2>/dev/null || true; done
    fi
}
trap cleanup EXIT
trap 'die 1 "interrupted; nothing was changed"' INT TERM

if [ -L "$APP_DIR" ] || [ -L "$APP_DIR/models" ]; then
    die 1 "$APP_DIR or its models directory is a symbolic link; remove it and run install.sh again"
fi
make_dirs "$APP_DIR" "$BIN_DIR" || die 4 "cannot create $APP_DIR or $BIN_DIR"
if [ "$MODE" = system ]; then
    # An installation made by an older install.sh (cp -a) is owned by the user who unpacked it: take it back
    # before using anything in it.
    chown -R -h 0:0 "$APP_DIR" && chmod -R go-w "$APP_DIR" || die 1 "cannot make $APP_DIR owned by root"
fi
# Copied without the unpacking user's ownership (cp -R as root makes root's files); modes normalised so
# no file is writable by group or others, and no set-id bit survives.
cp -R "$HERE/$APP" "$TMP" 2>/dev/null || die 4 "copying into $APP_DIR failed (disk full or not writable); nothing was changed"
chmod -R u=rwX,go=rX "$TMP"
# The copy is what runs: check it (the unpacked tree may belong to another user, who could change it).
sed -n "s|^\([0-9a-f]\{64\}\)  \./$APP/|\1  ./|p" "$HERE/MANIFEST.sha256" > "$TMP/.manifest"
(cd "$TMP" && sha256sum --quiet --strict -c .manifest >/dev/null 2>&1) \
    || die 3 "the copy in $APP_DIR does not match MANIFEST.sha256 (was the unpacked archive changed during the install?)"
# ... and holds nothing else: a file or link the release does not list (a library dropped into
# llama_cpp/lib would be loaded by the program) is refused, not installed.
listed="$( { sed -n 's|^[0-9a-f]\{64\}  \(\./.*\)$|f \1|p' "$TMP/.manifest"
             sed -n "s|^\./$APP/|l ./|p" "$HERE/MANIFEST.links"; } | LC_ALL=C sort)"
found="$(cd "$TMP" && find . -path ./.manifest -o -type d -o \( -type f -printf 'f %p\n' \) \
         -o \( -type l -printf 'l %p -> %l\n' \) -o -printf '? %p\n' | LC_ALL=C sort)"
if [ "$listed" != "$found" ]; then
    die 3 "the unpacked archive holds files or links that MANIFEST.sha256/MANIFEST.links do not list (or lacks listed links); do not install this copy:
$(diff <(printf '%s\n' "$listed") <(printf '%s\n' "$found") | grep '^[<>]' | sed 's/^>/ not listed:/; s/^</ missing:/' | head -n 5)"
fi
rm -f "$TMP/.manifest"
cp "$HERE/uninstall.sh" "$TMP/uninstall.sh" || die 4 "copying into $APP_DIR failed"
chmod 755 "$TMP/uninstall.sh"

# Switch in the new version: rename the complete copy, then repoint `current` atomically.
MANIFEST="$APP_DIR/installed-files.txt"
previous="$(readlink "$APP_DIR/current" 2>/dev/null || true)"
old_dirs=()
if [ -f "$MANIFEST" ]; then
    while IFS= read -r f; do
        if [ "$(dirname "$f")" = "$APP_DIR" ]; then old_dirs+=("$(basename "$f")"); fi
    done < "$MANIFEST"
fi
rm -rf -- "${APP_DIR:?}/$VERSION"
mv "$TMP" "$APP_DIR/$VERSION"
ln -sfn "$VERSION" "$APP_DIR/.current.new" && mv -T "$APP_DIR/.current.new" "$APP_DIR/current"
# Older versions: those recorded by the last install, and what `current` pointed to (an install made before
# versions were recorded). Each is a direct child of the program's own directory.
for name in "$previous" ${old_dirs[@]+"${old_dirs[@]}"}; do
    case "$name" in ""|*/*|.|..|models|current|"$VERSION") continue ;; esac
    if [ -d "$APP_DIR/$name" ] && [ ! -L "$APP_DIR/$name" ]; then rm -rf -- "${APP_DIR:?}/$name"; fi
done
cp "$HERE/uninstall.sh" "$APP_DIR/uninstall.sh"; chmod 755 "$APP_DIR/uninstall.sh"

# `asclepius` on PATH: a small launcher (the bundle's executable finds its libraries next to itself).
LAUNCHER="$BIN_DIR/asclepius"
printf '#!/bin/sh\nexec "%s/current/asclepius" "$@"\n' "$APP_DIR" > "$LAUNCHER.new.$$" && chmod 755 "$LAUNCHER.new.$$" \
    && mv "$LAUNCHER.new.$$" "$LAUNCHER" || { rm -f "$LAUNCHER.new.$$"; die 4 "cannot write $LAUNCHER"; }
printf '%s\n' "$APP_DIR/$VERSION" "$LAUNCHER" > "$MANIFEST.new"

if [ "$DESKTOP" = 1 ]; then
    make_dirs "$APPS_DIR" "$ICON_DIR" || die 4 "cannot create $APPS_DIR or $ICON_DIR"
    cp "$HERE/share/$APP.svg" "$ICON_DIR/$APP.svg"
    sed -e "s|@EXEC@|$LAUNCHER|" "$HERE/share/$APP.desktop.in" > "$APPS_DIR/$APP.desktop"
    chmod 644 "$APPS_DIR/$APP.desktop" "$ICON_DIR/$APP.svg"
    printf '%s\n' "$APPS_DIR/$APP.desktop" "$ICON_DIR/$APP.svg" >> "$MANIFEST.new"
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
fi
mv "$MANIFEST.new" "$MANIFEST"

# A model carried in the archive (build option --model): kept in $APP_DIR/models, which upgrades and the
# uninstaller leave alone, and registered as the default model (per user; for all users, each user runs
# the printed command once).
for gguf in "$HERE"/models/*.gguf; do
    [ -f "$gguf" ] || continue
    make_dirs "$APP_DIR/models" || die 4 "cannot create $APP_DIR/models"
    dest="$APP_DIR/models/$(basename "$gguf")"
    cp "$gguf" "$dest.partial" && mv "$dest.partial" "$dest" || die 4 "copying $(basename "$gguf") failed"
    chmod 644 "$dest"
    if [ "$MODE" = user ]; then
        "$LAUNCHER" models import "$dest" --set-default || die 1 "registering $dest failed (see the message above)"
    else
        echo "model installed for all users: each user registers it once with:"
        echo "  asclepius models import '$dest' --set-default"
    fi
done

echo "installed Asclepius Desk $VERSION in $APP_DIR"
echo "  command: $LAUNCHER  (desktop app: asclepius gui)"
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "  note: $BIN_DIR is not on your PATH; add it, or run $LAUNCHER" ;; esac
echo "  uninstall: $APP_DIR/uninstall.sh  (keeps your evaluation log and models; --purge-user-data removes yours)"
