#!/usr/bin/env bash
# Download the pinned CPython source (installer/buildroot/python.pins) into DIR and check it: the .dsc and the
# tarball against their pinned sha256, and the tarball against the sha256 the .dsc lists.
#
#   installer/buildroot/fetch_python.sh DIR
set -euo pipefail
DIR="${1:?usage: fetch_python.sh DIR}"
# shellcheck source=python.pins
. "$(cd "$(dirname "$0")" && pwd)/python.pins"
mkdir -p "$DIR"

fetch() {  # URL SHA256: download once, then always check
    local file="$DIR/${1##*/}"
    if [ ! -f "$file" ]; then
        curl -fsSL --retry 3 -o "$file.part" "$1"
        mv "$file.part" "$file"
    fi
    echo "$2  $file" | sha256sum -c --quiet - || { echo "fetch_python: $file does not match its pinned sha256" >&2; exit 1; }
}
fetch "$PYTHON_DSC_URL" "$PYTHON_DSC_SHA256"
fetch "$PYTHON_ORIG_URL" "$PYTHON_ORIG_SHA256"
orig="${PYTHON_ORIG_URL##*/}"
# The .dsc's Checksums-Sha256 section: " <sha256> <size> <file>".
listed="$(sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$DIR/${PYTHON_DSC_URL##*/}" | awk -v f="$orig" '$3 == f {print $1}')"
[ "$listed" = "$PYTHON_ORIG_SHA256" ] || { echo "fetch_python: the .dsc lists ${listed:-no sha256} for $orig" >&2; exit 1; }
echo "fetch_python: $orig verified ($PYTHON_ORIG_SHA256)"
