"""The frozen program itself under qemu-user, with older CPU models, kept in emulation (installer/emulate.py).

Not in `make test`: it needs the built release (ASCLEPIUS_INSTALLER_DIST, as test_bundle.py; `make
installer-test` sets it) and qemu-x86_64 (apt-get install qemu-user); without them every test skips. Each
run has a fresh HOME, `env -i`, and no network (`unshare -n`, when root). What shows the program really was
emulated: the llama.cpp variant selftest reports (sse42 under Nehalem on an AVX-512 host), and the clear
error for a processor the host is not (core2duo).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from installer import emulate

DIST = os.environ.get("ASCLEPIUS_INSTALLER_DIST")
QEMU = shutil.which("qemu-x86_64")
pytestmark = [
    pytest.mark.skipif(not DIST, reason="needs the built release: `make installer-test` sets ASCLEPIUS_INSTALLER_DIST"),
    pytest.mark.skipif(not QEMU, reason="needs qemu-x86_64 (apt-get install qemu-user)"),
]
OLD_CPU_ERROR = "asclepius: error: this processor lacks the instruction set(s) sse4_2 popcnt;"


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    archives = sorted(Path(DIST or "").glob("asclepius-desk-*-linux-x86_64.tar.gz"))
    assert archives, f"no archive in {DIST}"
    out = tmp_path_factory.mktemp("emulated")
    subprocess.run(["tar", "-xzf", str(archives[-1]), "-C", str(out)], check=True)
    (top,) = out.iterdir()
    return top / "asclepius-desk" / "asclepius"


def run(argv: list[str], home: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True, exist_ok=True)
    offline = ["unshare", "-n", "--"] if os.geteuid() == 0 and shutil.which("unshare") else []
    env = ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
    return subprocess.run([*offline, *env, *argv], capture_output=True, text=True, timeout=timeout, cwd=home)


def test_without_the_bootloader_env_the_program_leaves_qemu(program, tmp_path):
    # Positive control: plain qemu-user runs the bootloader emulated, which re-executes itself natively, so an
    # emulated CPU without SSE4.2 "passes" on this host. The environment of installer/emulate.py prevents it.
    if "sse4_2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this host lacks SSE4.2 itself")
    r = run([QEMU or "", "-cpu", "core2duo", str(program), "--version"], tmp_path / "home", 300)
    assert r.returncode == 0 and r.stdout.startswith("asclepius-desk "), r.stdout + r.stderr


@pytest.mark.parametrize("cpu", ["core2duo", "Penryn"])
def test_an_emulated_cpu_without_sse42_gets_the_clear_error(program, tmp_path, cpu):
    r = run(emulate.emulated_argv(QEMU or "", cpu, program, ["--version"]), tmp_path / "home", 600)
    assert r.returncode == 4, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    assert r.stderr.startswith(OLD_CPU_ERROR), r.stderr
    assert "core dumped" not in r.stderr and "Aborted" not in r.stderr


@pytest.mark.timeout(3600)
@pytest.mark.parametrize(("cpu", "variant"), [("Haswell", "haswell"), ("Nehalem", "sse42")])
def test_the_frozen_program_runs_selftest_on_older_cpus(program, tmp_path, cpu, variant):
    home = tmp_path / "home"
    r = run(emulate.emulated_argv(QEMU or "", cpu, program, ["--version"]), home, 600)
    assert r.returncode == 0 and re.match(r"asclepius-desk \d", r.stdout), r.stdout + r.stderr
    start = time.monotonic()
    r = run(emulate.emulated_argv(QEMU or "", cpu, program, ["selftest"]), home, 3300)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    assert "selftest passed" in r.stdout
    assert f"llama.cpp CPU backend: {variant} (portable build" in r.stdout, r.stdout
    print(f"qemu -cpu {cpu}: frozen selftest passed with the {variant} variant in {time.monotonic() - start:.0f} s")
