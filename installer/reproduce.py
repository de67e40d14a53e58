"""Pack one bundle twice and compare: the archive and the .deb must be byte-identical.

    python -m installer.reproduce --bundle build/installer/dist/asclepius-desk \\
        --llama-build ~/.cache/asclepius-desk-installer/wheels/llama-build.json [--model FILE.gguf]

Runs ``installer.package`` twice (unsigned) into two temporary directories, the second under another umask
and work path, with the same ``SOURCE_DATE_EPOCH``; prints the sha256 of each archive and package, and for
any that differ what differs (``diffoscope`` when installed, else the difference of the two member
listings). Exit 0 when both are identical, 1 when not.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from app.core.hashing import sha256_file
from installer import package


def members(path: Path) -> list[str]:
    """The archive's or package's member listing (modes, owners, sizes, times, names)."""
    argv = ["dpkg-deb", "-c", str(path)] if path.suffix == ".deb" else ["tar", "-tvzf", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()


def differences(a: Path, b: Path) -> list[str]:
    """Nothing when ``a`` and ``b`` are byte-identical; else what differs."""
    if sha256_file(a) == sha256_file(b):
        return []
    if shutil.which("diffoscope"):
        r = subprocess.run(["diffoscope", "--text", "-", str(a), str(b)], capture_output=True, text=True)
        return r.stdout.splitlines()[:200]
    diff = list(difflib.unified_diff(members(a), members(b), str(a), str(b), lineterm="", n=0))
    return diff or ["the member listings agree: the bytes of a member or the compression differ"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m installer.reproduce", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--llama-build", type=Path, required=True)
    p.add_argument("--model", type=Path)
    args = p.parse_args(argv)
    os.environ["SOURCE_DATE_EPOCH"] = str(package.source_date_epoch())
    made = []
    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        for i, umask in enumerate((0o022, 0o002)):
            old = os.umask(umask)
            try:
                run = Path(tmp) / f"run{i}"
                made.append(package.package(args.bundle, args.llama_build, run / "out", args.model, run / "work"))
            except package.PackagingError as exc:
                print(f"reproduce: error: {exc}", file=sys.stderr)
                return 1
            finally:
                os.umask(old)
        same = True
        for key in ("archive", "deb", "sbom"):
            a, b = made[0][key], made[1][key]
            print(f"{a.name}\n  {sha256_file(a)}\n  {sha256_file(b)}")
            diff = differences(a, b)
            same = same and not diff
            print("\n".join(f"  {line}" for line in diff) or "  identical")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
