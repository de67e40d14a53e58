"""The bad-input table (tests/reliability/cases.py) run as real subprocesses against a code tree, counted.

    .venv/bin/python tests/bench/bench_bad_inputs.py                    # this tree
    .venv/bin/python tests/bench/bench_bad_inputs.py --root /tmp/main   # another checkout (e.g. before a fix)

Each input runs as ``python -c 'from app.cli.main import main; ...'`` with the tree's code on PYTHONPATH,
in a fresh ASCLEPIUS_HOME that shares one prepared demo model, with a 60 s limit. Outcomes:
refused (the expected code and message), exit-1 (an "unexpected" internal error), accepted (exit 0),
crash (a signal, an abort, or a Python traceback), hang (past the limit), other (another code or message).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))

from tests.reliability.test_bad_inputs import (  # noqa: E402
    CASES,
    NOTE_TEXT,
    STEPS,
    _argv,
)

CLI = "import sys\nfrom app.cli.main import main\nsys.exit(main(sys.argv[1:]))"


def classify(case, rc: int | None, out: str) -> str:
    if rc is None:
        return "hang"
    if rc < 0 or rc >= 128 or "Traceback" in out:
        return "crash"
    if rc == 1:
        return "exit-1"
    if rc == 0:
        return "accepted"
    if rc == case.expect and case.fragment.lower() in out.lower():
        return "refused"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=HERE, help="code tree under test")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    root = args.root.resolve()
    counts: collections.Counter[str] = collections.Counter()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d) / "base-home"
        env0 = {**os.environ, "PYTHONPATH": str(root), "ASCLEPIUS_HOME": str(base)}
        subprocess.run([sys.executable, "-c", CLI, "models", "list"], env=env0, cwd=root, check=True,
                       capture_output=True)  # fmt: skip
        for case in CASES:
            tmp = Path(d) / case.id
            tmp.mkdir()
            (tmp / "note.txt").write_text(NOTE_TEXT, encoding="utf-8")
            home = tmp / "home" / "data"
            home.mkdir(parents=True)
            (home / "models").symlink_to(base / "data" / "models")
            shutil.copyfile(base / "data" / "models.json", home / "models.json")
            for step in case.setup:
                STEPS[step[0]](tmp, *step[1:])
            cmd = [sys.executable, "-c", CLI, *_argv(case, tmp)]
            if case.drop_root and os.geteuid() == 0:
                cmd = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", 'exec "$0" "$@"', *cmd]
            env = {**env0, "ASCLEPIUS_HOME": str(tmp / "home")}
            try:
                p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, timeout=args.timeout, check=False)
                rc, out = p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
            except subprocess.TimeoutExpired:
                rc, out = None, ""
            kind = classify(case, rc, out)
            counts[kind] += 1
            if kind != "refused":
                last = out.strip().splitlines()[-1][:160] if out.strip() else ""
                print(f"{case.id}: {kind} (exit {rc}) {last}", flush=True)
    print(f"{len(CASES)} inputs against {root}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
