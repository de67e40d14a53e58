#!/usr/bin/env bash
# Build a portable llama-cpp-python wheel (CPU backends loaded at run time, one per x86-64 level).
#
# Output: $CACHE/wheels/llama_cpp_python-<ver>-*.whl and $CACHE/wheels/llama-build.json (flags, commit,
# variants), used by the SBOM. Cached: does nothing when the wheel exists (delete it to rebuild).
#
# Environment:
#   ASCLEPIUS_INSTALLER_CACHE  cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/asclepius-desk-installer; never inside the repo)
#   LLAMA_CPU_VARIANTS         space-separated ggml CPU variants to build, or "all" for upstream's full
#                              x86 list (default: "sse42 haswell skylakex zen4", see installer/README.md)
set -euo pipefail

LLAMA_VERSION="0.3.36"
# The llama.cpp commit vendored in llama-cpp-python 0.3.36 (its CHANGELOG: "update llama.cpp to ...").
LLAMA_CPP_COMMIT="0c1e57098"
# PyPI's sdist and the sha256 PyPI's simple index lists for it.
LLAMA_SDIST_URL="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-0.3.36.tar.gz"
LLAMA_SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
CACHE="${ASCLEPIUS_INSTALLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asclepius-desk-installer}"
# The Python that builds the wheel (build_bundle.sh passes its own; the Debian 11 root has no python3).
PY="${PYTHON:-python3}"
VARIANTS="${LLAMA_CPU_VARIANTS:-sse42 haswell skylakex zen4}"
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF"

WHEELS="$CACHE/wheels"
if compgen -G "$WHEELS/llama_cpp_python-${LLAMA_VERSION}-*.whl" >/dev/null \
    && [ -f "$WHEELS/llama-build.json" ]; then
    [ -f "$WHEELS/llama.cpp-LICENSE" ] || cp "$CACHE/build/llama_cpp_python-${LLAMA_VERSION}/vendor/llama.cpp/LICENSE" \
        "$WHEELS/llama.cpp-LICENSE"
    echo "build_llama: cached wheel in $WHEELS"
    exit 0
fi

mkdir -p "$CACHE/src" "$WHEELS"
SDIST="$CACHE/src/llama_cpp_python-${LLAMA_VERSION}.tar.gz"
if [ ! -f "$SDIST" ]; then
    # The file itself, not `pip download --no-binary :all:`, which also builds every build dependency (cmake
    # included) from source just to read the metadata. pip's CA setting (PIP_CERT) is curl's too.
    curl -fsSL --retry 3 ${PIP_CERT:+--cacert "$PIP_CERT"} -o "$SDIST.part" "$LLAMA_SDIST_URL"
    mv "$SDIST.part" "$SDIST"
fi
echo "$LLAMA_SDIST_SHA256  $SDIST" | sha256sum -c --quiet - \
    || { echo "build_llama: $SDIST does not match its pinned sha256 (delete it to download again)" >&2; exit 1; }

# The sdist must be the one installer/build-requirements.lock pins, whether just downloaded or cached.
WANT="$(sed -n "/^llama-cpp-python==${LLAMA_VERSION} /{n;s/.*--hash=sha256://p}" "$(dirname "$0")/build-requirements.lock")"
echo "${WANT:-missing}  $SDIST" | sha256sum --quiet -c - || { echo "build_llama: $SDIST is not the locked sdist" >&2; exit 1; }

SRC="$CACHE/build/llama_cpp_python-${LLAMA_VERSION}"
rm -rf "$SRC"
mkdir -p "$CACHE/build"
tar -xzf "$SDIST" -C "$CACHE/build"

GGML_SRC="$SRC/vendor/llama.cpp/ggml/src/CMakeLists.txt"
if [ "$VARIANTS" != "all" ]; then
    # Keep only the chosen x86 variants: each one is a full compile of ggml-cpu.
    "$PY" - "$GGML_SRC" "$VARIANTS" <<'PY'
import re
import sys

path, keep = sys.argv[1], set(sys.argv[2].split())
text = open(path, encoding="utf-8").read()
start = text.index('if (GGML_SYSTEM_ARCH STREQUAL "x86")', text.index("if (GGML_CPU_ALL_VARIANTS)"))
end = text.index('elseif(GGML_SYSTEM_ARCH STREQUAL "ARM")', start)
block = text[start:end]
found = set(re.findall(r"ggml_add_cpu_backend_variant\((\w+)", block))
missing = keep - found
if missing:
    sys.exit(f"unknown ggml CPU variants: {sorted(missing)}; known: {sorted(found)}")
lines = [
    ln for ln in block.splitlines(keepends=True)
    if "ggml_add_cpu_backend_variant(" not in ln
    or re.search(r"ggml_add_cpu_backend_variant\((\w+)", ln).group(1) in keep
]
open(path, "w", encoding="utf-8").write(text[:start] + "".join(lines) + text[end:])
PY
    VARIANT_LIST="$VARIANTS"
else
    VARIANT_LIST="$(grep -A30 'if (GGML_SYSTEM_ARCH STREQUAL "x86")' "$GGML_SRC" \
        | grep -o 'ggml_add_cpu_backend_variant(\w*' | sed 's/.*(//' | sort -u | tr '\n' ' ')"
fi

# llama-cpp-python installs the target "ggml-cpu" only; the variants are "ggml-cpu-<tag>": install them too.
"$PY" - "$SRC/CMakeLists.txt" <<'PY'
import sys

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
anchor = "    llama_cpp_python_install_target(ggml-cpu)\n"
extra = (
    "    get_directory_property(_asc_targets DIRECTORY vendor/llama.cpp/ggml/src BUILDSYSTEM_TARGETS)\n"
    "    foreach(_asc_t ${_asc_targets})\n"
    "        if (_asc_t MATCHES \"^ggml-cpu-\")\n"
    "            llama_cpp_python_install_target(${_asc_t})\n"
    "        endif()\n"
    "    endforeach()\n"
)
if anchor not in text:
    sys.exit("llama-cpp-python CMakeLists.txt changed: cannot add the CPU variant install rule")
open(path, "w", encoding="utf-8").write(text.replace(anchor, anchor + extra, 1))
PY

echo "build_llama: variants: $VARIANT_LIST"
START=$(date +%s)
CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
    nice -n 10 "$PY" -m pip wheel --no-deps -w "$WHEELS" \
    --config-settings "build-dir=$CACHE/build/cmake" "$SRC"
END=$(date +%s)

cp "$SRC/vendor/llama.cpp/LICENSE" "$WHEELS/llama.cpp-LICENSE"
"$PY" - "$WHEELS/llama-build.json" <<PY
import json
import sys

json.dump(
    {
        "package": "llama-cpp-python",
        "version": "$LLAMA_VERSION",
        "llama_cpp_commit": "$LLAMA_CPP_COMMIT",
        "cmake_args": "$CMAKE_FLAGS".split(),
        "cpu_variants": "$VARIANT_LIST".split(),
        "build_seconds": $((END - START)),
    },
    open(sys.argv[1], "w"),
    indent=2,
)
PY
echo "build_llama: built in $((END - START)) s"
ls -la "$WHEELS"
