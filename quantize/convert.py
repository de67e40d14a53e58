"""HF checkpoint -> F32/F16/BF16 GGUF, streamed in one pass over the sources.

The plan (names, shapes, types) is built and checked from file metadata before a byte is written; the
GGUF header and tensor index are written from the plan, with a placeholder of the same length for each
safetensors file's sha256; then each safetensors file is read once, front to back, in chunks that are
hashed, checked, permuted, cast and written (``quantize.stream``), and the placeholders are overwritten
with the digests of the bytes that were read. The tensors are in file order (as in the files: sorted by
name for ``save_pretrained`` output). PyTorch ``.bin`` checkpoints are hashed in a pass of their own and
loaded one tensor at a time through torch. The file is written under a temporary name, re-read with
GGUFReader and only then renamed into place, so an output path that exists is always a complete, checked
file.
"""

from __future__ import annotations

import errno
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.hashing import sha256_file
from quantize import CONVERTER_VERSION
from quantize.arch import HParams, read_hparams
from quantize.checkpoint import Checkpoint, TensorMeta, load_tensor, open_checkpoint
from quantize.errors import QuantizeError, QuantizeUsageError
from quantize.gguf_io import (
    KEY_CONVERTER,
    KEY_SOURCE_DTYPE,
    KEY_SOURCE_FILES,
    KEY_SOURCE_FORMAT,
    KEY_SOURCE_SHA256,
    atomic_output,
    output_dir,
)
from quantize.stream import OUT_DTYPE, ChunkConverter, FileDone, Piece, SourceFile, SourceStream, TensorDataWriter
from quantize.vocab import VocabInfo, load_vocab
from resources.prompts import KEY_PROMPT_STYLE, KEY_PROMPT_STYLE_VERSION

OUT_TYPES = ("auto", "f32", "f16", "bf16")
Progress = Callable[[str, int, int], None]
"""``progress(message, done, total)``; done/total in bytes of tensor data."""

# HF tensors that are not weights: rotary inverse frequencies saved as buffers by transformers < 4.31.
DROPPED_SUFFIXES = (".rotary_emb.inv_freq",)


@dataclass
class ConvertOptions:
    checkpoint: Path
    output: Path
    out_type: str = "auto"
    """``auto`` (F16 for fp32/fp16 sources, BF16 for bf16 sources), ``f32``, ``f16`` or ``bf16``."""
    name: str | None = None
    """``general.name``; defaults to the checkpoint directory's name."""
    prompt_style: str | None = None
    """Prompt style id from ``resources.prompts``, written as ``asclepius.prompt_style``; None: the one the
    checkpoint's training manifest records, else ``asclepius``."""
    base_model: str | None = None
    license: str | None = None
    force: bool = False
    """Replace an existing output file."""
    progress: Progress | None = None

    def __post_init__(self) -> None:
        from quantize.checkpoint import manifest_prompt_style
        from resources.prompts import get_style

        self.checkpoint, self.output = Path(self.checkpoint), Path(self.output)
        if self.prompt_style is None:
            self.prompt_style = manifest_prompt_style(self.checkpoint) or "asclepius"
        problems = []
        if self.out_type not in OUT_TYPES:
            problems.append(f"output type {self.out_type!r} is not one of {', '.join(OUT_TYPES)}")
        try:
            get_style(self.prompt_style)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
        if self.output.suffix != ".gguf":
            problems.append(f"output {self.output} should end in .gguf")
        if problems:
            raise QuantizeUsageError("; ".join(problems))


@dataclass(frozen=True)
class TensorPlan:
    meta: TensorMeta
    gguf_name: str
    kind: str
    """``gguf.MODEL_TENSOR`` member name (``ATTN_Q``...)."""
    out_type: str
    """``f32``, ``f16`` or ``bf16``; 1-D tensors (norms) are always F32."""
    permute_heads: int | None
    """Q/K: head count for the rotary permutation (KV heads for K); None for other tensors."""

    @property
    def nbytes(self) -> int:
        return self.meta.numel * (4 if self.out_type == "f32" else 2)


@dataclass
class ConvertResult:
    output: Path
    out_type: str
    n_tensors: int
    tensor_bytes: int
    seconds: float
    source_sha256: dict[str, str]
    notes: list[str] = field(default_factory=list)
    hash_seconds: float = 0.0
    """Time spent in sha256 (for safetensors in the reader thread, overlapping the conversion)."""


def resolve_out_type(ckpt: Checkpoint, requested: str) -> str:
    if requested != "auto":
        return requested
    matrices = [m for m in ckpt.tensors.values() if len(m.shape) == 2]
    bf16 = sum(m.numel for m in matrices if m.dtype == "bfloat16")
    return "bf16" if bf16 * 2 > sum(m.numel for m in matrices) else "f16"


def plan_tensors(ckpt: Checkpoint, hp: HParams, out_type: str) -> list[TensorPlan]:
    """Map every HF tensor to its GGUF name and check it against the config; fail once, listing all."""
    import gguf

    arch = getattr(gguf.MODEL_ARCH, hp.arch.gguf_arch)
    name_map = gguf.get_tensor_name_map(arch, hp.layers)
    plans, problems = [], []
    order = {f: i for i, f in enumerate(ckpt.weight_files)}
    for meta in sorted(ckpt.tensors.values(), key=lambda m: (order[m.file], m.offset, m.name)):
        if meta.name.endswith(DROPPED_SUFFIXES):
            continue
        found = name_map.get_type_and_name(meta.name, try_suffixes=(".weight", ".bias"))
        if found is None:
            problems.append(f"{meta.name}: not a tensor of a {hp.arch.label} model")
            continue
        kind, gguf_name = found[0].name, found[1]
        expected = hp.expected_shape(kind)
        if expected is not None and meta.shape != expected:
            problems.append(f"{meta.name}: shape {list(meta.shape)} but config.json implies {list(expected)}")
        if meta.dtype not in ("float32", "float16", "bfloat16"):
            problems.append(f"{meta.name}: dtype {meta.dtype} (expected float32, float16 or bfloat16)")
        heads = {"ATTN_Q": hp.n_heads, "ATTN_K": hp.n_kv_heads}.get(kind)
        plans.append(TensorPlan(meta, gguf_name, kind, out_type if len(meta.shape) > 1 else "f32", heads))
    have = {p.kind for p in plans}
    need = {"TOKEN_EMBD", "OUTPUT_NORM"} | ({"OUTPUT"} if not hp.tie_embeddings else set())
    problems += [f"missing tensor for {k} (token embedding / final norm / lm_head)" for k in sorted(need - have)]
    per_layer = ("ATTN_NORM", "ATTN_Q", "ATTN_K", "ATTN_V", "ATTN_OUT", "FFN_NORM", "FFN_GATE", "FFN_UP", "FFN_DOWN")
    n_layer_tensors = sum(1 for p in plans if p.kind in per_layer)
    if n_layer_tensors != hp.layers * len(per_layer):
        problems.append(
            f"found {n_layer_tensors} per-layer tensors; config.json's {hp.layers} layers need "
            f"{hp.layers * len(per_layer)}"
        )
    if problems:
        shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
        raise QuantizeError("the checkpoint does not match its config:\n  " + "\n  ".join(shown))
    return plans


def permute_qk(t: Any, n_heads: int) -> Any:
    """HF stores each Q/K head as [first halves of the rotary pairs | second halves] (``rotate_half``);
    llama.cpp's LLaMA rope rotates adjacent pairs, as Meta's original weights are laid out. Interleave the
    two halves back, per head."""
    rows = t.shape[0]
    return t.reshape(n_heads, 2, rows // n_heads // 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def tensor_to_numpy(plan: TensorPlan, t: Any) -> Any:
    import numpy as np
    import torch

    if not bool(torch.isfinite(t).all()):
        raise QuantizeError(f"tensor {plan.meta.name} ({plan.gguf_name}) contains NaN or Inf values")
    if plan.permute_heads:
        t = permute_qk(t, plan.permute_heads)
    if plan.out_type == "f32":
        return t.to(torch.float32).contiguous().numpy()
    if plan.out_type == "bf16":
        return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
    out = t.to(torch.float16)
    if t.dtype != torch.float16 and not bool(torch.isfinite(out).all()):
        raise QuantizeError(
            f"tensor {plan.meta.name} has values beyond the F16 range (65504); convert with --outtype bf16 or f32"
        )
    return out.contiguous().numpy()


def _writer(
    hp: HParams, vocab: VocabInfo, opts: ConvertOptions, out_type: str, ckpt: Checkpoint, hashes: dict[str, str]
) -> Any:
    import gguf

    from resources.prompts import get_style

    w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, hp.arch.gguf_arch)])
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(opts.name or ckpt.path.name)
    w.add_context_length(hp.context)
    w.add_embedding_length(hp.hidden)
    w.add_block_count(hp.layers)
    w.add_feed_forward_length(hp.intermediate)
    w.add_head_count(hp.n_heads)
    w.add_head_count_kv(hp.n_kv_heads)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_rope_dimension_count(hp.head_dim)
    if hp.rope_linear_factor:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp.rope_linear_factor)
    w.add_vocab_size(len(vocab.tokens))
    ftype = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    }[out_type]
    w.add_file_type(ftype)
    w.add_tokenizer_model(vocab.tokenizer_model)
    if vocab.pre:
        w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    vocab.special.add_to_gguf(w, quiet=True)
    if opts.license:
        w.add_license(opts.license)
    if opts.base_model:
        w.add_base_model_count(1)
        w.add_base_model_name(0, opts.base_model)
    style = get_style(opts.prompt_style)
    w.add_string(KEY_PROMPT_STYLE, style.id)
    w.add_string(KEY_PROMPT_STYLE_VERSION, style.version)
    w.add_string(KEY_CONVERTER, CONVERTER_VERSION)
    w.add_string(KEY_SOURCE_FORMAT, ckpt.format)
    w.add_string(KEY_SOURCE_DTYPE, ",".join(sorted({m.dtype for m in ckpt.tensors.values()})))
    w.add_array(KEY_SOURCE_FILES, list(hashes))
    w.add_array(KEY_SOURCE_SHA256, list(hashes.values()))
    return w


def convert_checkpoint(opts: ConvertOptions) -> ConvertResult:
    import numpy as np

    t0 = time.perf_counter()
    report = opts.progress or (lambda msg, done, total: None)
    if opts.output.exists() and not opts.force:
        raise QuantizeUsageError(f"{opts.output} already exists; pass --force to replace it")
    ckpt = open_checkpoint(opts.checkpoint)
    hp = read_hparams(ckpt.config)
    out_type = resolve_out_type(ckpt, opts.out_type)
    plans = plan_tensors(ckpt, hp, out_type)
    vocab = load_vocab(ckpt.path, ckpt.config, hp.vocab_size)
    total = sum(p.nbytes for p in plans)
    output_dir(opts.output.parent)
    # Header, vocabulary and alignment padding: a few MB; 64 MiB of slack covers a 256k vocabulary.
    need = total + (64 << 20)
    free = shutil.disk_usage(opts.output.parent).free
    if free < need:
        raise QuantizeError(
            f"not enough disk space in {opts.output.parent}: the GGUF needs about {need / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB free"
        )
    # Safetensors weights are hashed while they are converted; their digests are written over same-length
    # placeholders at the end. Config and tokenizer files (small) and .bin weights are hashed here.
    t_hash = time.perf_counter()
    hashes: dict[str, str] = {}
    placeholders: dict[str, str] = {}
    for f in ckpt.source_files():
        if f in ckpt.headers:
            hashes[f.name] = placeholders[f.name] = secrets.token_hex(32)
        else:
            hashes[f.name] = sha256_file(f)
    t_hash = time.perf_counter() - t_hash
    writer = _writer(hp, vocab, opts, out_type, ckpt, hashes)
    dtypes = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16}
    for p in plans:
        raw = None
        if p.out_type == "bf16":
            import gguf

            raw = gguf.GGMLQuantizationType.BF16
        writer.add_tensor_info(p.gguf_name, p.meta.shape, np.dtype(dtypes[p.out_type]), p.nbytes, raw_dtype=raw)
    expected = {p.gguf_name: (p.meta.shape, p.out_type) for p in plans}
    with atomic_output(opts.output, expected, required_keys=(KEY_PROMPT_STYLE,)) as tmp:
        try:
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            fout = writer.fout[0]
            fout.flush()
            slots = _placeholder_offsets(tmp, fout.tell(), placeholders)
            data = TensorDataWriter(fout, writer.data_alignment)
            if ckpt.headers:
                digests, streamed_hash_s = _stream_safetensors(ckpt, plans, data, report, total)
                t_hash += streamed_hash_s
            else:
                digests = {}
                _convert_bin(plans, data, report, total)
            for name, digest in digests.items():
                hashes[name] = digest
                fout.seek(slots[name])
                fout.write(digest.encode("ascii"))
            fout.flush()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise QuantizeError(
                    f"disk full while writing {opts.output.name}; the partial file was removed"
                ) from None
            raise
        finally:
            writer.close()
    return ConvertResult(
        opts.output, out_type, len(plans), total, time.perf_counter() - t0, hashes, vocab.notes, t_hash
    )


def _placeholder_offsets(path: Path, header_end: int, placeholders: dict[str, str]) -> dict[str, int]:
    """Where each placeholder digest sits in the written metadata (each occurs exactly once)."""
    with path.open("rb") as fh:
        head = fh.read(header_end)
    out = {}
    for name, ph in placeholders.items():
        at = head.find(ph.encode("ascii"))
        if at < 0 or head.find(ph.encode("ascii"), at + 1) >= 0:
            raise QuantizeError(f"internal error: the sha256 slot for {name} is not unique in the GGUF header")
        out[name] = at
    return out


def _stream_safetensors(
    ckpt: Checkpoint, plans: list[TensorPlan], data: TensorDataWriter, report: Progress, total: int
) -> tuple[dict[str, str], float]:
    """Read every safetensors file once; return {file name: sha256 of its bytes} and the seconds hashed."""
    files = {f: SourceFile(f, ckpt.headers[f]) for f in ckpt.weight_files}
    for i, p in enumerate(plans):
        rows = p.meta.shape[0] if p.meta.shape else 1
        piece = Piece(
            i,
            f"{p.meta.name} ({p.gguf_name})",
            p.meta.offset,
            p.meta.nbytes,
            rows,
            p.meta.numel // rows if rows else 0,
            p.meta.dtype,
            OUT_DTYPE[p.out_type],
            p.permute_heads,
        )
        files[p.meta.file].pieces.append(piece)
    stream = SourceStream(list(files.values()))
    conv = ChunkConverter()
    digests: dict[str, str] = {}
    nxt, done = 0, 0
    try:
        for msg in stream:
            if isinstance(msg, FileDone):
                digests[msg.path.name] = msg.sha256
                continue
            if msg.piece.index != nxt:
                raise QuantizeError(f"internal error: tensor {msg.piece.name} arrived out of plan order")
            try:
                data.write(conv.convert(msg.piece, memoryview(msg.buf)[: msg.n]))
            finally:
                stream.release(msg)
            if msg.last:
                data.end_tensor(msg.piece.out_nbytes)
                nxt += 1
                done += plans[msg.piece.index].nbytes
                report(plans[msg.piece.index].gguf_name, done, total)
    finally:
        stream.close()  # also when an error or Ctrl-C leaves the loop: the reader thread stops now
    if nxt != len(plans):
        raise QuantizeError(f"internal error: {nxt} of {len(plans)} tensors were written")
    return digests, stream.hash_seconds


def _convert_bin(plans: list[TensorPlan], data: TensorDataWriter, report: Progress, total: int) -> None:
    done = 0
    for p in plans:
        arr = tensor_to_numpy(p, load_tensor(p.meta))
        data.write(memoryview(arr.reshape(-1).view("uint8")))
        data.end_tensor(p.nbytes)
        done += p.nbytes
        del arr
        report(p.gguf_name, done, total)
