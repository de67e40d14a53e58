"""Benchmark: ``asclepius quantize convert`` against llama.cpp's ``convert_hf_to_gguf.py``, same checkpoint.

    .venv/bin/python tests/bench/bench_convert.py --shape 1b --repeats 3
    .venv/bin/python tests/bench/bench_convert.py --shape 7b --repeats 2 [--drop-caches]

llama.cpp's converter is the copy vendored in the llama-cpp-python 0.3.36 source distribution, run with its
own bundled gguf-py (its script puts ``gguf-py`` first on its path), with the project's Python (torch,
numpy, sentencepiece). Give the unpacked ``vendor/llama.cpp`` with ``--llama-cpp DIR`` or the sdist with
``--sdist FILE.tar.gz`` (``pip download llama-cpp-python==0.3.36 --no-deps --no-binary :all: -d DIR``);
otherwise ``DIR/llama_cpp_python-0.3.36/vendor/llama.cpp`` under ``--dir`` is used. The checkpoint is
``--dir/llama{1b,7b}-hf`` (built by ``make_llama_fixture.py`` when missing).

Both sides run as a new user would run them: ours as ``python -m app.cli.main quantize convert CKPT -o OUT
--outtype f16``, theirs as ``python convert_hf_to_gguf.py CKPT --outfile OUT --outtype f16``, each in its
own child process, whose peak RSS comes from ``os.wait4`` (that child's own ``ru_maxrss``). The sides are
interleaved over repeats (ours first on even repeats, theirs first on odd), each run starts after a
``sync`` (so it does not wait on the previous run's dirty pages), medians are reported, and the
tensors of the first output of each side are compared by name, type, shape and sha256 of their bytes.
Each output is deleted after it is measured, so the disk holds the checkpoint and one output at a time.
``--drop-caches`` (root) syncs and drops the page cache before every run; without it both sides run with
whatever the cache holds (warm for a 1B checkpoint).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.bench_quantize import drop_caches  # noqa: E402

SDIST = "llama_cpp_python-0.3.36"


def llama_cpp_dir(args: argparse.Namespace) -> Path:
    if args.llama_cpp:
        d = Path(args.llama_cpp)
    else:
        d = args.dir / SDIST / "vendor" / "llama.cpp"
        if not d.is_dir() and args.sdist:
            with tarfile.open(args.sdist) as tf:
                tf.extractall(args.dir, filter="data")
    if not (d / "convert_hf_to_gguf.py").is_file() or not (d / "gguf-py" / "gguf").is_dir():
        raise SystemExit(
            f"{d}: no convert_hf_to_gguf.py with gguf-py; pass --llama-cpp DIR or --sdist {SDIST}.tar.gz "
            "(pip download llama-cpp-python==0.3.36 --no-deps --no-binary :all: -d DIR)"
        )
    return d


def run_child(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run one conversion; wall time and the child's own peak RSS (wait4's rusage is that child's only)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out.decode(errors='replace')[-3000:]}")
    return {
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
    }


def tensor_digests(path: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    import gguf

    reader = gguf.GGUFReader(path)
    out = {}
    for t in reader.tensors:
        h = hashlib.sha256(memoryview(t.data.reshape(-1).view("uint8")))
        out[t.name] = (t.tensor_type.name, tuple(int(d) for d in t.shape), h.hexdigest())
    return out


def digests_in_child(path: Path) -> dict:
    """In a child: a forked child's ru_maxrss starts at its parent's, so the parent must never map GBs."""
    cmd = [sys.executable, __file__, "_digests", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {k: (v[0], tuple(v[1]), v[2]) for k, v in json.loads(res.stdout).items()}


def compare(ours: dict, theirs: dict) -> dict:
    names = sorted(set(ours) | set(theirs))
    differ = [n for n in names if ours.get(n) != theirs.get(n)]
    return {"tensors": len(names), "identical": not differ, "differ": differ[:10]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_digests"]:
        print(json.dumps(tensor_digests(Path(argv[1]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=("1b", "7b", "13b"), default="1b")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/asclepius-bench"))
    ap.add_argument("--llama-cpp", type=Path, help="llama.cpp source dir holding convert_hf_to_gguf.py")
    ap.add_argument("--sdist", type=Path, help=f"{SDIST}.tar.gz to unpack under --dir")
    ap.add_argument("--drop-caches", action="store_true", help="sync and drop the page cache before each run")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    lcpp = llama_cpp_dir(args)
    ckpt = args.dir / f"llama{args.shape}-hf"
    if not (ckpt / "model.safetensors.index.json").is_file():
        fixture = [sys.executable, str(ROOT / "tests/bench/make_llama_fixture.py"), "--shape", args.shape]
        subprocess.run([*fixture, "--out", str(ckpt)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "NO_LOCAL_GGUF"}
    env["PYTHONPATH"] = str(ROOT)
    out = {"ours": args.dir / f"bench-ours-{args.shape}.gguf", "theirs": args.dir / f"bench-theirs-{args.shape}.gguf"}
    ours_cmd = [sys.executable, "-m", "app.cli.main", "quantize", "convert", str(ckpt), "-o", str(out["ours"])]
    cmds = {
        "ours": (
            [*ours_cmd, "--outtype", "f16", "--force", "--quiet"],
            ROOT,
        ),
        "theirs": (
            [sys.executable, "convert_hf_to_gguf.py", str(ckpt), "--outfile", str(out["theirs"]), "--outtype", "f16"],
            lcpp,
        ),
    }
    runs: dict[str, list[dict]] = {"ours": [], "theirs": []}
    digests: dict[str, dict] = {}
    for r in range(args.repeats):
        for side in ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours"):
            out[side].unlink(missing_ok=True)
            os.sync()  # no dirty pages left from the previous run for this one to wait on
            cold = drop_caches() if args.drop_caches else False
            res = run_child(*cmds[side], env) | {"cold_cache": cold, "repeat": r}
            print(f"{side:>6} #{r}: {json.dumps(res)}", file=sys.stderr, flush=True)
            runs[side].append(res)
            if side not in digests:
                digests[side] = digests_in_child(out[side])
            out[side].unlink()
    src_gb = sum(f.stat().st_size for f in ckpt.glob("*.safetensors")) / 1e9
    med = {
        side: {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "peak_rss_mb", "user_s", "sys_s")}
        for side, rs in runs.items()
    }
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "shape": args.shape,
        "source_gb": round(src_gb, 2),
        "repeats": args.repeats,
        "drop_caches": args.drop_caches,
        "median": med,
        "ratio_ours_over_theirs": {
            "wall": med["ours"]["wall_s"] / med["theirs"]["wall_s"],
            "peak_rss": med["ours"]["peak_rss_mb"] / med["theirs"]["peak_rss_mb"],
        },
        "tensors": compare(digests["ours"], digests["theirs"]),
        "runs": runs,
    }
    print(json.dumps(results, indent=2))
    (args.dir / f"bench_convert_{args.shape}.json").write_text(json.dumps(results, indent=2))
    m, q = med, results["ratio_ours_over_theirs"]
    print(
        f"\n| {args.shape} ({src_gb:.1f} GB fp16) | wall s | peak RSS MB |\n|---|---:|---:|\n"
        f"| asclepius quantize convert | {m['ours']['wall_s']:.1f} | {m['ours']['peak_rss_mb']:.0f} |\n"
        f"| llama.cpp convert_hf_to_gguf.py | {m['theirs']['wall_s']:.1f} | {m['theirs']['peak_rss_mb']:.0f} |\n"
        f"| ratio | {q['wall']:.2f}x | {q['peak_rss']:.2f}x |\n"
        f"tensors byte-identical: {results['tensors']['identical']} ({results['tensors']['tensors']} tensors)",
    )
    return 0 if results["tensors"]["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
