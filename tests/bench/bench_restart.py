"""Warm notes across restarts: time to first token on a freshly started engine, note kept on disk vs cold.

    .venv/bin/python tests/bench/bench_restart.py [--model PATH] [--threads 2] [--repeats 3]

Each repeat starts two new engines, in alternating order: one with no kept states (the note is evaluated)
and one whose state directory holds the note's state from an earlier run (restored after the header and
checksum checks). Reports the median of the per-repeat TTFT ratios (target <= 0.15) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import EngineConfig, Paths  # noqa: E402
from app.core.engine import LlamaCppEngine  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.types import AskRequest, SamplingParams  # noqa: E402
from tests.bench.bench_parallel import load_notes  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="GGUF path (default: the embedded demo model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--note-tokens", type=int, default=1500)
    args = ap.parse_args()
    os.environ.setdefault("ASCLEPIUS_HOME", tempfile.mkdtemp(prefix="asclepius-bench-"))
    reg = Registry(Paths.default())
    model = reg.import_model(args.model) if args.model else reg.ensure_demo()
    cfg = EngineConfig(n_threads=args.threads, n_ctx=min(model.context_length, 4096))
    kept = Path(tempfile.mkdtemp(prefix="asclepius-kv-")) / "kvstate"
    notes = load_notes()
    with LlamaCppEngine(model, cfg, state_dir=kept) as setup:
        style = setup.style_for(None)
        sizes = [len(setup.tokenize_prompt(style, n, "x").note_tokens) for n in notes]
        pick = min(range(len(notes)), key=lambda i: abs(sizes[i] - args.note_tokens))
        req = AskRequest(notes[pick], "Question Answering", "Why was the patient seen?", SamplingParams(max_tokens=4))
        setup.ask(req)  # close() keeps the note's state on disk

    def side(state_dir: Path | None) -> tuple[float, str]:
        with LlamaCppEngine(model, cfg, state_dir=state_dir) as eng:
            r = eng.ask(req)
            return r.ttft_s, eng.last_prefix_source

    cold, warm = [], []
    for r in range(args.repeats):
        order = (None, kept) if r % 2 == 0 else (kept, None)
        for d in order:
            ttft, source = side(d)
            assert source == ("disk" if d else "eval"), source
            (warm if d else cold).append(ttft)
    ratios = [w / c for w, c in zip(warm, cold, strict=True)]
    res = {
        "bench": "restart",
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()}-core {platform.machine()}",
        "model": model.file_name,
        "threads": args.threads,
        "note_tokens": sizes[pick],
        "state_mb": sum(p.stat().st_size for p in kept.iterdir()) / 1e6,
        "cold_ttft_median_s": statistics.median(cold),
        "restart_ttft_median_s": statistics.median(warm),
        "ratio_median": statistics.median(ratios),
    }
    ok = res["ratio_median"] <= 0.15
    print(
        f"TTFT after restart / cold: {res['ratio_median']:.3f} target <= 0.15 {'PASS' if ok else 'FAIL'} "
        f"({res['restart_ttft_median_s']:.2f} s vs {res['cold_ttft_median_s']:.2f} s, note {res['note_tokens']} "
        f"tokens, state {res['state_mb']:.1f} MB)"
    )
    print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
