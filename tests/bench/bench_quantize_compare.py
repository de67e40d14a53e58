"""Benchmark: ``asclepius quantize compare`` side by side with llama.cpp's ``llama-perplexity --kl-divergence``.

    .venv/bin/python tests/bench/bench_quantize_compare.py [--dir /tmp/asclepius-bench/qcompare]
        [--perplexity /work/cache/llama-perplexity/bin/llama-perplexity] [--ctx 128] [--threads 2]
        [--notes 4] [--repeats 1]

Two pairs, each on the same text file (the first ``--notes`` validation notes of aci_bench from
``../shared/data/notes``, joined by blank lines), context, batch (= context: one chunk per decode on both
sides) and threads, flash attention off on both (llama-cpp-python's default):

* the demo model (Gemma 3 270M Q4_K_M, 262,144-token vocabulary) against itself: KL must be 0, top-1 1.0;
* a Q4_K_M against the F16 of a converted checkpoint: the tiny random-weight LLaMA the tests build
  (``tests.fixtures_llama``: hidden 64, 2 layers, SentencePiece vocabulary 512). Its rows are narrower than
  the 256-wide K-quant blocks, so llama.cpp stores them in its fallback types: the figures measure *a*
  quantization of random weights, not Q4_K_M's quality on a real model.

llama-perplexity runs twice per pair (``--kl-divergence-base FILE`` over the reference, which writes every
scored position's 16-bit log-probabilities, then ``--kl-divergence`` over the candidate); its time is the sum
of both processes, ours is one ``python -m quantize.cli quantize compare`` process. Both timings include
process start and model loads. Figures are compared as relative differences; llama-perplexity quantizes the
reference's log-probabilities to 16 bits over a 16-nat range (and skips probabilities below e^-16), so small
KL values carry its rounding (up to ~1.2e-4 nats per log-probability), not ours.

llama-perplexity is built from the llama-cpp-python sdist's vendored llama.cpp (the version the app pins):

    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/sdist
    mkdir -p /work/cache && tar xzf /tmp/sdist/llama_cpp_python-0.3.36.tar.gz -C /work/cache
    cd /work/cache/llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -S . -B /work/cache/llama-perplexity -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \\
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \\
        -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
    nice cmake --build /work/cache/llama-perplexity --target llama-perplexity -j2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

LLAMA_PERPLEXITY = Path("/work/cache/llama-perplexity/bin/llama-perplexity")
PATTERNS = {
    "ppl_candidate": r"Mean PPL\(Q\)\s*:\s*([-\d.]+)",
    "ppl_ref": r"Mean PPL\(base\)\s*:\s*([-\d.]+)",
    "ppl_ratio": r"Mean PPL\(Q\)/PPL\(base\)\s*:\s*([-\d.]+)",
    "kl_mean": r"Mean\s+KLD:\s*([-\d.]+)",
    "kl_median": r"Median\s+KLD:\s*([-\d.]+)",
    "kl_p99": r"99\.0%\s+KLD:\s*([-\d.]+)",
    "top1_agreement": r"Same top p:\s*([-\d.]+)",
}
"""llama-perplexity's summary lines (``Same top p`` is in percent)."""


def notes_file(out: Path, n: int) -> Path:
    from quantize.notes import load_notes

    notes = load_notes(ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv", limit=n)
    path = out / f"notes-{n}.txt"
    path.write_text("\n\n".join(text.strip() for _, text in notes), encoding="utf-8")  # no trailing newline
    return path


def models(out: Path) -> list[tuple[str, Path, Path]]:
    os.environ.setdefault("ASCLEPIUS_HOME", str(out / "home"))
    from app.core.config import Paths
    from app.core.models import Registry
    from quantize.quant import quantize_gguf
    from tests.fixtures_llama import build_tiny_llama_gguf

    demo = Path(Registry(Paths.default()).ensure_demo().path)
    f16 = out / "tiny-llama-f16.gguf"
    if not f16.exists():
        f16 = build_tiny_llama_gguf(out, "f16")
    q4 = out / "tiny-llama-q4_k_m.gguf"
    if not q4.exists():
        quantize_gguf(f16, q4, "Q4_K_M", threads=2)
    return [("demo vs itself", demo, demo), ("tiny LLaMA Q4_K_M vs F16", f16, q4)]


def run_ours(ref: Path, cand: Path, text: Path, ctx: int, threads: int) -> tuple[dict, float]:
    argv = [sys.executable, "-m", "quantize.cli", "quantize", "compare", str(ref), str(cand), "--notes", str(text)]
    argv += ["--ctx", str(ctx), "--batch", str(ctx), "--threads", str(threads), "--json", "-q"]
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"quantize compare failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout), wall


def run_llama(
    binary: Path, ref: Path, cand: Path, text: Path, ctx: int, threads: int, work: Path
) -> tuple[dict, float]:
    base = work / "base.kld"
    common = ["-f", str(text), "-c", str(ctx), "-b", str(ctx), "-t", str(threads), "-fa", "off"]
    t0 = time.perf_counter()
    subprocess.run(
        [str(binary), "-m", str(ref), *common, "--kl-divergence-base", str(base)], check=True, capture_output=True
    )
    p = subprocess.run(
        [str(binary), "-m", str(cand), *common, "--kl-divergence-base", str(base), "--kl-divergence"],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    base.unlink()
    log = p.stdout + p.stderr
    figures = {}
    for key, pattern in PATTERNS.items():
        m = re.search(pattern, log)
        if not m:
            raise SystemExit(f"llama-perplexity printed no {key}:\n{log[-3000:]}")
        figures[key] = float(m.group(1)) / (100 if key == "top1_agreement" else 1)
    return figures, wall


def rel(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path("/tmp/asclepius-bench/qcompare"))
    ap.add_argument("--perplexity", type=Path, default=LLAMA_PERPLEXITY)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--notes", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    text = notes_file(args.dir, args.notes)
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg(),
        "ctx": args.ctx,
        "threads": args.threads,
        "pairs": [],
    }
    for label, ref, cand in models(args.dir):
        rows = []
        for i in range(args.repeats):  # the two tools alternate which goes first
            order = ["ours", "llama"] if i % 2 == 0 else ["llama", "ours"]
            got = {}
            for side in order:
                if side == "ours":
                    got[side] = run_ours(ref, cand, text, args.ctx, args.threads)
                else:
                    got[side] = run_llama(args.perplexity, ref, cand, text, args.ctx, args.threads, args.dir)
            rows.append(got)
        ours, _ = rows[-1]["ours"]
        theirs, _ = rows[-1]["llama"]
        t_ours = sorted(r["ours"][1] for r in rows)[len(rows) // 2]
        t_llama = sorted(r["llama"][1] for r in rows)[len(rows) // 2]
        report["pairs"].append(
            {
                "pair": label,
                "positions": ours["positions"],
                "ours": {k: ours[k] for k in PATTERNS},
                "llama_perplexity": theirs,
                "relative_difference": {k: rel(ours[k], theirs[k]) for k in PATTERNS},
                "seconds_ours": t_ours,
                "seconds_llama_perplexity": t_llama,
                "time_ratio_ours_over_llama": t_ours / t_llama,
            }
        )
        print(json.dumps(report["pairs"][-1], indent=2), file=sys.stderr)
    report["load_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
