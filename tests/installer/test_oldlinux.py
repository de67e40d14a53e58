"""Fast checks of the older-Linux parts (issue #25): the CPU check the frozen program makes before Qt or
llama.cpp is loaded, the glibc floor check of the Debian 11 build, and the environment that keeps the frozen
program under qemu. The built bundle itself is run by test_emulated.py and test_bullseye_root.py."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from installer import emulate, floor, frozen_entry

ROOT = Path(__file__).resolve().parents[2]
SSE42, POPCNT = 1 << 20, 1 << 23


def fake_cpuid(max_leaf: int, ecx1: int, ebx7: int = 0, calls: list | None = None):
    """A CPUID reader for a made-up processor: leaf 0's highest leaf, leaf 1's ECX, leaf 7's EBX."""

    def read(leaf: int, sub: int) -> tuple[int, int, int, int]:
        if calls is not None:
            calls.append((leaf, sub))
        return {(0, 0): (max_leaf, 0, 0, 0), (1, 0): (0, 0, ecx1, 0), (7, 0): (0, ebx7, 0, 0)}.get(
            (leaf, sub), (0,) * 4
        )

    return read


# -- the processor, asked through CPUID --------------------------------------------------------------------------
def test_every_flag_the_floor_can_require_has_its_cpuid_bit():
    required = set(floor.QT_FLAGS).union(*floor.VARIANT_FLAGS.values())
    assert required <= set(floor.CPUID_BITS)


def test_cpu_has_reads_the_bits_and_skips_leaves_the_processor_lacks():
    nehalem = fake_cpuid(11, SSE42 | POPCNT)
    assert floor.cpu_has(("sse4_2", "popcnt", "avx2"), nehalem) == {"sse4_2": True, "popcnt": True, "avx2": False}
    haswell = fake_cpuid(13, SSE42 | POPCNT | 1 << 28, ebx7=1 << 5 | 1 << 8)
    assert floor.cpu_has(("avx", "avx2", "bmi2", "avx512f"), haswell) == {
        "avx": True,
        "avx2": True,
        "bmi2": True,
        "avx512f": False,
    }
    calls: list = []
    old = fake_cpuid(4, SSE42, ebx7=0xFFFFFFFF, calls=calls)  # leaf 7 above its highest: never read
    assert floor.cpu_has(("avx2",), old) == {"avx2": False}
    assert (7, 0) not in calls


def test_missing_flags_come_from_cpuid_or_else_from_cpuinfo(tmp_path):
    penryn = fake_cpuid(13, 1 << 19)  # SSE4.1 only
    assert floor.missing_cpu_flags(floor.QT_FLAGS, penryn) == ["sse4_2", "popcnt"]
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2\n")
    assert floor.missing_cpu_flags(floor.QT_FLAGS, lambda leaf, sub: None, cpuinfo) == ["popcnt"]
    assert floor.missing_cpu_flags(floor.QT_FLAGS, lambda leaf, sub: None, tmp_path / "absent") == []


@pytest.mark.skipif(platform.machine() != "x86_64", reason="CPUID is x86-64 only")
def test_cpuid_agrees_with_the_kernel_on_this_machine():
    # The machine code itself, run here: the kernel's flags come from the same instruction.
    listed = floor.cpuinfo_flags(Path("/proc/cpuinfo").read_text())
    have = floor.cpu_has(("sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f"), floor.cpuid)
    assert have is not None
    for flag, present in have.items():
        if flag in ("sse4_2", "popcnt", "fma", "f16c", "bmi2") or not present:
            # AVX-family flags may be hidden by the kernel when it does not enable the registers
            assert present == (flag in listed), flag


# -- the frozen program checks it before Qt or llama.cpp ------------------------------------------------------
def _variant_libs(tmp_path: Path, *variants: str) -> Path:
    lib = tmp_path / "llama_cpp" / "lib"
    lib.mkdir(parents=True)
    for v in variants:
        (lib / f"libggml-cpu-{v}.so").write_bytes(b"")
    return tmp_path


def test_cpu_check_names_what_is_missing_and_what_the_bundle_needs(tmp_path):
    internal = _variant_libs(tmp_path, "sse42", "haswell", "zen4")
    asked: list = []

    def lacks_sse42(flags):
        asked.append(flags)
        return ["sse4_2"]

    problem = frozen_entry.check_cpu(internal, lacks_sse42)
    assert asked == [("sse4_2", "popcnt")]
    assert problem == (
        "this processor lacks the instruction set(s) sse4_2; Asclepius Desk needs sse4_2 popcnt "
        "(an x86-64 CPU with SSE4.2: Intel Nehalem (2008), AMD Bulldozer (2011) or newer)"
    )
    assert frozen_entry.check_cpu(internal, lambda flags: []) is None
    # A bundle built with AVX2 variants only needs AVX2; one with no variants, what Qt needs.
    frozen_entry.check_cpu(_variant_libs(tmp_path / "h", "haswell"), asked.append)
    frozen_entry.check_cpu(tmp_path / "none", asked.append)
    assert asked[1] == ("sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2")
    assert asked[2] == floor.QT_FLAGS


OLD_CPU_PROBE = """
import sys
sys.frozen, sys._MEIPASS, sys.argv = True, sys.argv[1], ["asclepius", "--version"]
from installer import floor, frozen_entry
floor.cpuid = lambda leaf, sub=0: {0: (11, 0, 0, 0), 1: (0, 0, 1 << 19, 0)}.get(leaf, (0, 0, 0, 0))  # Penryn
code = frozen_entry.main()
print("loaded:", sorted(m for m in ("PySide6", "llama_cpp", "app.cli.main") if m in sys.modules))
sys.exit(code)
"""


def test_the_frozen_program_refuses_an_old_cpu_before_loading_qt_or_llama(tmp_path):
    # Issue #25: a CPU without SSE4.2 got Qt's abort and a core dump, not the documented error (exit 4).
    internal = _variant_libs(tmp_path, "sse42", "haswell")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", OLD_CPU_PROBE, str(internal)], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 4, r.stdout + r.stderr
    assert r.stderr.startswith("asclepius: error: this processor lacks the instruction set(s) sse4_2 popcnt;")
    assert r.stdout.strip() == "loaded: []"


# -- the glibc floor of the Debian 11 build ------------------------------------------------------------------
def _elf(path: Path, *versions: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF" + b"".join(b"\x00GLIBC_" + v.encode() + b"\x00" for v in versions))


def test_floor_check_fails_a_bundle_that_needs_a_newer_glibc_and_names_the_file(tmp_path, capsys):
    _elf(tmp_path / "b" / "_internal" / "libold.so", "2.17", "2.31")
    assert floor.main([str(tmp_path / "b"), "--max-glibc", "2.31"]) == 0
    assert capsys.readouterr().out == "glibc floor: 2.31\n"
    _elf(tmp_path / "b" / "_internal" / "libnew.so", "2.2.5", "2.34")
    assert floor.main([str(tmp_path / "b"), "--max-glibc", "2.31"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("glibc floor 2.34 is above 2.31: ") and "libnew.so" in err and "libold.so" not in err
    with pytest.raises(ValueError):
        floor.parse_version("2.x")


# -- qemu keeps the frozen program ---------------------------------------------------------------------------
def test_the_bootloader_is_told_it_has_already_restarted(tmp_path):
    bundle = tmp_path / "opt" / "asclepius-desk"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "asclepius").write_bytes(b"\x7fELF")
    link = tmp_path / "current"
    link.symlink_to(bundle)
    argv = emulate.emulated_argv("/usr/bin/qemu-x86_64", "Nehalem", link / "asclepius", ["selftest"])
    exe = str(bundle.resolve() / "asclepius")
    assert argv == [
        "/usr/bin/qemu-x86_64", "-cpu", "Nehalem",
        "-E", f"_PYI_ARCHIVE_FILE={exe}",
        "-E", "_PYI_PARENT_PROCESS_LEVEL=-1",
        "-E", f"LD_LIBRARY_PATH={bundle.resolve() / '_internal'}",
        exe, "selftest",
    ]  # fmt: skip
