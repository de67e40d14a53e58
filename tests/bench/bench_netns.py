"""What the network namespace costs at start (not collected by pytest; run it by hand).

    .venv/bin/python tests/bench/bench_netns.py --repeats 20

Side by side in one run, the two sides interleaved over repeats, medians reported:
- ``netns.enter()`` itself (unshare + loopback up + interface check) in a fresh process, against the
  same call with ``ASCLEPIUS_NETNS=off`` (which returns at once);
- the whole ``asclepius tasks`` process (interpreter start, imports, parser, namespace, output, exit),
  with and without the namespace, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ENTER = (
    "import time; from app.core import netns; t = time.perf_counter(); iso = netns.enter(); "
    "print(time.perf_counter() - t, iso.namespace)"
)


def env(on: bool) -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT)}
    e.pop("ASCLEPIUS_NETNS", None)
    if not on:
        e["ASCLEPIUS_NETNS"] = "off"
    return e


def enter_time(on: bool) -> float:
    out = subprocess.run([sys.executable, "-c", ENTER], capture_output=True, text=True, env=env(on), check=True)
    seconds, namespace = out.stdout.split()
    assert (namespace == "True") is on, f"namespace {namespace} with on={on}: {out.stderr}"
    return float(seconds)


def process_time(on: bool) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "app.cli.main", "tasks"], capture_output=True, env=env(on), check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    sides: dict[str, list[float]] = {"enter on": [], "enter off": [], "tasks on": [], "tasks off": []}
    for i in range(a.repeats):
        order = (True, False) if i % 2 == 0 else (False, True)
        for on in order:
            sides["enter on" if on else "enter off"].append(enter_time(on))
        for on in order:
            sides["tasks on" if on else "tasks off"].append(process_time(on))
    med = {k: statistics.median(v) for k, v in sides.items()}
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, uid {os.geteuid()}, ")
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {a.repeats} repeats, interleaved")
    print(f"netns.enter():            median {med['enter on'] * 1e3:.2f} ms (off: {med['enter off'] * 1e3:.3f} ms)")
    print(
        f"`asclepius tasks` process: median {med['tasks on']:.3f} s with the namespace, "
        f"{med['tasks off']:.3f} s without; ratio {med['tasks on'] / med['tasks off']:.3f}"
    )


if __name__ == "__main__":
    main()
