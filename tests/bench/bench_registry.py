"""Model manager benchmarks (not collected by pytest; run by hand):

    .venv/bin/python tests/bench/bench_registry.py                 # the demo GGUF (~250 MB), 5 repeats
    .venv/bin/python tests/bench/bench_registry.py --model FILE.gguf --repeats 3 --entries 500

1. Copy into the library, side by side on the same source, the order of the sides rotated over the repeats
   (medians): a plain copy (``shutil.copyfile``), the previous round's one-pass copy (hashed while copying) and
   ``copy_into_library`` (one pass since #28: hash while copying, write-behind, fsync; it used to read the copy
   back and hash it again). Reports MB/s of each and the time ratios: what the durable copy costs.
2. ``Registry.list()`` over ``--entries`` entries (each ``stat``-ed for its status), against the same list
   read without status (the registry file parsed only): the cost of showing ok / missing / changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import Paths  # noqa: E402
from app.core.models import Registry, copy_into_library, parse_registry  # noqa: E402


def hash_while_copying(src: Path, dst: Path, chunk: int = 8 << 20) -> str:
    """The previous round's library copy: one pass, hashed while copying, no fsync, no read-back."""
    h = hashlib.sha256()
    with src.open("rb") as fh, dst.open("wb") as out:
        while block := fh.read(chunk):
            out.write(block)
            h.update(block)
    return h.hexdigest()


def bench_copy(src: Path, repeats: int, work: Path) -> dict[str, float]:
    size = src.stat().st_size
    times: dict[str, list[float]] = {"plain": [], "one_pass": [], "checked": []}
    order = list(times)
    for i in range(repeats):
        for name in order[i % 3 :] + order[: i % 3]:  # rotate which side goes first
            lib = work / f"lib-{name}-{i}"
            lib.mkdir()
            t0 = time.perf_counter()
            if name == "plain":
                shutil.copyfile(src, lib / src.name)
            elif name == "one_pass":
                hash_while_copying(src, lib / src.name)
            else:
                copy_into_library(lib, src)
            times[name].append(time.perf_counter() - t0)
            shutil.rmtree(lib)
    mb = size / 1e6
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "size_mb": round(mb, 1),
        **{f"{k}_mb_s": round(mb / t, 1) for k, t in med.items()},
        "time_ratio_checked_to_one_pass": round(med["checked"] / med["one_pass"], 2),
        "time_ratio_checked_to_plain": round(med["checked"] / med["plain"], 2),
    }


def bench_list(src: Path, entries: int, repeats: int, work: Path) -> dict[str, float]:
    paths = Paths(work / "data", work / "cfg")
    reg = Registry(paths)
    info = reg.import_model(src)
    base = reg._entries[info.path]
    for i in range(entries - 1):  # the same file's entry under other (missing) paths: stat still runs
        e = dict(base, path=str(work / "m" / f"model-{i}.gguf"))
        reg._entries[e["path"]] = e
    reg._save()
    with_status: list[float] = []
    parse_only: list[float] = []
    for i in range(repeats):
        sides = [("status", with_status), ("parse", parse_only)]
        for name, times in sides if i % 2 == 0 else sides[::-1]:
            t0 = time.perf_counter()
            if name == "status":
                n = len(Registry(paths).list())
            else:
                n = len(parse_registry(json.loads(paths.registry_file.read_bytes()), paths.models_dir)[0])
            times.append(time.perf_counter() - t0)
            assert n == entries
    s, p = statistics.median(with_status), statistics.median(parse_only)
    return {"entries": entries, "list_ms": round(s * 1e3, 2), "parse_only_ms": round(p * 1e3, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a GGUF to copy (default: the embedded demo model)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--entries", type=int, default=200)
    args = ap.parse_args()
    src = args.model or Path(Registry(Paths.default()).ensure_demo().path)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("copy:", json.dumps(bench_copy(src, args.repeats, work)))
        print("list:", json.dumps(bench_list(src, args.entries, args.repeats, work / "list")))


if __name__ == "__main__":
    main()
