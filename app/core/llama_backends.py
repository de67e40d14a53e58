"""Which llama.cpp CPU code runs: one of a portable build's run-time variants, or a built-in backend.

A portable llama-cpp-python build (``installer/build_llama.sh``: ``GGML_BACKEND_DL`` with CPU variants) ships
its CPU code as ``libggml-cpu-<level>.so`` files (sse42, haswell, skylakex, zen4, ...). ggml scores each one
against the running processor and keeps the best, but by default it looks for them only beside the *executable*
(the Python interpreter, or the frozen launcher) and in the *current directory*: the wrong places for a
wheel, and the current directory is one a user does not control. ``ensure_cpu_backend`` loads them from the
directory llama-cpp-python loads its own libraries from (``llama_cpp/lib``, or ``LLAMA_CPP_LIB_PATH``) before
llama.cpp's first use, so the search of the current directory never happens, and only ggml's known variant
names (``KNOWN_VARIANTS``): no other library found there is loaded. A native build (``libggml-cpu.so``
linked in) needs nothing and is reported as ``built-in``.
"""

from __future__ import annotations

import _ctypes  # dlclose: ctypes has no public way to unload a library
import ctypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ModelError

_VARIANT_RE = re.compile(r"libggml-cpu-([A-Za-z0-9_.]+)\.so$")
KNOWN_VARIANTS = frozenset(
    {
        "x64", "sse42", "sandybridge", "ivybridge", "piledriver", "haswell", "skylakex", "cannonlake",
        "cascadelake", "icelake", "cooperlake", "zen4", "alderlake", "sapphirerapids",
    }
)  # fmt: skip
"""ggml's x86-64 CPU variants (``GGML_CPU_ALL_VARIANTS`` in ggml/src/CMakeLists.txt): the only libraries of
``llama_cpp/lib`` this module loads. ggml's own ``ggml_backend_load_all_from_path`` would dlopen (and so run
the initialisers of) every ``libggml-<any backend>-*.so`` there, ``rpc`` (a network backend) included, and
``$GGML_BACKEND_PATH``: a library dropped beside the program must not be loaded (issue #25)."""
_BUILTIN_RE = re.compile(r"libggml-cpu\.so(\.\d+)*$")


@dataclass(frozen=True)
class CpuBackend:
    """The CPU backend llama.cpp uses in this process."""

    kind: str
    """``variant`` (chosen at run time from a portable build), ``built-in`` (native build), or ``none``."""
    name: str
    """The variant's level (``zen4``, ``haswell``, ``sse42`` ...), or ``native`` for a built-in backend."""
    path: str | None
    """The shared library that holds it, when one is mapped."""
    available: tuple[str, ...] = ()
    """Every variant the build ships (empty for a native build)."""

    def describe(self) -> str:
        if self.kind == "variant":
            return f"llama.cpp CPU backend: {self.name} (portable build; variants: {', '.join(self.available)})"
        if self.kind == "built-in":
            return "llama.cpp CPU backend: built-in (a build for one processor family)"
        return "llama.cpp CPU backend: none loaded"


def library_dir() -> Path:
    """The directory llama-cpp-python loads ``libllama.so`` from (it honours ``LLAMA_CPP_LIB_PATH`` too)."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    import llama_cpp

    return Path(llama_cpp.__file__).resolve().parent / "lib"


def variant_names(lib_dir: Path) -> tuple[str, ...]:
    """The CPU variants a portable build ships in ``lib_dir`` (sorted), or ``()`` for a native build."""
    if not lib_dir.is_dir():
        return ()
    names = (_VARIANT_RE.match(p.name) for p in lib_dir.iterdir() if p.is_file())
    return tuple(sorted(m.group(1) for m in names if m and m.group(1) in KNOWN_VARIANTS))


def best_variant(lib_dir: Path, available: tuple[str, ...]) -> Path | None:
    """The known variant library ggml scores highest on this CPU (its ``ggml_backend_score``: 0 = cannot run),
    chosen as ``ggml_backend_load_best`` does, but among ``available`` only (``variant_names``)."""
    best, best_score = None, 0
    for name in available:
        path = lib_dir / f"libggml-cpu-{name}.so"
        try:
            lib = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError:
            continue  # needs something this machine lacks: not a candidate (ggml skips it the same way)
        try:
            score_fn = getattr(lib, "ggml_backend_score", None)
            score = 0
            if score_fn is not None:
                score_fn.restype = ctypes.c_int
                score = int(score_fn())
        finally:
            # Unmapped again (as ggml does), so /proc/self/maps names only the variant that is then loaded.
            _ctypes.dlclose(lib._handle)
        if score > best_score:
            best, best_score = path, score
    return best


def _mapped_cpu_library(maps_text: str) -> tuple[str, str] | None:
    """``(kind, path)`` of the ggml CPU library in a ``/proc/<pid>/maps`` text, if one is mapped."""
    for line in maps_text.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        base = os.path.basename(path)
        if _VARIANT_RE.match(base):
            return "variant", path
        if _BUILTIN_RE.match(base):
            return "built-in", path
    return None


def current_cpu_backend(available: tuple[str, ...] = ()) -> CpuBackend:
    """Which ggml CPU library this process has mapped (read from ``/proc/self/maps``; Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        maps = ""
    found = _mapped_cpu_library(maps)
    if found is None:
        return CpuBackend("none", "", None, available)
    kind, path = found
    if kind == "variant":
        match = _VARIANT_RE.match(os.path.basename(path))
        return CpuBackend("variant", match.group(1) if match else "?", path, available)
    return CpuBackend("built-in", "native", path, available)


def ensure_cpu_backend() -> CpuBackend:
    """Load the best CPU variant of a portable build (once); a no-op for a native build.

    Raises ModelError when the build ships variants but none runs on this processor (the oldest one needs
    SSE4.2), so a user gets one clear line rather than llama.cpp's "no backends are loaded".
    """
    from app.core.llama_adapter import shared_library  # loads libllama.so and, through it, libggml.so.0

    lib_dir = library_dir()
    available = variant_names(lib_dir)
    if not available:
        return current_cpu_backend()
    # The symbols must come from the libggml that libllama uses. The wheel (and the bundle) hold copies,
    # not links, of libggml.so / .so.0: dlopen of another copy's path maps a second ggml with its own,
    # empty backend registry. dlsym through libllama's handle searches libllama's own dependencies.
    ggml = shared_library()
    ggml.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    if not ggml.ggml_backend_reg_by_name(b"CPU"):
        best = best_variant(lib_dir, available)
        if best is not None:
            ggml.ggml_backend_load(os.fsencode(best))
    if not ggml.ggml_backend_reg_by_name(b"CPU"):
        raise ModelError(
            f"no llama.cpp CPU backend in {lib_dir} runs on this processor (variants: {', '.join(available)}; "
            "the oldest needs an x86-64 CPU with SSE4.2, 2008 or later)"
        )
    return current_cpu_backend(available)
