"""What a machine needs to run the bundle, recorded at build time and checked by install.sh before it copies.

The release carries a ``REQUIRES`` file (``key=value`` lines, read by the shell):

    glibc=2.31
    cpu_flags=sse4_2

``glibc`` is the newest ``GLIBC_x.y`` symbol version any ELF file of the bundle refers to (the dynamic loader
refuses a library needing a newer one, so every command would fail); ``cpu_flags`` are the /proc/cpuinfo
flags of the lowest llama.cpp CPU variant built (Qt 6 needs SSE4.2 as well).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REQUIRES_FILE = "REQUIRES"
_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?\x00")
# /proc/cpuinfo flags each ggml x86 CPU variant is compiled for, at the level install.sh checks: the
# instruction-set extension that names the variant (a CPU with it has the older ones it implies).
VARIANT_FLAGS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("sse4_2",),
    "sandybridge": ("sse4_2", "avx"),
    "haswell": ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"),
    "skylakex": ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f"),
    "zen4": ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512vbmi", "avx512_vnni", "avx512_bf16"),
}
# Qt 6 checks at start for the instruction sets it was compiled with and aborts (qFatal: a core dump) without
# them; the PySide6 wheels' Qt needs SSE4.2 (issue #25 saw the abort on a CPU without it).
QT_FLAGS = ("sse4_2",)


@dataclass(frozen=True)
class Requirements:
    """The oldest machine the bundle runs on."""

    glibc: tuple[int, ...] | None
    """Newest glibc symbol version the bundle needs, e.g. (2, 31); None when no ELF file names one."""
    cpu_flags: tuple[str, ...]
    """/proc/cpuinfo flags every one of which the CPU must have."""

    def render(self) -> str:
        """The ``REQUIRES`` file's text."""
        glibc = ".".join(map(str, self.glibc)) if self.glibc else ""
        return f"glibc={glibc}\ncpu_flags={' '.join(self.cpu_flags)}\n"


def glibc_floor(bundle: Path) -> tuple[int, ...] | None:
    """The newest ``GLIBC_x.y[.z]`` version string in any ELF file under ``bundle``.

    A byte scan of each ELF file's contents, not a parse of its version-needs section: a file could name a
    version it does not need (a version definition), which raises the floor, never lowers it. glibc itself
    is not bundled (PyInstaller leaves libc, libm and the loader to the system), so definitions are rare."""
    newest: tuple[int, ...] | None = None
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()):
        with path.open("rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
            data = f.read()
        for m in _GLIBC.finditer(data):
            version = tuple(int(g) for g in m.groups() if g is not None)
            if newest is None or version > newest:
                newest = version
    return newest


def cpu_flags_for(variants: list[str]) -> tuple[str, ...]:
    """Flags of the lowest built llama.cpp variant that the CPU must have, plus Qt's; ValueError for a variant
    this table does not know (add it to ``VARIANT_FLAGS`` rather than ship an unchecked floor)."""
    unknown = [v for v in variants if v not in VARIANT_FLAGS]
    if unknown or not variants:
        raise ValueError(f"unknown llama.cpp CPU variants {unknown or variants}: add them to VARIANT_FLAGS")
    lowest = min(variants, key=lambda v: len(VARIANT_FLAGS[v]))
    return tuple(dict.fromkeys((*QT_FLAGS, *VARIANT_FLAGS[lowest])))


def requirements(bundle: Path, variants: list[str]) -> Requirements:
    return Requirements(glibc=glibc_floor(bundle), cpu_flags=cpu_flags_for(variants))
