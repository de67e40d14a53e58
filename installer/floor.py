"""What a machine needs to run the bundle, recorded at build time and checked by install.sh before it copies.

The release carries a ``REQUIRES`` file (``key=value`` lines, read by the shell):

    glibc=2.31
    cpu_flags=sse4_2

``glibc`` is the newest ``GLIBC_x.y`` symbol version any ELF file of the bundle refers to (the dynamic loader
refuses a library needing a newer one, so every command would fail); ``cpu_flags`` are the /proc/cpuinfo
flags of the lowest llama.cpp CPU variant built (Qt 6 needs SSE4.2 as well).
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import re
import sys
from collections.abc import Callable
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
# them: "This Qt build requires the following features: sse4.2 popcnt" under `qemu-x86_64 -cpu Penryn`, and
# SIGILL before that message under `-cpu core2duo` (issue #25 saw the abort on a CPU without SSE4.2).
QT_FLAGS = ("sse4_2", "popcnt")
# Where the CPUID instruction reports each flag above: (leaf, subleaf, register 0-3 = eax/ebx/ecx/edx, bit),
# from Intel's SDM vol. 2A, CPUID. The frozen program asks the processor itself, as Qt and ggml do, rather
# than /proc/cpuinfo, which qemu-user passes through from the host (so an emulated CPU would look capable).
# For the AVX family this is the processor's support only, not whether the kernel enabled the registers.
CPUID_BITS: dict[str, tuple[int, int, int, int]] = {
    "sse4_2": (1, 0, 2, 20),
    "popcnt": (1, 0, 2, 23),
    "fma": (1, 0, 2, 12),
    "avx": (1, 0, 2, 28),
    "f16c": (1, 0, 2, 29),
    "avx2": (7, 0, 1, 5),
    "bmi2": (7, 0, 1, 8),
    "avx512f": (7, 0, 1, 16),
    "avx512vbmi": (7, 0, 2, 1),
    "avx512_vnni": (7, 0, 2, 11),
    "avx512_bf16": (7, 1, 0, 5),
}
# x86-64 machine code for `void cpuid(uint32 leaf, uint32 subleaf, uint32 out[4])` (System V ABI):
# push rbx; mov r8,rdx; mov eax,edi; mov ecx,esi; cpuid; mov [r8],eax; mov [r8+4],ebx; mov [r8+8],ecx;
# mov [r8+12],edx; pop rbx; ret
_CPUID_CODE = bytes.fromhex("534989d089f889f10fa241890041895804418948084189500c5bc3")
Cpuid = Callable[[int, int], "tuple[int, int, int, int] | None"]


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
        version = glibc_floor_of(path)
        if version is not None and (newest is None or version > newest):
            newest = version
    return newest


def glibc_floor_of(path: Path) -> tuple[int, ...] | None:
    """The newest ``GLIBC_x.y[.z]`` string in one file, or None (also for a file that is not ELF)."""
    with path.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        data = f.read()
    found = [tuple(int(g) for g in m.groups() if g is not None) for m in _GLIBC.finditer(data)]
    return max(found, default=None)


def cpu_flags_for(variants: list[str]) -> tuple[str, ...]:
    """Flags of the lowest built llama.cpp variant that the CPU must have, plus Qt's; ValueError for a variant
    this table does not know (add it to ``VARIANT_FLAGS`` rather than ship an unchecked floor)."""
    unknown = [v for v in variants if v not in VARIANT_FLAGS]
    if unknown or not variants:
        raise ValueError(f"unknown llama.cpp CPU variants {unknown or variants}: add them to VARIANT_FLAGS")
    lowest = min(variants, key=lambda v: len(VARIANT_FLAGS[v]))
    return tuple(dict.fromkeys((*QT_FLAGS, *VARIANT_FLAGS[lowest])))


def cpuid(leaf: int, subleaf: int = 0) -> tuple[int, int, int, int] | None:
    """``(eax, ebx, ecx, edx)`` of the CPUID instruction, or None where it cannot be run from Python (not x86-64,
    or the system refuses an executable page): the caller then falls back to /proc/cpuinfo."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = mmap.PAGESIZE
    page = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if page is None or page == ctypes.c_void_p(-1).value:
        return None
    try:
        ctypes.memmove(page, _CPUID_CODE, len(_CPUID_CODE))
        # Written, then made executable and read-only: never writable and executable at once (W^X policies).
        if libc.mprotect(page, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            return None
        out = (ctypes.c_uint32 * 4)()
        run = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(page)
        run(leaf, subleaf, out)
        return (out[0], out[1], out[2], out[3])
    finally:
        libc.munmap(page, size)


def cpu_has(flags: tuple[str, ...], read: Cpuid) -> dict[str, bool] | None:
    """Which of ``flags`` (names from ``CPUID_BITS``) this processor has, asked through CPUID; None when CPUID
    cannot be run. A leaf above the processor's highest one counts as all bits clear."""
    top = read(0, 0)
    if top is None:
        return None
    leaf7 = read(7, 0) if top[0] >= 7 else None
    regs: dict[tuple[int, int], tuple[int, int, int, int] | None] = {(1, 0): read(1, 0), (7, 0): leaf7}
    regs[(7, 1)] = read(7, 1) if leaf7 is not None and leaf7[0] >= 1 else None
    have = {}
    for flag in flags:
        leaf, sub, reg, bit = CPUID_BITS[flag]
        values = regs.get((leaf, sub))
        have[flag] = values is not None and bool(values[reg] >> bit & 1)
    return have


def cpuinfo_flags(text: str) -> set[str]:
    """The ``flags`` of the first processor in a /proc/cpuinfo text."""
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def missing_cpu_flags(
    flags: tuple[str, ...], read: Cpuid | None = None, cpuinfo: Path = Path("/proc/cpuinfo")
) -> list[str]:
    """Those of ``flags`` this processor lacks: CPUID (``read``, default ``cpuid``) first, /proc/cpuinfo where
    CPUID cannot be run, nothing when neither can be read (Qt and llama.cpp then report for themselves)."""
    have = cpu_has(flags, read or cpuid)
    if have is not None:
        return [f for f in flags if not have[f]]
    try:
        listed = cpuinfo_flags(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []
    return [f for f in flags if listed and f not in listed]


def requirements(bundle: Path, variants: list[str]) -> Requirements:
    return Requirements(glibc=glibc_floor(bundle), cpu_flags=cpu_flags_for(variants))


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.31"`` -> ``(2, 31)``; ValueError for anything else."""
    parts = text.strip().split(".")
    if not (2 <= len(parts) <= 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a glibc version: {text!r}")
    return tuple(int(p) for p in parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m installer.floor BUNDLE [--max-glibc 2.31]``: print the bundle's glibc floor; exit 1 when it
    is above ``--max-glibc`` (the Debian 11 build checks its bundle with it), naming the files that need more."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m installer.floor")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--max-glibc", type=parse_version, default=None)
    args = parser.parse_args(argv)
    found = glibc_floor(args.bundle)
    shown = ".".join(map(str, found)) if found else "none"
    if args.max_glibc is not None and found is not None and found > args.max_glibc:
        limit = ".".join(map(str, args.max_glibc))
        files = sorted(p for p in args.bundle.rglob("*") if p.is_file() and not p.is_symlink())
        over = [p for p in files if (glibc_floor_of(p) or ()) > args.max_glibc]
        print(f"glibc floor {shown} is above {limit}: " + ", ".join(str(p) for p in over[:20]), file=sys.stderr)
        return 1
    print(f"glibc floor: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
