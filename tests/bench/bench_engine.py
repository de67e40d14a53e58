"""Engine benchmark: the Asclepius engine against plain llama_cpp.Llama.create_completion, side by side.

    .venv/bin/python tests/bench/bench_engine.py [--model PATH] [--threads 2] [--repeats 3]

Default model: the embedded demo (Gemma 3 270M Q4_K_M). Measures, in one run and on the same prompt:
  decode tokens/s (engine / baseline, target >= 0.95), follow-up time to first token on the same note
  (/ cold, target <= 0.10), returning to a note after another (/ cold, target <= 0.15), and how long a
  cancel during prompt processing takes to return (target < 0.5 s). Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import llama_cpp  # noqa: E402

from app.core.config import EngineConfig, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.types import AskRequest, SamplingParams  # noqa: E402
from resources import get_style  # noqa: E402

NOTES = ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv"
STYLE = "asclepius"  # long answers from a base model: a good decode-speed workload
MAX_TOKENS = 128


def memory_bandwidth_gbs(gib: float = 1.0, threads: int = 2) -> float:
    """Copy bandwidth (read + write bytes per second) with ``threads`` threads, best of 3."""
    import numpy as np

    n = int(gib * (1 << 30)) // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=np.copyto, args=(dst[a:b], src[a:b])) for a, b in bounds]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def load_notes() -> list[str]:
    with NOTES.open(encoding="utf-8", newline="") as fh:
        return [r["note"].strip() for r in csv.DictReader(fh)]


def note_of_tokens(engine: LlamaCppEngine, notes: list[str], target: int) -> tuple[str, int]:
    """Join ACI-bench notes until the note is about ``target`` tokens."""
    text = ""
    for n in notes:
        cand = f"{text}\n\n{n}" if text else n
        count = len(engine.tokenize_prompt(get_style(STYLE), cand, "x").note_tokens)
        text = cand
        if count >= target:
            return text, count
    return text, count


def baseline_run(model_path: str, threads: int, n_ctx: int, prompt: str, max_tokens: int) -> dict[str, float]:
    llm = llama_cpp.Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        n_ubatch=512,
        verbose=False,
    )
    t0 = time.perf_counter()
    first = None
    n = 0
    for _chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True):
        if first is None:
            first = time.perf_counter()
        n += 1
    end = time.perf_counter()
    llm.close()
    return {"ttft": first - t0, "tps": (n - 1) / (end - first), "tokens": n}


def engine_runs(
    model, threads: int, n_ctx: int, note_a: str, note_b: str, kv_mb: int, max_tokens: int
) -> dict[str, float]:
    eng = LlamaCppEngine(model, EngineConfig(n_threads=threads, n_ctx=n_ctx, kv_cache_mb=kv_mb))
    sp = SamplingParams(max_tokens=max_tokens)

    def ask(note: str, q: str):
        return eng.ask(AskRequest(note, "qa", q, sp, prompt_style=STYLE))

    cold = ask(note_a, "Summarize the assessment and plan.")
    follow = ask(note_a, "What medications were discussed?")
    ask(note_b, "What is the chief complaint?")
    back = ask(note_a, "What were the exam findings?")
    assert eng.last_prefix_source == "cache", eng.last_prefix_source
    eng.close()
    return {
        "cold_ttft": cold.ttft_s,
        "tps": cold.decode_tokens_per_s,
        "tokens": cold.completion_tokens,
        "follow_ttft": follow.ttft_s,
        "return_ttft": back.ttft_s,
        "prompt_tokens": cold.prompt_tokens,
    }


def cancel_latency(model, threads: int, n_ctx: int, note: str, delay: float = 0.3) -> float:
    eng = LlamaCppEngine(model, EngineConfig(n_threads=threads, n_ctx=n_ctx))
    cancel = threading.Event()
    stamp = {}

    def fire() -> None:
        stamp["t"] = time.perf_counter()
        cancel.set()

    threading.Timer(delay, fire).start()
    r = eng.ask(
        AskRequest(note, "qa", "Summarize.", SamplingParams(max_tokens=8), prompt_style=STYLE, truncate=True),
        cancel=cancel,
    )
    done = time.perf_counter()
    assert str(r.finish_reason) == "cancelled", r.finish_reason
    eng.close()
    return done - stamp["t"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--note-tokens", type=int, default=1500)
    ap.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    ap.add_argument("--kv-cache-mb", type=int, default=2048)
    ap.add_argument("--bandwidth", action="store_true", help="also measure memory bandwidth (physical bound)")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="asclepius-bench-")
    os.environ.setdefault("ASCLEPIUS_HOME", home)
    reg = Registry(Paths.default())
    model = reg.import_model(args.model) if args.model else reg.ensure_demo()
    n_ctx = min(model.context_length, 4096)
    probe = LlamaCppEngine(model, EngineConfig(n_threads=args.threads, n_ctx=n_ctx))
    notes = load_notes()
    note_a, n_a = note_of_tokens(probe, notes, args.note_tokens)
    note_b, _ = note_of_tokens(probe, notes[len(notes) // 2 :], args.note_tokens // 2)
    long_note, n_long = note_of_tokens(probe, notes, min(3000, n_ctx - 300))
    probe.close()
    prompt = get_style(STYLE).render(note_a, "Summarize the assessment and plan.")

    base, ours, cancels = [], [], []

    def run_base() -> None:
        base.append(baseline_run(model.path, args.threads, n_ctx, prompt, args.max_tokens))
        print("baseline", base[-1], flush=True)

    def run_ours() -> None:
        ours.append(engine_runs(model, args.threads, n_ctx, note_a, note_b, args.kv_cache_mb, args.max_tokens))
        print("engine", ours[-1], flush=True)

    for r in range(args.repeats):  # interleaved, the order alternating, so load drift hits both sides alike
        for side in (run_base, run_ours) if r % 2 == 0 else (run_ours, run_base):
            side()
        cancels.append(cancel_latency(model, args.threads, n_ctx, long_note))

    med = statistics.median
    res = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "model": model.display_name,
        "threads": args.threads,
        "note_tokens": n_a,
        "prompt_tokens": ours[0]["prompt_tokens"],
        "baseline_tps": med(b["tps"] for b in base),
        "engine_tps": med(o["tps"] for o in ours),
        "baseline_cold_ttft_s": med(b["ttft"] for b in base),
        "cold_ttft_s": med(o["cold_ttft"] for o in ours),
        "follow_ttft_s": med(o["follow_ttft"] for o in ours),
        "return_ttft_s": med(o["return_ttft"] for o in ours),
        "cancel_prompt_tokens": n_long,
        "cancel_return_s": max(cancels),
    }
    # Median of the per-repeat ratios: each ratio pairs two sides measured back to back.
    res["decode_ratio"] = med(o["tps"] / b["tps"] for o, b in zip(ours, base, strict=True))
    res["follow_ratio"] = res["follow_ttft_s"] / res["cold_ttft_s"]
    res["return_ratio"] = res["return_ttft_s"] / res["cold_ttft_s"]
    if args.bandwidth:
        res["model_gb"] = model.size_bytes / 1e9
        res["bandwidth_gbs"] = memory_bandwidth_gbs(threads=args.threads)
        # Decoding reads every weight once per token: bandwidth / model size bounds tokens/s from above.
        res["bound_tps"] = res["bandwidth_gbs"] / res["model_gb"]
        res["tps_of_bound"] = res["engine_tps"] / res["bound_tps"]
    checks = [
        ("decode tokens/s engine / baseline", res["decode_ratio"], ">= 0.95", res["decode_ratio"] >= 0.95),
        ("follow-up TTFT / cold TTFT", res["follow_ratio"], "<= 0.10", res["follow_ratio"] <= 0.10),
        ("return-to-note TTFT / cold TTFT", res["return_ratio"], "<= 0.15", res["return_ratio"] <= 0.15),
        ("cancel in prompt processing (s, worst)", res["cancel_return_s"], "< 0.5", res["cancel_return_s"] < 0.5),
    ]
    print(f"model {res['model']}, {args.threads} threads, note {n_a} tokens, prompt {res['prompt_tokens']} tokens")
    print(f"baseline: {res['baseline_tps']:.1f} tok/s, cold TTFT {res['baseline_cold_ttft_s']:.3f} s")
    print(
        f"engine:   {res['engine_tps']:.1f} tok/s, cold TTFT {res['cold_ttft_s']:.3f} s, follow-up "
        f"{res['follow_ttft_s']:.3f} s, return {res['return_ttft_s']:.3f} s"
    )
    if args.bandwidth:
        print(
            f"memory bandwidth {res['bandwidth_gbs']:.1f} GB/s / model {res['model_gb']:.2f} GB = bound "
            f"{res['bound_tps']:.1f} tok/s; engine reaches {res['tps_of_bound']:.0%} of it"
        )
    for name, value, target, ok in checks:
        print(f"  {name:<42} {value:8.3f}  target {target:<8} {'PASS' if ok else 'FAIL'}")
    print(json.dumps(res))
    return 0 if all(c[3] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
