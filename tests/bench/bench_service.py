"""Service benchmark: what the one ask-and-log path costs over calling the engine directly, side by side.

    .venv/bin/python tests/bench/bench_service.py [--threads 2] [--repeats 7] [--max-tokens 48]

On the embedded demo model, the same greedy question about the same note (its KV prefix is live, so both
sides evaluate only the question) is asked alternately through ``LlamaCppEngine.ask`` (no log, no
grounding) and through ``AskService.ask`` (validation, a started and a finished run in a real SQLite log,
grounding, leading-whitespace strip). Reports median wall time per answer on each side, their ratio
(target <= 1.10) and the median service overhead in milliseconds. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import EngineConfig, GenerationDefaults, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.service import AskService, SamplingOverrides  # noqa: E402
from app.store import EvalLog  # noqa: E402

NOTES = ROOT.parent / "shared" / "data" / "notes" / "aci_bench_valid.csv"
QUESTION = "What medications is the patient taking, with doses?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--note-chars", type=int, default=3000, help="first N characters of the first shared note")
    args = ap.parse_args()
    with NOTES.open(encoding="utf-8", newline="") as fh:
        note = next(csv.DictReader(fh))["note"][: args.note_chars]
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(Path(tmp) / "data", Path(tmp) / "config")
        model = Registry(paths).ensure_demo()
        engine = LlamaCppEngine(model, EngineConfig(n_threads=args.threads, max_ctx=4096))
        log = EvalLog.open(Path(tmp) / "bench.db")
        svc = AskService.for_engine(engine, log, GenerationDefaults())
        req = svc.request(note, "qa", QUESTION, explicit=SamplingOverrides(max_tokens=args.max_tokens))
        engine.ask(req.renewed())  # evaluate the note once: both sides then reuse its live prefix
        direct: list[float] = []
        service: list[float] = []
        tokens = set()
        for i in range(args.repeats):
            # Alternate which side goes first so drift in machine load hits both alike.
            order = ("direct", "service") if i % 2 == 0 else ("service", "direct")
            for side in order:
                t0 = time.perf_counter()
                if side == "direct":
                    r = engine.ask(req.renewed())
                    direct.append(time.perf_counter() - t0)
                else:
                    r = svc.ask(req.renewed()).result
                    service.append(time.perf_counter() - t0)
                tokens.add(r.completion_tokens)
                if args.verbose:
                    print(f"  {side}: ttft {r.ttft_s:.3f} s, engine total {r.total_s:.3f} s, reused {r.reused_tokens}/"
                          f"{r.prompt_tokens}, answer {r.answer!r}", flush=True)  # fmt: skip
            print(f"repeat {i + 1}/{args.repeats}: direct {direct[-1]:.3f} s, service {service[-1]:.3f} s", flush=True)
        runs = log.count_runs()
        engine.close()
        # The same comparison on a zero-cost fake backend isolates the service's own work per answer
        # (validation, two log transactions, grounding of this answer, whitespace strip).
        from tests.fakes import FakeEngine, Script

        fake = FakeEngine(n_ctx=4096, script=Script(answer=r.answer))
        fsvc = AskService.for_engine(fake, log, GenerationDefaults())
        fake_direct: list[float] = []
        fake_service: list[float] = []
        for _ in range(50):
            t0 = time.perf_counter()
            fake.ask(req.renewed())
            fake_direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fsvc.ask(req.renewed())
            fake_service.append(time.perf_counter() - t0)
        log.close()
    d, s = statistics.median(direct), statistics.median(service)
    out = {
        "bench": "service",
        "machine": f"{platform.machine()}, {args.threads} threads",
        "when_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "repeats": args.repeats,
        "completion_tokens": sorted(tokens),
        "direct_median_s": round(d, 4),
        "service_median_s": round(s, 4),
        "ratio_service_over_direct": round(s / d, 3),
        "overhead_ms": round((s - d) * 1000, 1),
        "runs_logged": runs,
        "service_own_work_ms_median": round(
            (statistics.median(fake_service) - statistics.median(fake_direct)) * 1000, 2
        ),
    }
    print(f"{'side':<10}{'median s':>10}")
    print(f"{'direct':<10}{d:>10.3f}\n{'service':<10}{s:>10.3f}")
    print(f"ratio service/direct {s / d:.3f} (target <= 1.10); overhead {1000 * (s - d):.1f} ms per answer")
    print(f"service's own work per answer (fake backend, 50 pairs): {out['service_own_work_ms_median']} ms")
    print(json.dumps(out))
    return 0 if s / d <= 1.10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
