"""Proving a GGUF computes what its HF checkpoint computes: logits, greedy text, tokenizer, perplexity.

Tolerances are on ``max |logit_gguf - logit_hf| / max |logit_hf|`` over every position of every prompt:

* F32 (``1e-4``): both sides compute in float32 from the same float32 weights (and the llama.cpp K/V cache
  is set to F32 for the check); what differs is summation order (ggml's blocked SIMD dot products vs.
  torch's GEMM) and ggml's own RMSNorm/softmax/rope kernels. Those are float32 rounding effects, ~1e-7
  relative per op (measured 7e-7 on the 2-layer test models), growing with depth; a conversion bug (a
  wrong Q/K permutation, a swapped tensor, a missing norm) moves logits by O(1).
* F16 (``2e-2``): every weight is rounded to 11 significant bits (relative error up to 2^-11 = 4.9e-4), and
  ggml's CPU matmul rounds the activations to F16 too before the dot product; the two errors compound
  through every layer and the final projection over the vocabulary (measured 1.3e-3 on 2 layers). 2e-2
  leaves room for that on 32-layer models while still failing on any layout error, 50x larger.

Greedy continuations (32 tokens) must be identical at both precisions. When they are not, the report gives
the step and HF's top-1/top-2 margin there, so a near-tie can be told from a real divergence.

Quantized files are held to a perplexity gate against their F16/F32/BF16 source, on held-out notes (the same
token windows for both). The limit on the relative change ``ppl_quant / ppl_source - 1`` (either way) per type is
``max(GATE_FLOOR, GATE_FACTOR * published delta / published F16 perplexity)``, from llama.cpp's own published
figures: the deltas its ``llama-quantize`` lists per type ("+0.1754 ppl @ Llama-3-8B" for Q4_K_M; wikitext-2,
context 512) over the F16 perplexity of that model in llama.cpp's perplexity scoreboard (6.233160). So Q4_K_M
may lose up to 3 x 2.8% = 8.4%, Q4_0 3 x 7.5% = 22.5%, Q8_0 (0.04% published) the 1% floor. The factor of 3
leaves room for what differs here: a few thousand tokens of clinical notes instead of the whole wikitext test
set (sampling noise), and 7B LLaMA-1/2 models, which lose somewhat more to quantization than Llama-3-8B per
the same tables. A broken quantization (a wrong block layout, corrupted scales, a swapped tensor) moves
perplexity by far more than that, or to NaN, which always fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantize.errors import NotesError, QuantizeUsageError

TOLERANCES = {"ALL_F32": 1e-4, "MOSTLY_F16": 2e-2, "MOSTLY_BF16": 4e-2}
"""BF16 keeps 8 significant bits (2^-8 = 3.9e-3 relative per weight): twice F16's tolerance."""

PUBLISHED_PPL_DELTA = {
    "Q4_0": 0.4685,
    "Q4_K_S": 0.2689,
    "Q4_K_M": 0.1754,
    "Q5_0": 0.1316,
    "Q5_K_S": 0.1049,
    "Q5_K_M": 0.0569,
    "Q6_K": 0.0217,
    "Q8_0": 0.0026,
}
"""Perplexity increase over F16 that llama.cpp's ``llama-quantize`` publishes per type (Llama-3-8B, wikitext-2)."""
PUBLISHED_F16_PPL = 6.233160
"""Llama-3-8B F16 perplexity on wikitext-2 in llama.cpp's perplexity scoreboard: the base of those deltas."""
GATE_FACTOR = 3.0
GATE_FLOOR = 0.01
"""1%: below this, a few thousand tokens cannot tell a real loss from noise."""
GREEDY_TOKENS = 32
GGML_TYPE_F32 = 0
Log = Callable[[str], None]


def load_llama(path: Path, n_ctx: int = 512, logits_all: bool = True, vocab_only: bool = False) -> Any:
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_ctx,
        logits_all=logits_all,
        vocab_only=vocab_only,
        n_threads=None,
        verbose=False,
        seed=0,
        # llama.cpp keeps K/V in F16 by default, which alone costs ~5e-4 relative: verification
        # compares the weights' conversion, so the cache must not add its own rounding.
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
    )


def gguf_logits(llm: Any, ids: Sequence[int]) -> Any:
    import numpy as np

    llm.reset()
    llm.eval(list(ids))
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def hf_logits(model: Any, ids: Sequence[int]) -> Any:
    import torch

    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits[0].float().numpy()


def greedy_gguf(llm: Any, ids: Sequence[int], n: int = GREEDY_TOKENS) -> list[int]:
    import numpy as np

    llm.reset()
    llm.eval(list(ids))
    out = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return out


def greedy_hf(model: Any, ids: Sequence[int], n: int = GREEDY_TOKENS) -> tuple[list[int], list[float]]:
    """Greedy tokens (EOS not special: both sides run the full n) and the top-1/top-2 margin per step."""
    import torch

    out, margins = [], []
    with torch.no_grad():
        res = model(torch.tensor([list(ids)]), use_cache=True)
        for _ in range(n):
            logits = res.logits[0, -1].float()
            top = torch.topk(logits, 2)
            tok = int(top.indices[0])
            out.append(tok)
            margins.append(float(top.values[0] - top.values[1]))
            res = model(torch.tensor([[tok]]), past_key_values=res.past_key_values, use_cache=True)
    return out, margins


@dataclass
class PromptCheck:
    label: str
    n_tokens: int
    rel_err: float
    max_abs: float
    argmax_agree: float
    greedy_equal: bool
    first_diff: int | None = None
    margin_at_diff: float | None = None


@dataclass
class NumericsReport:
    gguf: Path
    file_type: str
    tolerance: float
    prompts: list[PromptCheck] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max((p.rel_err for p in self.prompts), default=math.inf)

    @property
    def ok(self) -> bool:
        return bool(self.prompts) and self.worst <= self.tolerance and all(p.greedy_equal for p in self.prompts)

    def format(self) -> str:
        lines = [f"numerics: {self.gguf.name} ({self.file_type}), tolerance {self.tolerance:g} (max|diff|/max|logit|)"]
        for p in self.prompts:
            g = (
                "greedy identical"
                if p.greedy_equal
                else (f"greedy differs at step {p.first_diff} (HF top-2 margin {p.margin_at_diff:.4g})")
            )
            lines.append(
                f"  {p.label:<24} {p.n_tokens:>4} tok  rel {p.rel_err:.2e}  max|diff| {p.max_abs:.3e}  "
                f"argmax agree {p.argmax_agree:.1%}  {g}"
            )
        lines.append(f"  => {'PASS' if self.ok else 'FAIL'} (worst {self.worst:.2e})")
        return "\n".join(lines)


def file_type_name(path: Path) -> str:
    import gguf

    from quantize.gguf_io import inspect_gguf

    ft = inspect_gguf(path).metadata.get("general.file_type", 0)
    return gguf.LlamaFileType(ft).name


def load_hf(checkpoint: Path, dtype: str = "float32") -> tuple[Any, Any]:
    """The HF model and tokenizer of a local checkpoint directory; never a download.

    transformers takes a path that does not exist for a model id and asks the hub (blocked here, after
    retries, as a connection error): the directory is checked first, and the loaders may not look online."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantize.checkpoint import checkpoint_files

    checkpoint_files(Path(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(
        checkpoint, dtype=getattr(torch, dtype), attn_implementation="eager", local_files_only=True
    ).eval()
    tok = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    return model, tok


_SHAPE = (
    ("vocab_size", "vocab_size", "vocabulary"),
    ("hidden_size", "embedding_length", "width"),
    ("num_hidden_layers", "block_count", "layers"),
    ("intermediate_size", "feed_forward_length", "feed-forward width"),
    ("num_attention_heads", "attention.head_count", "heads"),
    ("num_key_value_heads", "attention.head_count_kv", "KV heads"),
)
"""(HF config attribute, GGUF key after ``<arch>.``, what it is) for the shape a converted file keeps."""


def checkpoint_mismatch(hf_config: Any, gguf_path: Path) -> str | None:
    """How a GGUF's shape differs from a checkpoint's (None when it does not): a file converted from another
    checkpoint. Checked before any prompt is evaluated, because llama.cpp refuses a token id beyond its
    vocabulary (``llama_decode returned -1``) instead of computing different logits."""
    from quantize.gguf_io import inspect_gguf

    meta = inspect_gguf(gguf_path).metadata
    arch = meta.get("general.architecture")
    gguf_values = {key: meta.get(f"{arch}.{key}") for _, key, _ in _SHAPE}
    if gguf_values["vocab_size"] is None:
        gguf_values["vocab_size"] = len(meta.get("tokenizer.ggml.tokens") or ()) or None
    diffs = []
    for attr, key, what in _SHAPE:
        hf_value = getattr(hf_config, attr, None)
        if attr == "num_key_value_heads" and hf_value is None:
            hf_value = getattr(hf_config, "num_attention_heads", None)
        if hf_value is not None and gguf_values[key] is not None and int(hf_value) != int(gguf_values[key]):
            diffs.append(f"{what} {hf_value} in the checkpoint, {gguf_values[key]} in the file")
    return "; ".join(diffs) or None


def verify_numerics(
    checkpoint: Path,
    gguf_path: Path,
    prompts: Sequence[tuple[str, str]],
    max_tokens: int = 128,
    hf: tuple[Any, Any] | None = None,
    tolerance: float | None = None,
    greedy_tokens: int = GREEDY_TOKENS,
) -> NumericsReport:
    """Compare logits and greedy continuations on each ``(label, text)`` prompt (BOS + text, truncated)."""
    import numpy as np

    model, tok = hf or load_hf(checkpoint)
    ftype = file_type_name(gguf_path)
    tol = tolerance if tolerance is not None else TOLERANCES.get(ftype)
    if tol is None:
        raise QuantizeUsageError(
            f"{gguf_path.name} is {ftype}: numerics are checked on F32/F16/BF16 files; "
            "use perplexity for quantized ones"
        )
    report = NumericsReport(gguf_path, ftype, tol)
    llm = load_llama(gguf_path, n_ctx=max_tokens + greedy_tokens + 8)
    for label, text in prompts:
        ids = [tok.bos_token_id, *tok(text, add_special_tokens=False).input_ids][:max_tokens]
        a, b = hf_logits(model, ids), gguf_logits(llm, ids)
        diff = float(np.abs(a - b).max())
        rel = diff / max(float(np.abs(a).max()), 1e-12)
        agree = float((a.argmax(-1) == b.argmax(-1)).mean())
        g_hf, margins = greedy_hf(model, ids, greedy_tokens)
        g_gg = greedy_gguf(llm, ids, greedy_tokens)
        first = next((i for i, (x, y) in enumerate(zip(g_hf, g_gg, strict=True)) if x != y), None)
        report.prompts.append(
            PromptCheck(
                label,
                len(ids),
                rel,
                diff,
                agree,
                first is None,
                first,
                margins[first] if first is not None else None,
            )
        )
    return report


@dataclass
class ParityReport:
    n_notes: int
    n_tokens: int
    mismatches: list[tuple[str, int, list[int], list[int]]] = field(default_factory=list)
    """(source, first differing position, HF ids around it, llama.cpp ids around it)."""

    @property
    def ok(self) -> bool:
        return self.n_notes > 0 and not self.mismatches

    def format(self, tok: Any | None = None) -> str:
        lines = [
            f"tokenizer parity: {self.n_notes} notes, {self.n_tokens:,} tokens, "
            f"{len(self.mismatches)} mismatching notes => {'PASS' if self.ok else 'FAIL'}"
        ]
        for src, pos, a, b in self.mismatches[:5]:
            extra = ""
            if tok is not None:
                extra = f"  HF {tok.convert_ids_to_tokens(a)!r} vs llama.cpp {tok.convert_ids_to_tokens(b)!r}"
            lines.append(f"  {src}: first difference at token {pos}: HF {a} vs llama.cpp {b}{extra}")
        return "\n".join(lines)


def tokenizer_parity(tok: Any, gguf_path: Path, notes: Sequence[tuple[str, str]]) -> ParityReport:
    """llama.cpp's tokenization (vocab only, no special-token parsing) against the HF tokenizer's."""
    llm = load_llama(gguf_path, n_ctx=64, logits_all=False, vocab_only=True)
    report = ParityReport(len(notes), 0)
    for src, text in notes:
        a = tok(text, add_special_tokens=False).input_ids
        b = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        report.n_tokens += len(a)
        if a != b:
            pos = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            report.mismatches.append((src, pos, a[max(0, pos - 2) : pos + 3], b[max(0, pos - 2) : pos + 3]))
    return report


@dataclass
class PplRow:
    path: Path
    file_type: str
    size: int
    ppl: float
    n_tokens: int


def ppl_limit(file_type: str) -> float | None:
    """The largest relative perplexity increase a file of this type may show, or None (no published figure)."""
    delta = PUBLISHED_PPL_DELTA.get(file_type.removeprefix("MOSTLY_"))
    if delta is None:
        return None
    return max(GATE_FLOOR, GATE_FACTOR * delta / PUBLISHED_F16_PPL)


@dataclass(frozen=True)
class GateResult:
    path: Path
    file_type: str
    rel_delta: float
    limit: float

    @property
    def ok(self) -> bool:
        # Two-sided: quantization rounds weights, it does not make a model better by whole percents; a
        # file far below its source computes something else (a zeroed output tensor gives the uniform
        # distribution's perplexity, the vocabulary size). NaN and inf fail.
        return math.isfinite(self.rel_delta) and abs(self.rel_delta) <= self.limit

    def format(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        return (
            f"perplexity gate: {self.path.name} ({self.file_type}) {self.rel_delta:+.2%} vs the reference, "
            f"limit ±{self.limit:.2%} => {verdict}"
        )


def ppl_gates(rows: Sequence[PplRow]) -> tuple[list[GateResult], list[PplRow]]:
    """Gate every quantized row against the reference row (the first); also return rows no gate covers."""
    ref, gated, ungated = rows[0], [], []
    for r in rows[1:]:
        limit = ppl_limit(r.file_type)
        if limit is None:
            ungated.append(r)
            continue
        rel = r.ppl / ref.ppl - 1 if math.isfinite(ref.ppl) and ref.ppl > 0 else math.nan
        gated.append(GateResult(r.path, r.file_type, rel, limit))
    return gated, ungated


def perplexity(gguf_path: Path, token_chunks: Sequence[Sequence[int]], n_ctx: int) -> tuple[float, int]:
    """exp(mean NLL) of every token after the first in each chunk (each chunk evaluated from scratch)."""
    import numpy as np

    llm = load_llama(gguf_path, n_ctx=n_ctx)
    nll, count = 0.0, 0
    for chunk in token_chunks:
        logits = gguf_logits(llm, chunk).astype(np.float64)
        if not np.isfinite(logits).all():
            return math.nan, sum(len(c) - 1 for c in token_chunks)
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        targets = np.asarray(chunk[1:])
        nll -= float(logp[np.arange(len(targets)), targets].sum())
        count += len(targets)
    mean = nll / max(count, 1)
    return (math.exp(mean) if mean < 700 else math.inf), count  # exp(700) is near float's limit


def make_chunks(reference: Path, notes: Sequence[tuple[str, str]], n_ctx: int, max_tokens: int) -> list[list[int]]:
    """BOS + note tokens, notes concatenated and cut into n_ctx windows (tokenized once, by llama.cpp,
    with the reference file's vocabulary: every compared file shares it)."""
    llm = load_llama(reference, n_ctx=64, logits_all=False, vocab_only=True)
    stream: list[int] = []
    for _, text in notes:
        stream += llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if len(stream) >= max_tokens:
            break
    stream = stream[:max_tokens]
    return [stream[i : i + n_ctx] for i in range(0, len(stream), n_ctx) if len(stream[i : i + n_ctx]) > 1]


def perplexity_table(
    reference: Path,
    others: Sequence[Path],
    notes: Sequence[tuple[str, str]],
    n_ctx: int = 512,
    max_tokens: int = 4096,
    log: Log | None = None,
) -> list[PplRow]:
    chunks = make_chunks(reference, notes, n_ctx, max_tokens)
    if not chunks:
        raise NotesError("no held-out text to measure perplexity on")
    rows = []
    for p in [reference, *others]:
        ppl, n = perplexity(p, chunks, n_ctx)
        rows.append(PplRow(p, file_type_name(p), p.stat().st_size, ppl, n))
        if log:
            log(f"  {p.name}: ppl {ppl:.4f} over {n} tokens")
    return rows


def format_ppl_table(rows: Sequence[PplRow]) -> str:
    ref = rows[0]
    lines = [
        "| file | type | size (MB) | perplexity | delta vs reference |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        delta = "reference" if r is ref else f"{r.ppl - ref.ppl:+.4f} ({(r.ppl / ref.ppl - 1) * 100:+.2f}%)"
        lines.append(f"| {r.path.name} | {r.file_type} | {r.size / 1e6:,.1f} | {r.ppl:.4f} | {delta} |")
    lines.append(f"({ref.n_tokens:,} scored tokens of held-out notes)")
    return "\n".join(lines)
