#!/usr/bin/env bash
# Install Asclepius Desk's training and quantize tools from this directory, with no network.
#
#   ./install.sh VENV_DIR        create (if needed) a venv there and install into it
#
# Every wheel is checked against SHA256SUMS, then pip installs with --no-index --require-hashes, so a
# missing or altered wheel stops the install. Needs Python 3.11 on Linux x86-64 (the wheels' platform).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${1:?usage: ./install.sh VENV_DIR}"
PY="${PYTHON:-python3}"
(cd "$HERE" && sha256sum --quiet --strict -c SHA256SUMS) || {
    echo "install.sh: error: wheels fail their checksums (SHA256SUMS); do not install this copy" >&2; exit 3; }
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
    echo "install.sh: error: these wheels are for Python 3.11; $PY is $("$PY" -V 2>&1)" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --no-index --find-links "$HERE" --require-hashes -r "$HERE/requirements.lock"
echo "installed; try: $VENV/bin/asclepius quantize --help"
