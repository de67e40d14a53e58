"""The perplexity gate of ``asclepius quantize verify`` on good and deliberately broken quantizations.

    .venv/bin/python tests/bench/bench_verify_gate.py [--dir /tmp/asclepius-gate] [--tokens 2048]

Builds the tiny LLaMA test model (random weights, 2 layers, vocabulary 512; as tests/fixtures_llama.py),
quantizes it to Q8_0, Q4_0 and Q4_K_M through llama.cpp, makes three broken copies of the Q4_K_M (every 97th
byte of the output projection flipped; the output projection zeroed; the token embedding overwritten with
random bytes), and prints each file's perplexity change against the F32 source with the gate's verdict.
On a random model the perplexity is near the vocabulary size, so the deltas of good files are small in
either direction; the point is that the broken files land far outside the limits (or at NaN/inf).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    import gguf
    import numpy as np

    from quantize.notes import load_notes
    from quantize.quant import quantize_gguf
    from quantize.verify import perplexity_table, ppl_gates
    from tests.fixtures_llama import build_tiny_llama_gguf

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/tmp/asclepius-gate")
    ap.add_argument("--tokens", type=int, default=2048)
    args = ap.parse_args(argv)
    d = Path(args.dir)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    src = build_tiny_llama_gguf(d)
    good = {q: quantize_gguf(src, d / f"tiny-{q.lower()}.gguf", q).output for q in ("Q8_0", "Q4_0", "Q4_K_M")}
    q4 = good["Q4_K_M"]
    tensors = {t.name: t for t in gguf.GGUFReader(q4).tensors}
    rng = np.random.default_rng(0)

    def broken(name: str, tensor: str, how: str) -> Path:
        t = tensors[tensor]
        a, n = int(t.data_offset), int(t.n_bytes)
        data = bytearray(q4.read_bytes())
        if how == "flip":
            for i in range(a, a + n, 97):
                data[i] ^= 0xFF
        elif how == "zero":
            data[a : a + n] = bytes(n)
        else:
            data[a : a + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        p = d / name
        p.write_bytes(bytes(data))
        return p

    bad = [
        broken("broken-flipped-output.gguf", "output.weight", "flip"),
        broken("broken-zeroed-output.gguf", "output.weight", "zero"),
        broken("broken-random-embedding.gguf", "token_embd.weight", "random"),
    ]
    t0 = time.perf_counter()
    rows = perplexity_table(src, [*good.values(), *bad], load_notes(limit=40), n_ctx=256, max_tokens=args.tokens)
    seconds = time.perf_counter() - t0
    gates, _ = ppl_gates(rows)
    print(f"reference {src.name}: perplexity {rows[0].ppl:.3f} over {rows[0].n_tokens} tokens ({seconds:.1f} s)")
    print("| file | type | perplexity | change vs F32 | limit | verdict |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r, g in zip(rows[1:], gates, strict=True):
        print(
            f"| {r.path.name} | {r.file_type} | {r.ppl:.3f} | {g.rel_delta:+.2%} | ±{g.limit:.2%} | "
            f"{'PASS' if g.ok else 'FAIL'} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
