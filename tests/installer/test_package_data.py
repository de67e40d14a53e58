"""The project's wheel (what the offline wheelhouse installs) carries the data files its commands read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "app", "resources", "quantize", "training")


def test_the_wheel_holds_the_training_recipes_and_configs(tmp_path):
    # Built from a copy, so setuptools' build/ and *.egg-info never land in the working tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    env = {**os.environ, "PIP_CONFIG_FILE": "/dev/null"}
    r = subprocess.run([*cmd, "-w", str(out), str(src)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = out.glob("asclepius_desk-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("training/recipes", "training/configs"):
        expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).glob("*.yaml")}
        assert expected, f"no YAML in {folder}"
        assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"
    assert "app/store/migrations/env.py" in names  # the package data that was already declared
