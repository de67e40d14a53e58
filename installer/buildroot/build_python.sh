#!/usr/bin/env bash
# Inside the build root: build CPython from the verified tarball into $PYTHON_PREFIX (python.pins).
#
#   build_python.sh TARBALL PINS
#
# --enable-shared: PyInstaller bundles libpython3.11.so. --without-readline: GNU readline is GPL-3 and must not
# be in an Apache-2.0 bundle (the root has no libreadline-dev either, so the module could not be built by
# accident). The modules the app needs (sqlite3, ssl, ctypes, lzma, bz2, zlib, uuid) are checked at the end.
set -euo pipefail
TARBALL="${1:?usage: build_python.sh TARBALL PINS}"
# shellcheck disable=SC1090
. "${2:?usage: build_python.sh TARBALL PINS}"
PY="$PYTHON_PREFIX/bin/python3.11"
if [ ! -x "$PY" ]; then
    SRC=/build/python-src
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xzf "$TARBALL" -C "$SRC" --strip-components=1
    cd "$SRC"
    ./configure --prefix="$PYTHON_PREFIX" --enable-shared --without-readline --with-ensurepip=install \
        LDFLAGS="-Wl,-rpath,$PYTHON_PREFIX/lib" >/build/python-configure.log
    make -j"${MAKE_JOBS:-2}" >/build/python-make.log 2>&1
    make install >/build/python-install.log 2>&1
fi
"$PY" - <<'PY'
import importlib.util
import sys

needed = ["sqlite3", "ssl", "ctypes", "lzma", "bz2", "zlib", "uuid", "_uuid", "_sqlite3", "_ssl", "_ctypes"]
missing = [m for m in needed if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"build_python: modules missing from the build: {missing}")
if importlib.util.find_spec("readline") is not None:
    sys.exit("build_python: the readline module was built (GPL-3): it must not be")
import ssl

print(f"build_python: Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, no readline")
PY
