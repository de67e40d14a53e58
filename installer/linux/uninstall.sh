#!/usr/bin/env bash
# Remove Asclepius Desk: the program, its launcher, desktop entry and icon, exactly as install.sh recorded
# them in installed-files.txt. It never touches the user's evaluation log, settings or models
# (~/.local/share/asclepius-desk, ~/.config/asclepius-desk) nor models installed in <prefix>/models.
set -euo pipefail
PREFIX="$(cd "$(dirname "$0")" && pwd)"
[ -e "$PREFIX/current" ] || { echo "uninstall.sh: error: $PREFIX holds no Asclepius Desk installation" >&2; exit 1; }
if [ -f "$PREFIX/installed-files.txt" ]; then
    while IFS= read -r f; do
        [ -n "$f" ] && rm -f -- "$f"
    done < "$PREFIX/installed-files.txt"
fi
for d in "$PREFIX"/*/; do
    d="${d%/}"
    [ -L "$d" ] && continue  # `current`, removed below
    if [ "$(basename "$d")" != models ] && [ -x "$d/asclepius" ]; then rm -rf -- "$d"; fi
done
rm -f -- "$PREFIX/current" "$PREFIX/installed-files.txt" "$PREFIX/uninstall.sh"
rmdir -- "$PREFIX" 2>/dev/null || true
echo "Asclepius Desk removed from $PREFIX."
if [ -d "$PREFIX/models" ]; then echo "Kept: models in $PREFIX/models."; fi
echo "Kept: your evaluation log, settings and models (~/.local/share/asclepius-desk, ~/.config/asclepius-desk)."
