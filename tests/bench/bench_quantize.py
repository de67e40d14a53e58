"""Benchmark: convert + quantize a 7B-shaped checkpoint; GGUF vs transformers on a 1B-shaped one.

    .venv/bin/python tests/bench/make_llama_fixture.py --shape 7b --out /tmp/asclepius-bench/llama7b-hf
    .venv/bin/python tests/bench/make_llama_fixture.py --shape 1b --out /tmp/asclepius-bench/llama1b-hf
    .venv/bin/python tests/bench/bench_quantize.py --dir /tmp/asclepius-bench [--drop-caches]

Every measured step runs in its own child process, which reports its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``: anonymous and file-backed pages it had resident at the peak), so
one step's memory never hides in another's. The 1B decode comparison (GGUF Q4_K_M and F16 against
transformers fp32) runs ``--repeats`` rounds with the sides interleaved, the order rotating each round, so
load on the machine hits every side alike; it reports medians and the median of the per-round ratios.
Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def stage_convert(ckpt: str, out: str) -> dict:
    from quantize.checkpoint import open_checkpoint
    from quantize.convert import ConvertOptions, convert_checkpoint

    src = sum(f.stat().st_size for f in open_checkpoint(Path(ckpt)).weight_files)
    t0 = time.perf_counter()
    r = convert_checkpoint(ConvertOptions(Path(ckpt), Path(out), out_type="f16", force=True))
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "hash_s": r.hash_seconds,
        "source_gb": src / 1e9,
        "gb_per_s": src / 1e9 / wall,
        "out_gb": r.tensor_bytes / 1e9,
    }


def stage_quantize(inp: str, out: str, qtype: str, threads: int) -> dict:
    from quantize.quant import quantize_gguf

    r = quantize_gguf(Path(inp), Path(out), qtype, threads=threads, force=True)
    return {"wall_s": r.seconds, "out_gb": r.size / 1e9}


PROMPT_LEN, NEW_TOKENS = 128, 64


def stage_gguf_generate(path: str, threads: int) -> dict:
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=path, n_ctx=512, n_threads=threads, verbose=False)
    load = time.perf_counter() - t0
    ids = [1] + [100 + (i * 37) % 3000 for i in range(PROMPT_LEN - 1)]
    # Warm-up: llama.cpp maps the file lazily, so the first pass would time page faults from disk.
    llm.eval(ids[:16])
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    prompt = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(NEW_TOKENS):
        llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
    decode = time.perf_counter() - t0
    return {"load_s": load, "prompt_tok_s": PROMPT_LEN / prompt, "decode_tok_s": NEW_TOKENS / decode}


def stage_hf_generate(ckpt: str, threads: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    load = time.perf_counter() - t0
    ids = torch.tensor([[1] + [100 + (i * 37) % 3000 for i in range(PROMPT_LEN - 1)]])
    with torch.no_grad():
        model(ids[:, :16])  # warm-up, as for the GGUF path
        t0 = time.perf_counter()
        model(ids)
        prompt = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
        total = time.perf_counter() - t0
    n = out.shape[1] - ids.shape[1]
    # generate() includes its own prompt pass; subtract the measured one to get decode speed.
    return {"load_s": load, "prompt_tok_s": PROMPT_LEN / prompt, "decode_tok_s": n / max(total - prompt, 1e-9)}


STAGES = {
    "convert": stage_convert,
    "quantize": stage_quantize,
    "gguf_generate": stage_gguf_generate,
    "hf_generate": stage_hf_generate,
}


def run_stage(name: str, *args: object) -> dict:
    cmd = [sys.executable, __file__, "_stage", name, *map(str, args)]
    print(f"$ {name} {' '.join(map(str, args))}", file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {out}", file=sys.stderr, flush=True)
    return out


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_stage":
        fn = STAGES[argv[1]]
        args = [int(a) if a.isdigit() else a for a in argv[2:]]
        out = fn(*args)
        out["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(out))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/asclepius-bench"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--drop-caches", action="store_true", help="start conversions with a cold page cache")
    ap.add_argument("--skip-7b", action="store_true")
    ap.add_argument("--skip-1b", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the interleaved 1B decode comparison")
    args = ap.parse_args(argv)
    d: Path = args.dir
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "date": time.strftime("%Y-%m-%d"),
        "threads": args.threads,
    }
    if not args.skip_7b:
        cold = drop_caches() if args.drop_caches else False
        results["7b_convert"] = run_stage("convert", d / "llama7b-hf", d / "llama7b-f16.gguf") | {"cold_cache": cold}
        results["7b_quantize"] = run_stage(
            "quantize", d / "llama7b-f16.gguf", d / "llama7b-q4_k_m.gguf", "Q4_K_M", args.threads
        )
    if not args.skip_1b:
        results["1b_convert"] = run_stage("convert", d / "llama1b-hf", d / "llama1b-f16.gguf")
        results["1b_quantize"] = run_stage(
            "quantize", d / "llama1b-f16.gguf", d / "llama1b-q4_k_m.gguf", "Q4_K_M", args.threads
        )
        sides = {
            "1b_gguf_q4_k_m": ("gguf_generate", d / "llama1b-q4_k_m.gguf"),
            "1b_gguf_f16": ("gguf_generate", d / "llama1b-f16.gguf"),
            "1b_hf_fp32": ("hf_generate", d / "llama1b-hf"),
        }
        runs: dict[str, list[dict]] = {k: [] for k in sides}
        names = list(sides)
        for r in range(max(1, args.repeats)):
            for k in names[r % len(names) :] + names[: r % len(names)]:  # rotate who goes first
                stage, path = sides[k]
                runs[k].append(run_stage(stage, path, args.threads))
        for k, rs in runs.items():
            results[k] = {
                key: statistics.median(x[key] for x in rs) for key in rs[0] if isinstance(rs[0][key], (int, float))
            } | {"repeats": len(rs)}
        paired = list(zip(runs["1b_gguf_q4_k_m"], runs["1b_hf_fp32"], strict=True))
        results["1b_ratio_q4_k_m_vs_hf"] = {
            "decode_speedup": statistics.median(q["decode_tok_s"] / h["decode_tok_s"] for q, h in paired),
            "peak_memory_ratio": statistics.median(q["peak_rss_mb"] / h["peak_rss_mb"] for q, h in paired),
            "per_round_decode_speedup": [round(q["decode_tok_s"] / h["decode_tok_s"], 2) for q, h in paired],
        }
    print(json.dumps(results, indent=2))
    (d / "bench_quantize.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
