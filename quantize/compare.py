"""``asclepius quantize compare``: how far a candidate GGUF's next-token distributions are from a reference's.

The text is cut into chunks the way llama.cpp's ``llama-perplexity`` cuts it, so the figures can be set side by
side with ``llama-perplexity --kl-divergence-base``/``--kl-divergence`` on the same file, context and threads:

* every note is tokenized with the reference's own vocabulary (BOS added, special tokens not parsed, one
  trailing newline dropped as ``llama-perplexity -f`` drops it); several notes are joined as token streams,
  so each note starts with its own BOS;
* the stream is cut into ``floor(tokens / ctx)`` chunks of exactly ``ctx`` tokens (the tail is not scored and
  is reported), the first token of each chunk replaced by BOS;
* each chunk is evaluated from an empty KV cache, and the predictions at positions ``ctx/2 .. ctx-2`` are
  scored (the second half: every scored token has at least ``ctx/2`` tokens of context).

Memory: both models are loaded (memory-mapped) and run chunk by chunk; only the scored positions' logits are
requested from llama.cpp, and they are read where llama.cpp keeps them (a view of its output buffer, which a
context keeps until its own next decode), so nothing beyond one chunk's logits per model ever exists, and
between chunks only one float per position is kept. The alternative, a pass over the reference that keeps
a compressed distribution per position (llama-perplexity writes 16-bit log-probabilities to a file of
positions x vocabulary; a top-k keeps only the head), trades the second model's memory for disk or for an
approximate KL: the exact figure needs every probability of both models at the same position, and a machine
that can run the reference at all can map the (smaller) quantized candidate beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from quantize.compare_stats import KLAccumulator, KLSummary
from quantize.errors import NotesError, QuantizeError, QuantizeUsageError

Progress = Callable[[str, int, int], None]


class LogitsSource(Protocol):
    """Something that evaluates chunks from an empty context and returns the logits of chosen positions."""

    n_vocab: int

    def chunk_logits(self, chunks: Sequence[Sequence[int]], first: int) -> Any:
        """Logits (rows x n_vocab, float32) of positions ``first .. len(chunk) - 2`` of each chunk, in order.

        The array may be a view that is valid only until this source's next call."""
        ...


@dataclass(frozen=True)
class CompareOptions:
    """One ``quantize compare`` run."""

    reference: Path
    """The GGUF whose distributions are taken as truth (the F16/F32/BF16 source)."""
    candidate: Path
    """The GGUF measured against it (a quantization of the same model)."""
    notes: tuple[Path, ...]
    """CSV/text files or folders of notes (``quantize.notes.iter_notes``)."""
    ctx: int = 512
    """Tokens per chunk (llama-perplexity's ``-c``)."""
    batch: int | None = None
    """Tokens per decode call (llama-perplexity's ``-b``): ``batch // ctx`` chunks go into one call as
    separate sequences. None: ``ctx``, one chunk per call (the smallest logits buffer)."""
    threads: int | None = None
    """CPU threads for llama.cpp (None: llama-cpp-python's default)."""

    def __post_init__(self) -> None:
        if self.ctx < 4:
            raise QuantizeUsageError(f"--ctx must be at least 4 tokens, not {self.ctx}")
        if self.batch is not None and self.batch < 1:
            raise QuantizeUsageError(f"--batch must be positive, not {self.batch}")

    @property
    def first(self) -> int:
        """The first scored position of a chunk."""
        return self.ctx // 2

    @property
    def sequences(self) -> int:
        """Chunks evaluated per decode call."""
        return max(1, (self.batch or self.ctx) // self.ctx)


@dataclass(frozen=True)
class CompareResult:
    """The figures of one comparison, with what they were measured on."""

    reference: str
    candidate: str
    ctx: int
    chunks: int
    tokens: int
    """Tokens the notes gave (BOS included)."""
    tokens_unscored: int
    """The tail after the last whole chunk, which is not evaluated."""
    n_vocab: int
    figures: KLSummary
    """KL divergence, top-1 agreement and perplexities over the scored positions."""
    seconds: float
    """Wall time of loading, evaluating and scoring (tokenization and the vocabulary check included)."""

    def to_json(self) -> dict[str, Any]:
        """Flat: the figures sit at the top level (``kl_mean``, ``kl_p99``, ``top1_agreement``, ``ppl_ratio``...)."""
        out = asdict(self)
        out.update(out.pop("figures"))
        return out

    def format(self) -> str:
        f = self.figures
        return "\n".join(
            [
                f"reference  {self.reference}",
                f"candidate  {self.candidate}",
                f"scored     {f.positions:,} positions in {self.chunks} chunks of {self.ctx} tokens "
                f"({self.tokens:,} tokens, {self.tokens_unscored} in the unscored tail)",
                f"KL divergence (nats)  mean {f.kl_mean:.6f}  median {f.kl_median:.6f}  "
                f"p99 {f.kl_p99:.6f}  max {f.kl_max:.6f}",
                f"top-1 agreement       {f.top1_agreement:.4%}",
                f"perplexity            reference {f.ppl_ref:.4f}  candidate {f.ppl_candidate:.4f}  "
                f"ratio {f.ppl_ratio:.6f}",
                f"time                  {self.seconds:.1f} s",
            ]
        )


@dataclass(frozen=True)
class Vocabulary:
    """What must be equal in two files for their next-token distributions to be comparable."""

    tokens: tuple[bytes, ...]
    """Every token's text, by id."""
    kind: int
    """llama.cpp's vocabulary type (SentencePiece, BPE, ...)."""
    bos: int | None
    """The BOS id the model adds in front of a text, or None when it adds none."""


def vocabulary_mismatch(ref: Vocabulary, cand: Vocabulary) -> str | None:
    """Why two vocabularies differ (None when they are the same): compared token by token, because a KL
    divergence between two distributions is only defined over the same outcomes."""
    a, b = ref.tokens, cand.tokens
    if len(a) != len(b):
        return f"{len(a):,} tokens in the reference, {len(b):,} in the candidate"
    if a != b:
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        return f"token {i} is {a[i]!r} in the reference, {b[i]!r} in the candidate"
    if ref.kind != cand.kind:
        return f"tokenizer type {ref.kind} in the reference, {cand.kind} in the candidate"
    if ref.bos != cand.bos:
        return f"BOS added {ref.bos} in the reference, {cand.bos} in the candidate"
    return None


def check_header(path: Path) -> None:
    """A file that exists and reads as a GGUF header (the fast scan: GGUFReader takes about a minute over
    a 262k-token vocabulary), or a QuantizeError; llama.cpp checks the tensor data when it loads."""
    from quantize.gguf_io import scan_layout

    if not path.is_file():
        raise QuantizeError(f"{path}: no such file")
    try:
        layout = scan_layout(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise QuantizeError(f"{path}: not a readable GGUF file ({exc})") from None
    if not layout.tensors:
        raise QuantizeError(f"{path}: the GGUF holds no tensors (a vocabulary-only file?)")


def note_stream(tokenize: Callable[[str], list[int]], notes: Sequence[tuple[str, str]]) -> list[int]:
    """The token stream of the notes: each tokenized with BOS, one trailing newline dropped (as
    ``llama-perplexity -f`` drops it, so one text file gives the same tokens to both tools)."""
    stream: list[int] = []
    for _, text in notes:
        stream += tokenize(text.removesuffix("\n"))
    return stream


def make_chunks(stream: Sequence[int], ctx: int, bos: int | None) -> list[list[int]]:
    """Whole chunks of ``ctx`` tokens, each starting with ``bos`` (when the model adds one), as
    llama-perplexity builds them; the tail shorter than ``ctx`` is left out."""
    chunks = [list(stream[i : i + ctx]) for i in range(0, len(stream) - ctx + 1, ctx)]
    if bos is not None:
        for c in chunks:
            c[0] = bos
    return chunks


def score_chunks(
    ref: LogitsSource,
    cand: LogitsSource,
    chunks: Sequence[Sequence[int]],
    first: int,
    per_call: int = 1,
    progress: Progress | None = None,
) -> KLSummary:
    """Run both sources over the chunks (``per_call`` at a time) and return the ``KLSummary``."""
    import numpy as np

    acc = KLAccumulator()
    for i in range(0, len(chunks), per_call):
        group = chunks[i : i + per_call]
        a = ref.chunk_logits(group, first)
        b = cand.chunk_logits(group, first)
        targets = np.concatenate([np.asarray(c[first + 1 :], dtype=np.int64) for c in group])
        acc.add(a, b, targets)
        if progress:
            progress("chunks", min(i + per_call, len(chunks)), len(chunks))
    return acc.summary()


def compare(opts: CompareOptions, progress: Progress | None = None) -> CompareResult:
    """Measure ``opts.candidate`` against ``opts.reference`` over the notes."""
    from quantize.compare_llama import LlamaLogits, load_vocabulary

    t0 = time.perf_counter()
    for path in (opts.reference, opts.candidate):
        check_header(path)
    notes = read_notes(opts.notes)
    ref_vocab, tokenize = load_vocabulary(opts.reference)
    cand_vocab, _ = load_vocabulary(opts.candidate)
    why = vocabulary_mismatch(ref_vocab, cand_vocab)
    if why:
        raise QuantizeUsageError(
            f"{opts.reference.name} and {opts.candidate.name} have different vocabularies ({why}); the KL "
            "divergence compares next-token distributions over the same tokens: compare files of one model"
        )
    stream = note_stream(tokenize, notes)
    chunks = make_chunks(stream, opts.ctx, ref_vocab.bos)
    if not chunks:
        raise NotesError(
            f"the notes give {len(stream):,} tokens, fewer than one chunk of --ctx {opts.ctx}: lower --ctx or add notes"
        )
    n = opts.sequences
    with (
        LlamaLogits(opts.reference, opts.ctx, n, opts.threads) as ref,
        LlamaLogits(opts.candidate, opts.ctx, n, opts.threads) as cand,
    ):
        if ref.n_vocab != cand.n_vocab:  # the header check above makes this unreachable for sane files
            raise QuantizeUsageError(f"vocabularies differ: {ref.n_vocab:,} and {cand.n_vocab:,} logits")
        s = score_chunks(ref, cand, chunks, opts.first, n, progress)
        n_vocab = ref.n_vocab
    return CompareResult(
        reference=str(opts.reference),
        candidate=str(opts.candidate),
        ctx=opts.ctx,
        chunks=len(chunks),
        tokens=len(stream),
        tokens_unscored=len(stream) - len(chunks) * opts.ctx,
        n_vocab=n_vocab,
        figures=s,
        seconds=time.perf_counter() - t0,
    )


def read_notes(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """Every note of every path, or a NotesError naming the path that gave none or could not be read."""
    from quantize.notes import iter_notes

    notes: list[tuple[str, str]] = []
    for p in paths:
        try:
            found = [(src, text) for src, text in iter_notes(Path(p)) if text.strip()]
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise NotesError(f"cannot read notes from {p}: {exc}") from None
        if not found:
            raise NotesError(f"no notes found in {p} (empty file or no note rows)")
        notes += found
    if not notes:
        raise NotesError("no notes given")
    return notes
