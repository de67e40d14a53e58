"""Model import at the disk's speed (not collected by pytest; run by hand, as root to drop the page cache):

    .venv/bin/python tests/bench/bench_import.py                    # the demo GGUF (253 MB) and a 4 GB file
    .venv/bin/python tests/bench/bench_import.py --big-gb 0         # the demo file only

Side by side on the same file and disk, the page cache dropped before every side (``/proc/sys/vm/drop_caches``
when writable, else ``posix_fadvise(DONTNEED)`` on every file involved), the order of the sides rotated over the
repeats (medians):

- copy: ``add_model(copy=True)`` (header check, vocabulary-only load, one pass: read, hash, write, fdatasync every
  64 MiB, rename; registry entry) against ``cp SRC DST && sha256sum DST`` and ``cp SRC DST && sync && sha256sum
  DST`` (``cp`` does not wait for the disk; the import does, so a crash never leaves a half model);
- register only: ``add_model(copy=False)`` (header, vocabulary load, sha256) against ``sha256sum SRC``.

The 4 GB file is the demo GGUF followed by pseudo-random bytes (the header's tensors end where the demo's do;
a GGUF may carry trailing bytes): every byte is read, hashed and written as a real model's would be.

Also the part the import used to spend before hashing: ``header.read_gguf`` (the fast reader) against
``gguf.GGUFReader`` on the demo's 262,144-token vocabulary.

Prints the figures and, last, one JSON line: ``{"ratio": <copy import / (cp + sha256sum)>, ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import Paths  # noqa: E402
from app.core.models import Registry, add_model, read_gguf  # noqa: E402


def drop_caches(*files: Path) -> str:
    """Drop the page cache: the whole cache when we may, else each file's pages."""
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches"
    for f in files:
        with contextlib.suppress(OSError):
            fd = os.open(f, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    return "fadvise"


def make_big(demo: Path, out: Path, size: int) -> Path:
    """The demo GGUF followed by pseudo-random bytes up to ``size`` (a fixed seed: the same file each run)."""
    if out.exists() and out.stat().st_size == size:
        return out
    import numpy as np

    rng = np.random.default_rng(0)
    with out.open("wb") as fh:
        shutil.copyfileobj(demo.open("rb"), fh, 8 << 20)
        left = size - demo.stat().st_size
        while left > 0:
            n = min(left, 64 << 20)
            fh.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n
    return out


def timed(fn: Callable[[], object], *files: Path) -> float:
    drop_caches(*files)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def bench_file(src: Path, work: Path, repeats: int) -> dict[str, object]:
    sides: dict[str, list[float]] = {k: [] for k in ("import_copy", "cp_sha", "cp_sync_sha", "import_register", "sha")}
    for i in range(repeats):
        names = list(sides)
        for name in names[i % len(names) :] + names[: i % len(names)]:
            run = work / f"run-{name}-{i}"
            run.mkdir()
            dst = run / src.name
            paths = Paths(run / "data", run / "cfg")
            if name == "import_copy":
                t = timed(lambda p=paths: add_model(Registry(p), src, copy=True), src)
            elif name == "cp_sha":
                t = timed(lambda d=dst: (sh("cp", str(src), str(d)), sh("sha256sum", str(d))), src)
            elif name == "cp_sync_sha":
                t = timed(lambda d=dst: (sh("cp", str(src), str(d)), os.sync(), sh("sha256sum", str(d))), src)
            elif name == "import_register":
                t = timed(lambda p=paths: add_model(Registry(p), src, copy=False), src)
            else:
                t = timed(lambda: sh("sha256sum", str(src)), src)
            sides[name].append(t)
            shutil.rmtree(run)
            os.sync()
    med = {k: statistics.median(v) for k, v in sides.items()}
    mb = src.stat().st_size / 1e6
    return {
        "size_mb": round(mb, 1),
        **{f"{k}_s": round(v, 2) for k, v in med.items()},
        **{f"{k}_mb_s": round(mb / v, 1) for k, v in med.items()},
        "ratio_copy_vs_cp_sha": round(med["import_copy"] / med["cp_sha"], 3),
        "ratio_copy_vs_cp_sync_sha": round(med["import_copy"] / med["cp_sync_sha"], 3),
        "ratio_register_vs_sha": round(med["import_register"] / med["sha"], 3),
    }


def bench_header(demo: Path) -> dict[str, float]:
    from gguf import GGUFReader

    t0 = time.perf_counter()
    read_gguf(demo)
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    GGUFReader(str(demo), "r")
    slow = time.perf_counter() - t0
    return {"read_gguf_s": round(fast, 3), "gguf_reader_s": round(slow, 2), "ratio": round(fast / slow, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a GGUF (default: the embedded demo model)")
    ap.add_argument("--big-gb", type=float, default=4.0, help="size of the large file; 0 skips it")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, help="a folder on the disk to measure (default: a temp dir)")
    args = ap.parse_args()
    demo = args.model or Path(Registry(Paths.default()).ensure_demo().path)
    load = os.getloadavg()[0]
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, load {load:.2f}, {time.strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"# page cache: {drop_caches(demo)}")
    print("header:", json.dumps(bench_header(demo)))
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        results["demo"] = bench_file(demo, work, args.repeats)
        print("demo:", json.dumps(results["demo"]))
        if args.big_gb > 0:
            big = make_big(demo, work / "big.gguf", int(args.big_gb * 1e9))
            results["big"] = bench_file(big, work, max(1, args.repeats - 1))
            print("big:", json.dumps(results["big"]))
    head = results.get("big", results["demo"])
    print(
        json.dumps(
            {
                "ratio": head["ratio_copy_vs_cp_sha"],
                "ratio_register": head["ratio_register_vs_sha"],
                "demo": results["demo"],
                **({"big": results["big"]} if "big" in results else {}),
            }
        )
    )


if __name__ == "__main__":
    main()
