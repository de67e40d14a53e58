"""The build's pinned, hashed inputs: ``installer/build-requirements.lock``.

    python -m installer.lock            # rewrite the lock (asks the package index; a maintainer's step)
    python -m installer.lock --check    # exit 1 when pyproject.toml's dependencies are not all in the lock

The lock holds every wheel the build venv installs (the app's run-time dependencies and PyInstaller, for
CPython 3.11 on x86-64 Linux with glibc 2.31, the Debian 11 build root) and the llama-cpp-python sdist that
``build_llama.sh`` compiles, each pinned with ``==`` and its sha256, for
``pip install --require-hashes --no-deps -r installer/build-requirements.lock``. Versions are those of the
development venv where it has the package (what the tests ran against), else pip's choice.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "build-requirements.lock"
SDIST = "llama-cpp-python"
BUILD_TOOLS = ("pyinstaller>=6.10", "setuptools", "wheel")
# llama-cpp-python is built from its sdist (build_llama.sh), so pip resolves its run-time dependencies alone.
SDIST_DEPENDS = ("typing-extensions>=4.5.0", "numpy>=1.20.0", "diskcache>=5.6.1", "jinja2>=2.11.3")
GLIBC_MINOR = 31
"""The build root's glibc (Debian 11): wheels for it or older (pip does not widen an explicit --platform)."""
PLATFORM = (
    *(arg for minor in range(GLIBC_MINOR, 4, -1) for arg in ("--platform", f"manylinux_2_{minor}_x86_64")),
    *("--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64"),
    *("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"),
    *("--platform", "any"),
)


def requirements(pyproject: Path = HERE.parent / "pyproject.toml") -> list[str]:
    """The build venv's top-level requirements: the app's dependencies (less the sdist) and the build tools."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [d for d in deps if not d.lower().startswith(SDIST)] + list(SDIST_DEPENDS) + list(BUILD_TOOLS)


def pins_of_this_venv(names: list[str]) -> list[str]:
    """``name==version`` of each installed distribution among ``names`` whose wheel also runs in the build
    root (constraints for the resolver); one built for a newer glibc (PySide6 6.11: manylinux_2_34) is left to
    pip, which picks the newest release the build root can run."""
    pins = []
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        tags = " ".join(line for line in (dist.read_text("WHEEL") or "").splitlines() if line.startswith("Tag:"))
        needs = [int(m) for m in re.findall(r"manylinux_2_(\d+)", tags)]
        if not needs or min(needs) <= GLIBC_MINOR:
            pins.append(f"{dist.metadata['Name']}=={dist.version}")
    return pins


def resolve_argv(requirements_file: Path, constraints: Path, report: Path) -> list[str]:
    """pip resolving for the build root's platform without installing, its choices written to ``report``."""
    return [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--only-binary", ":all:", *PLATFORM, "--target", str(report.parent / "t"),
        "-r", str(requirements_file), "-c", str(constraints), "--report", str(report),
    ]  # fmt: skip


def lock_text(report: dict, sdist_line: str) -> str:
    """The lock file from a pip installation report (``--report``) and the sdist's line."""
    lines = []
    for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise ValueError(f"{name} {version}: the index gave no sha256")
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{hashes['sha256']}")
    head = (
        "# installer/build-requirements.lock: written by `python -m installer.lock`; do not edit by hand.\n"
        "# pip install --require-hashes --no-deps -r installer/build-requirements.lock (the sdist line is\n"
        "# build_llama.sh's: pip download --no-binary :all: --require-hashes)\n"
    )
    return head + sdist_line + "\n" + "\n".join(lines) + "\n"


def sdist_line(lock: Path = LOCK) -> str:
    """The current lock's llama-cpp-python line (its hash checked by hand when the version changes)."""
    text = lock.read_text(encoding="utf-8") if lock.is_file() else ""
    start = text.find(f"{SDIST}==")
    if start < 0:
        raise ValueError(f"{lock} has no {SDIST}== line: add it with the sdist's sha256")
    end = text.index("\n", text.index("--hash=", start))
    return text[start:end]


def locked_names(text: str) -> set[str]:
    return {line.split("==")[0].strip().lower().replace("_", "-") for line in text.splitlines() if "==" in line}


def check(lock: Path = LOCK) -> list[str]:
    """Top-level requirements the lock does not pin."""
    names = locked_names(lock.read_text(encoding="utf-8"))
    wanted = [r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip() for r in requirements()]
    return [w for w in [*wanted, SDIST] if w.lower().replace("_", "-") not in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m installer.lock", description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that every requirement is locked")
    args = p.parse_args(argv)
    if args.check:
        missing = check()
        print(f"lock: not pinned: {', '.join(missing)}" if missing else "lock: every requirement is pinned")
        return 1 if missing else 0
    with tempfile.TemporaryDirectory() as tmp:
        reqs, cons, report = Path(tmp) / "req.txt", Path(tmp) / "cons.txt", Path(tmp) / "report.json"
        reqs.write_text("\n".join(requirements()) + "\n")
        installed = [d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"]]
        cons.write_text("\n".join(p for p in pins_of_this_venv(installed) if not p.startswith(SDIST)) + "\n")
        # The machine's pip configuration (local wheel dirs, its own constraints) is not the build's: PyPI only.
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        subprocess.run(resolve_argv(reqs, cons, report), check=True, env=env)
        LOCK.write_text(lock_text(json.loads(report.read_text()), sdist_line()), encoding="utf-8")
    print(f"lock: wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
