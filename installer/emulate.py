"""Run the frozen ``asclepius`` under qemu-user with an older CPU model, and keep it emulated.

PyInstaller's Linux bootloader, started as a one-folder program, sets ``LD_LIBRARY_PATH`` to the bundle's
``_internal`` and re-executes itself (``execvp``) so that the loader sees it. Under ``qemu-x86_64`` that
``execvp`` starts the program natively: everything after it ran on the host's CPU, so nothing was tested.
The bootloader skips the restart when its environment says it already happened (PyInstaller 6,
``bootloader/src/pyi_main.c``): ``_PYI_ARCHIVE_FILE`` naming its own archive (in a one-folder build, the
executable, all links resolved, as the bootloader resolves ``/proc/self/exe``) and ``_PYI_PARENT_PROCESS_LEVEL``
= -1 (``PYI_PROCESS_LEVEL_PARENT_NEEDS_RESTART``), with ``LD_LIBRARY_PATH`` as the restart would have set it.
They are given to the emulated program only (qemu's ``-E``), not to qemu itself, which must not load the
bundle's libraries.

    python -m installer.emulate --cpu Nehalem PATH/TO/asclepius-desk/asclepius -- selftest
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# pyi_main.h, enum PYI_PROCESS_LEVEL: the level of a one-folder program after its restart's parent.
PYI_PROCESS_LEVEL_PARENT_NEEDS_RESTART = -1


def bootloader_env(executable: Path) -> dict[str, str]:
    """The variables that tell the bootloader of ``executable`` (a one-folder bundle's program) that it has
    already restarted itself."""
    exe = executable.resolve()
    return {
        "_PYI_ARCHIVE_FILE": str(exe),
        "_PYI_PARENT_PROCESS_LEVEL": str(PYI_PROCESS_LEVEL_PARENT_NEEDS_RESTART),
        "LD_LIBRARY_PATH": str(exe.parent / "_internal"),
    }


def emulated_argv(qemu: str, cpu: str, executable: Path, args: list[str]) -> list[str]:
    """``qemu-x86_64 -cpu CPU -E ... EXECUTABLE ARGS``: the program and everything it loads, emulated."""
    argv = [qemu, "-cpu", cpu]
    for name, value in bootloader_env(executable).items():
        argv += ["-E", f"{name}={value}"]
    return [*argv, str(executable.resolve()), *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installer.emulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", required=True, help="a qemu CPU model: Haswell, Nehalem, Penryn, core2duo ...")
    parser.add_argument("--qemu", default=shutil.which("qemu-x86_64") or "qemu-x86_64")
    parser.add_argument("executable", type=Path, help="the bundle's program (asclepius-desk/asclepius)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments, after --")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    cmd = emulated_argv(ns.qemu, ns.cpu, ns.executable, args)
    os.execv(cmd[0], cmd)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
