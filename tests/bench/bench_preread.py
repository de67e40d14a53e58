"""Preread benchmark: time to first token after Ask when the note was pasted T seconds earlier, against cold.

    .venv/bin/python tests/bench/bench_preread.py [--model PATH] [--threads 2] [--sizes 1000,2000] [--t 0,2,5,10]

Default model: the embedded demo (Gemma 3 270M Q4_K_M). Notes: ACI-bench validation notes (shared data), joined
until about 1,000 and 2,000 tokens. Every trial uses a fresh engine with no note-state caches, so nothing but
the preread helps. Measured, side by side in one run:

* cold: Ask on a note nobody read (TTFT = the whole prompt's prefill plus the first token);
* T s: a preread starts when the note is "pasted" (what the Ask screen does after its pause), Ask comes T s
  later and the engine stops the preread for it; target <= 0.15x cold once T exceeds the prefill time;
* cold again: the cold ask repeated after the T trials (how much the machine's load moved the baseline);
* change: note A is being read, the user replaces it with note B and asks at once, a third into A's second
  chunk (the preread of A is cancelled as an edit cancels it); B's TTFT against B's cold, target <= 1.05x;
* cancel latency: from the cancel to the preread returning;
* responsiveness: how late a 10 ms timer of another thread (the GUI's) fires while a preread runs, with all
  threads and with one thread for llama.cpp, against idle (median and 95th percentile, ms).

Prints a table and, last, one JSON line: ``{"ratio": TTFT / cold at the first T by which the preread had
read the whole note (T exceeded the prefill time), for the first size; ...}``. On a loaded machine the
prefill time moves with the load, so the table says how much was read before each Ask.
"""

from __future__ import annotations

import argparse
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

from app.core.config import EngineConfig, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.preread import Preread  # noqa: E402
from app.core.types import AskRequest, ModelInfo, SamplingParams  # noqa: E402
from tests.bench.bench_engine import load_notes, note_of_tokens  # noqa: E402

QUESTION = "What medications is the patient on?"
ANSWER_TOKENS = 8  # time to first token is the measure: a short answer keeps the run short


def _engine(model: ModelInfo, threads: int) -> LlamaCppEngine:
    # No memory or disk note states: a trial starts from an empty context, as a new note does.
    return LlamaCppEngine(model, EngineConfig(n_threads=threads, max_ctx=4096, kv_cache_mb=0, kv_disk_mb=0))


def _ask(engine: LlamaCppEngine, note: str) -> float:
    r = engine.ask(AskRequest(note, "qa", QUESTION, SamplingParams(max_tokens=ANSWER_TOKENS)))
    return r.ttft_s


def cold(model: ModelInfo, threads: int, note: str) -> float:
    with _engine(model, threads) as e:
        return _ask(e, note)


def after_preread(model: ModelInfo, threads: int, note: str, wait_s: float) -> tuple[float, Preread]:
    """TTFT of an Ask ``wait_s`` after a preread started, and how far the preread got before the Ask."""
    with _engine(model, threads) as e:
        got: list[Preread] = []
        reader = threading.Thread(target=lambda: got.append(e.preread(note)))
        reader.start()
        time.sleep(wait_s)
        ttft = _ask(e, note)
        reader.join()
        return ttft, got[0]


def changed_mid_read(model: ModelInfo, threads: int, first: str, second: str) -> tuple[float, float, int]:
    """TTFT of an Ask on ``second`` while ``first`` is being read (inside its second chunk), the cancel
    latency (from the cancel to the preread returning), and how many tokens of ``first`` were read."""
    with _engine(model, threads) as e:
        cancel, chunk_done = threading.Event(), threading.Event()
        marks: list[float] = []
        read: list[int] = []

        def on_progress(done: int, _total: int) -> None:
            marks.append(time.perf_counter())
            if done:
                chunk_done.set()

        def run() -> None:
            read.append(e.preread(first, on_progress=on_progress, cancel=cancel).done)
            marks.append(time.perf_counter())

        reader = threading.Thread(target=run)
        reader.start()
        chunk_done.wait()
        time.sleep((marks[1] - marks[0]) / 3)  # a third into the next chunk: the cancel lands mid-computation
        t_cancel = time.perf_counter()
        cancel.set()  # the edit cancels the preread; Ask comes at once
        ttft = _ask(e, second)
        reader.join()
        return ttft, marks[-1] - t_cancel, read[0]


def timer_lateness(model: ModelInfo, threads: int | None, note: str, seconds: float = 4.0) -> tuple[float, float]:
    """Median and 95th percentile of how late a 10 ms sleep returns (ms), while a preread runs (or idle)."""
    late: list[float] = []
    engine = _engine(model, threads) if threads else None
    reader = None
    if engine is not None:
        reader = threading.Thread(target=lambda: engine.preread(note))
        reader.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        time.sleep(0.010)
        late.append((time.perf_counter() - t0 - 0.010) * 1000)
    if engine is not None and reader is not None:
        engine.ask(AskRequest(note, "qa", QUESTION, SamplingParams(max_tokens=1)))  # stops the preread
        reader.join()
        engine.close()
    late.sort()
    return statistics.median(late), late[int(0.95 * (len(late) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="1000,2000", help="note sizes in tokens")
    ap.add_argument("--t", default="0,2,5,10", help="seconds between paste and Ask")
    args = ap.parse_args()
    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="asclepius-bench-"))
    reg = Registry(Paths.default())
    model = reg.import_model(args.model) if args.model else reg.ensure_demo()
    sizes = [int(s) for s in args.sizes.split(",")]
    waits = [float(t) for t in args.t.split(",")]
    print(f"# bench_preread {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()} · {os.cpu_count()} CPUs")
    print(f"# load average at start: {os.getloadavg()[0]:.2f} · model {model.file_name} · threads {args.threads}")
    notes = load_notes()
    out: dict[str, object] = {}
    headline: float | None = None
    with _engine(model, args.threads) as probe:
        # Five of the 20 notes (about 650 tokens each) for each note, none shared: no prefix in common.
        made = []
        for i, size in enumerate(sizes):
            text, n = note_of_tokens(probe, notes[10 * i :], size)
            other, _ = note_of_tokens(probe, notes[10 * i + 5 :], size)
            made.append((size, text, n, other))
    for size, note, n_tokens, other in made:
        base = cold(model, args.threads, note)
        print(f"\n## note of {n_tokens:,} tokens: cold TTFT {base:.2f} s")
        print("| paste -> Ask | TTFT s | / cold | read before Ask (tokens) |")
        print("|---:|---:|---:|---:|")
        row: dict[str, object] = {"tokens": n_tokens, "cold_s": round(base, 3)}
        for wait in waits:
            ttft, read = after_preread(model, args.threads, note, wait)
            ratio = ttft / base
            print(f"| {wait:g} s | {ttft:.2f} | {ratio:.3f} | {read.done:,} of {read.total:,} |")
            row[f"t{wait:g}"] = round(ratio, 3)
            if headline is None and size == sizes[0] and read.complete:  # T exceeded this run's prefill time
                headline = ratio
        again = cold(model, args.threads, note)
        print(f"| cold again | {again:.2f} | {again / base:.3f} | 0 |")
        other_cold = cold(model, args.threads, other)
        ttft, latency, read = changed_mid_read(model, args.threads, note, other)
        print(
            f"| note changed mid-read | {ttft:.2f} | {ttft / other_cold:.3f} (new note cold {other_cold:.2f} s) "
            f"| {read:,} |"
        )
        print(f"cancel latency {latency * 1000:.0f} ms")
        row.update(
            cold_again=round(again / base, 3), change=round(ttft / other_cold, 3), cancel_ms=round(latency * 1000)
        )
        out[str(size)] = row
    note = made[-1][1]  # the longest: the preread outlasts the measurement
    print("\n## another thread's 10 ms timer, lateness in ms (median / p95)")
    late: dict[str, list[float]] = {}
    for label, threads in (("idle", None), (f"preread {args.threads} threads", args.threads), ("preread 1 thread", 1)):
        med, p95 = timer_lateness(model, threads, note)
        print(f"{label}: {med:.2f} / {p95:.2f}")
        late[label] = [round(med, 2), round(p95, 2)]
    out["timer_late_ms"] = late
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(json.dumps({"ratio": None if headline is None else round(headline, 3), **out}))


if __name__ == "__main__":
    main()
