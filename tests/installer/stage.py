"""A staged release around a stand-in bundle, for testing install.sh/uninstall.sh's own logic (the real
bundle: test_bundle.py)."""

from __future__ import annotations

from pathlib import Path

from installer import package
from installer.floor import Requirements

# What the stand-in asks of the machine: nothing, unless a test says otherwise.
NO_FLOOR = Requirements(glibc=None, cpu_flags=())


def stage(tmp_path: Path, version: str, requires: Requirements = NO_FLOOR) -> Path:
    """A staged release dir whose 'bundle' is a shell script standing in for the frozen executable."""
    bundle = tmp_path / "bundle"
    if not bundle.exists():
        bundle.mkdir(parents=True)
        exe = bundle / "asclepius"
        exe.write_text('#!/bin/sh\necho "stand-in $*"\n')
        exe.chmod(0o755)
        (bundle / "_internal").mkdir()
        (bundle / "_internal" / "lib.so").write_bytes(b"a library")
        (bundle / "_internal" / "link.so").symlink_to("lib.so")
    stage_dir = tmp_path / f"stage-{version}"
    package.stage(bundle, stage_dir, version, None, "verify", requires=requires)
    return stage_dir


def env(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **extra}
