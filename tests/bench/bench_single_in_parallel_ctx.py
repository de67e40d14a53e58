"""Does opening the context for parallel answers slow a single answer down?

Decode tokens/s of one question at a time on the demo model with ``EngineConfig.parallel=1`` (one sequence)
and ``parallel=8`` (nine sequences in a unified KV cache, the default), sides alternating over repeats.

    PYTHONPATH=. ASCLEPIUS_HOME=$(mktemp -d) .venv/bin/python tests/bench/bench_single_in_parallel_ctx.py
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

from app.core.config import EngineConfig, Paths
from app.core.engine import LlamaCppEngine
from app.core.models import Registry
from app.core.types import AskRequest, SamplingParams

NOTES = Path(__file__).resolve().parents[3] / "shared" / "data" / "notes" / "aci_bench_valid.csv"


def main(repeats: int = 5) -> int:
    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="bench-single-"))  # never the user's data
    with NOTES.open(encoding="utf-8", newline="") as fh:
        note = next(csv.DictReader(fh))["note"][:3000]
    model = Registry(Paths.default()).ensure_demo()
    engines = {p: LlamaCppEngine(model, EngineConfig(n_threads=2, max_ctx=4096, parallel=p)) for p in (1, 8)}
    speeds: dict[int, list[float]] = {1: [], 8: []}
    for r in range(repeats):
        for p in (1, 8) if r % 2 == 0 else (8, 1):
            req = AskRequest(
                note=note,
                task="Summarization",
                instruction=f"Summarize the visit ({r}).",
                sampling=SamplingParams(max_tokens=96, temperature=0.0, seed=0),
                prompt_style="plain-qa",
            )
            speeds[p].append(engines[p].ask(req, on_token=None, cancel=threading.Event()).decode_tokens_per_s)
    for e in engines.values():
        e.close()
    for p, s in speeds.items():
        print(f"parallel={p}: " + " ".join(f"{v:.1f}" for v in s) + " tokens/s")
    print(f"ratio parallel=8 / parallel=1 (medians): {statistics.median(speeds[8]) / statistics.median(speeds[1]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
