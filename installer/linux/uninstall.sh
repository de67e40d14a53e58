#!/usr/bin/env bash
# Remove Asclepius Desk: the program, its launcher, desktop entry and icon, exactly as install.sh recorded
# them in installed-files.txt (a directory is removed only when it is a version directory inside this
# program's own directory; anything else listed is removed only if it is a file or a link).
#
#   uninstall.sh                                    the program only (sudo for a system-wide installation)
#   uninstall.sh --purge-user-data                  the program, then your own data (below)
#   uninstall.sh --purge-user-data --keep-program   your own data only: a user of a system-wide installation
#                                                   runs this, without sudo, before the program is removed
#   uninstall.sh --purge-model-copy [--keep-program]
#                                                   your own copy of the demo model (~242 MB, joined by a
#                                                   version that had no shared copy): removed only when it
#                                                   is byte-identical to the one this installation ships
#
# The Debian package's copy (/opt/asclepius-desk/uninstall.sh) only purges user data: the program itself is
# removed with `sudo apt remove asclepius-desk`.
#
# Without --purge-user-data nothing of any user is touched: the evaluation log, settings, models registry,
# the assembled demo model and the note-state cache (~/.local/share/asclepius-desk, ~/.config/asclepius-desk,
# or ASCLEPIUS_HOME) stay, as do models installed in <program>/models. --purge-user-data removes those two
# directories of the user running it, and only if that user owns them: never another user's log. An
# evaluation log kept elsewhere (Settings: log location) is not removed.
set -euo pipefail
APP_DIR="$(cd "$(dirname "$0")" && pwd)"
APP=asclepius-desk

die() { echo "uninstall.sh: error: $2" >&2; exit "$1"; }

PURGE=0; PROGRAM=1; MODEL_COPY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --purge-user-data) PURGE=1; shift ;;
        --purge-model-copy) MODEL_COPY=1; shift ;;
        --keep-program) PROGRAM=0; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) die 2 "unknown argument: $1 (see --help)" ;;
    esac
done
[ "$PROGRAM" = 1 ] || [ "$PURGE" = 1 ] || [ "$MODEL_COPY" = 1 ] \
    || die 2 "--keep-program goes with --purge-user-data or --purge-model-copy (nothing to do otherwise)"
if [ "$PROGRAM" = 1 ] && [ -f "$APP_DIR/INSTALLED_BY_DPKG" ]; then
    die 2 "this installation belongs to the asclepius-desk Debian package: remove it with 'sudo apt remove asclepius-desk' (your own data: $0 --purge-user-data --keep-program)"
fi

remove_version() {  # a version directory: a direct child of the program's directory, never a link
    case "$1" in ""|*/*|.|..|models|current) return 0 ;; esac
    if [ -d "$APP_DIR/$1" ] && [ ! -L "$APP_DIR/$1" ]; then rm -rf -- "${APP_DIR:?}/$1"; fi
}

remove_program() {
    [ -e "$APP_DIR/current" ] || die 1 "$APP_DIR holds no Asclepius Desk installation"
    [ -w "$APP_DIR" ] || die 4 "cannot remove $APP_DIR: a system-wide installation is removed with sudo (your own data: $0 --purge-user-data --keep-program)"
    local f
    if [ -f "$APP_DIR/installed-files.txt" ]; then
        while IFS= read -r f; do
            [ -n "$f" ] || continue
            if [ "$(dirname "$f")" = "$APP_DIR" ]; then
                remove_version "$(basename "$f")"
            elif [ -f "$f" ] || [ -L "$f" ]; then
                rm -f -- "$f"
            fi
        done < "$APP_DIR/installed-files.txt"
    fi
    remove_version "$(readlink "$APP_DIR/current" 2>/dev/null || true)"  # an install that did not record it
    rm -f -- "$APP_DIR/current" "$APP_DIR/installed-files.txt" "$APP_DIR/uninstall.sh"
    rmdir -- "$APP_DIR" 2>/dev/null || true
    echo "Asclepius Desk removed from $APP_DIR."
    if [ -d "$APP_DIR/models" ]; then echo "Kept: models in $APP_DIR/models."; fi
}

# The app's own locations: app/core/config.py Paths.default (platformdirs on Linux). Keep the two in step;
# tests/installer/test_install_script.py checks that they agree.
user_data_dirs() {
    if [ -n "${ASCLEPIUS_HOME:-}" ]; then
        printf '%s\n' "$ASCLEPIUS_HOME/data" "$ASCLEPIUS_HOME/config"
    else
        printf '%s\n' "${XDG_DATA_HOME:-$HOME/.local/share}/$APP" "${XDG_CONFIG_HOME:-$HOME/.config}/$APP"
    fi
}

purge_user_data() {
    local d me owner refused=0
    me="$(id -u)"
    if [ "$me" = 0 ] && [ -n "${SUDO_USER:-}" ]; then
        echo "note: running as root: this removes root's own data, not $SUDO_USER's (each user runs $0 --purge-user-data --keep-program without sudo)"
    fi
    while IFS= read -r d; do
        if [ -L "$d" ]; then
            echo "Kept: $d is a symbolic link; remove it and what it points to yourself."; refused=1
        elif [ -d "$d" ]; then
            owner="$(stat -c %u "$d")"
            if [ "$owner" = "$me" ]; then
                rm -rf -- "$d" && echo "Removed: $d"
            else
                echo "Kept: $d belongs to uid $owner, not to you (uid $me): each user purges their own data." >&2
                refused=1
            fi
        fi
    done < <(user_data_dirs)
    return "$refused"
}

# The demo model(s) this installation ships read-only (share/models inside the program's version directory).
shipped_models() {
    local d
    for d in "$APP_DIR/current/share/models" "$APP_DIR/share/models"; do
        [ -d "$d" ] && find "$d" -maxdepth 1 -type f -name '*.gguf'
    done
    return 0
}

purge_model_copy() {
    local shipped mine data found=0
    data="$(user_data_dirs | head -n1)"
    while IFS= read -r shipped; do
        [ -n "$shipped" ] || continue
        mine="$data/models/$(basename "$shipped")"
        if [ -f "$mine" ] && [ ! -L "$mine" ] && [ "$(stat -c %u "$mine")" = "$(id -u)" ] && cmp -s "$mine" "$shipped"; then
            rm -f -- "$mine" && echo "Removed: $mine (the installation's shared copy is used instead)"; found=1
        fi
    done < <(shipped_models)
    [ "$found" = 1 ] || echo "No copy of the shipped demo model in $data/models."
}

# Before the program goes: the shipped model is what a copy is compared with.
if [ "$MODEL_COPY" = 1 ] && [ "$PURGE" = 0 ]; then purge_model_copy; fi
if [ "$PROGRAM" = 1 ]; then remove_program; fi
if [ "$PURGE" = 1 ]; then
    purge_user_data || die 1 "some of the data was kept (see above)"
else
    echo "Kept: your evaluation log, settings and models ($(user_data_dirs | paste -sd ' ' -)); uninstall.sh --purge-user-data removes them."
fi
