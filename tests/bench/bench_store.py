"""Evaluation-log benchmark: 100,000 synthetic runs (not collected by pytest; run it by hand).

    .venv/bin/python tests/bench/bench_store.py              # 100,000 runs in a temporary directory
    .venv/bin/python tests/bench/bench_store.py --runs 20000 --keep /tmp/bench.db

Measures, with the log already holding N runs:
- logging overhead per run: ``start_run`` + ``finish_run`` through the public API (target < 5 ms);
- the latest 100 runs of one task, as the app's list shows them (target < 50 ms);
- a full export, CSV and JSONL, with note text (target < 10 s);
- opening the log (integrity quick_check included), and database size per run.

The bulk fill goes through SQL (the API would take minutes and is not what is measured); rows look like
real ones: 2,000 distinct ~3,000-character notes, 4 models, 8 tasks, ~300-character answers, grounding
JSON, and a rating on one run in ten.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult, SamplingParams, note_sha256
from app.store import EvalLog, params_hash
from app.store.export import export
from resources import TASK_NAMES

WORDS = [
    "patient",
    "admitted",
    "with",
    "pneumonia",
    "treated",
    "amoxicillin",
    "mg",
    "daily",
    "discharged",
    "stable",
    "follow",
    "up",
    "clinic",
]


def text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:chars]


def models() -> list[ModelInfo]:
    return [
        ModelInfo(
            f"/m/{q}.gguf",
            f"asclepius-7b.{q}.gguf",
            hashlib.sha256(q.encode()).hexdigest(),
            4_000_000_000,
            "llama",
            "Asclepius-7B",
            2048,
            q,
            6_700_000_000,
            "asclepius",
        )
        for q in ("Q4_K_M", "Q5_K_M", "Q8_0", "F16")
    ]


def fill(path: Path, n_runs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    EvalLog.open(path).close()  # schema via the migrations
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous = NORMAL")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ts = t0.isoformat(timespec="microseconds")
    notes = [text(rng, 3000) + f" #{i}" for i in range(2000)]
    con.executemany(
        "INSERT INTO notes (id, sha256, chars, text, created_at) VALUES (?, ?, ?, ?, ?)",
        [(i + 1, note_sha256(t), len(t), t, ts) for i, t in enumerate(notes)],
    )
    con.executemany(
        "INSERT INTO models (id, sha256, file_name, name, architecture, quant, parameter_count, context_length, "
        "size_bytes, prompt_style, is_demo, provenance, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,0,'{}',?)",
        [
            (
                i + 1,
                m.sha256,
                m.file_name,
                m.name,
                "llama",
                m.file_type,
                m.parameter_count,
                2048,
                m.size_bytes,
                "asclepius",
                ts,
            )
            for i, m in enumerate(models())
        ],
    )
    con.execute("INSERT INTO raters (id, name, kind, created_at) VALUES (1, 'dr-bench', 'human', ?)", (ts,))
    grounding = json.dumps({"checked": 5, "supported": 4, "unsupported": ["40 mg"]})
    rows, ratings = [], []
    for i in range(n_runs):
        start = (t0 + timedelta(seconds=i * 30)).isoformat(timespec="microseconds")
        end = (t0 + timedelta(seconds=i * 30 + 6)).isoformat(timespec="microseconds")
        rows.append(
            (
                i + 1,
                f"{i:08d}-0000-4000-8000-000000000000",
                "finished",
                rng.randrange(2000) + 1,
                rng.randrange(4) + 1,
                TASK_NAMES[i % 8],
                text(rng, 60),
                400,
                0.0,
                1.0,
                0,
                0.0,
                1.0,
                0,
                0,
                "p" * 64,
                1234,
                "bench",
                start,
                end,
                text(rng, 300),
                "stop",
                "llama-cpp-python 0.3.36",
                "0.1.0",
                "2026.11.1",
                "asclepius@1",
                2048,
                2,
                900,
                850,
                80,
                0.3,
                25.0,
                3.5,
                grounding,
            )
        )
        if i % 10 == 0:
            ratings.append((i + 1, rng.randint(1, 4), end))
    con.executemany(
        "INSERT INTO runs (id, uuid, status, note_id, model_id, task, instruction, max_tokens, temperature, top_p, "
        "top_k, min_p, repeat_penalty, seed, truncate_allowed, params_hash, pid, host, started_at, finished_at, "
        "answer, finish_reason, engine, app_version, presets_version, prompt_style, n_ctx, n_threads, prompt_tokens, "
        "reused_tokens, completion_tokens, ttft_s, decode_tokens_per_s, total_s, grounding) "
        "VALUES (" + ",".join("?" * 35) + ")",
        rows,
    )
    con.executemany(
        "INSERT INTO ratings (run_id, rater_id, score, hallucination, is_current, created_at) "
        "VALUES (?, 1, ?, 0, 1, ?)",
        ratings,
    )
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs) * 1e3:.2f} ms, p95 {xs[int(len(xs) * 0.95)] * 1e3:.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--keep", help="write the database here and keep it")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(args.keep) if args.keep else Path(tmp.name) / "bench.db"
    if path.exists():
        path.unlink()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    t = time.perf_counter()
    fill(path, args.runs)
    print(f"fill: {args.runs:,} runs in {time.perf_counter() - t:.1f} s (bulk SQL, not measured)")

    t = time.perf_counter()
    log = EvalLog.open(path)
    print(f"open (quick_check + migrations check): {(time.perf_counter() - t) * 1e3:.0f} ms")

    ms_list = models()
    rng = random.Random(1)
    notes = [text(rng, 3000) + f" new {i}" for i in range(20)]
    per_run: list[float] = []
    for i in range(300):
        req = AskRequest(notes[i % 20], TASK_NAMES[i % 8], f"bench question {i}", SamplingParams(max_tokens=400))
        m = ms_list[i % 4]
        now = datetime.now(UTC).isoformat()
        res = RunResult(
            req.run_uuid,
            req.task,
            req.instruction,
            text(rng, 300),
            FinishReason.STOP,
            m.sha256,
            m.file_name,
            m.file_type,
            "llama",
            "llama-cpp-python 0.3.36",
            "0.1.0",
            "2026.11.1",
            "asclepius@1",
            req.sampling,
            2048,
            2,
            note_sha256(req.note),
            len(req.note),
            900,
            850,
            80,
            0.3,
            25.0,
            3.5,
            now,
            now,
            grounding={"checked": 5, "supported": 5, "unsupported": []},
        )
        t = time.perf_counter()
        rid = log.start_run(req, m)
        log.finish_run(rid, res)
        per_run.append(time.perf_counter() - t)
    assert params_hash(req)  # the hash is part of the measured start_run
    print(f"logging overhead per run (start_run + finish_run): {ms(per_run)}; target < 5 ms")

    latest: list[float] = []
    for i in range(50):
        t = time.perf_counter()
        got = log.latest_runs(TASK_NAMES[i % 8], 100)
        latest.append(time.perf_counter() - t)
        assert len(got) == 100
    print(f"latest 100 runs of one task: {ms(latest)}; target < 50 ms")

    t = time.perf_counter()
    n = log.count_runs()
    print(f"count all runs: {(time.perf_counter() - t) * 1e3:.1f} ms ({n:,})")

    for fmt in ("csv", "jsonl"):
        out_path = path.with_suffix(f".{fmt}")
        t = time.perf_counter()
        with out_path.open("w", encoding="utf-8", newline="") as fh:
            rows = export(log, fh, fmt)
        dt = time.perf_counter() - t
        print(
            f"full export {fmt} with note text: {rows:,} rows in {dt:.2f} s, "
            f"{out_path.stat().st_size / 2**20:.0f} MB; target < 10 s"
        )
        out_path.unlink()
    t = time.perf_counter()
    rows = export(log, io.StringIO(), "csv", include_note_text=False)
    print(f"full export csv --no-note-text: {time.perf_counter() - t:.2f} s")
    log.close()

    size = path.stat().st_size
    con = sqlite3.connect(path)
    notes_bytes = con.execute("SELECT sum(length(text)) FROM notes").fetchone()[0]
    con.close()
    print(
        f"database: {size / 2**20:.1f} MB for {n:,} runs = {size / n / 1024:.2f} KB per run "
        f"({(size - notes_bytes) / n / 1024:.2f} KB per run without the {notes_bytes / 2**20:.1f} MB of note "
        f"text, shared by runs of the same note)"
    )
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
