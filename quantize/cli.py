"""``asclepius quantize convert|quantize|verify|compare|inspect``.

``register(subparsers)`` adds the group to the app's argparse CLI. Nothing heavy is imported until a
handler runs, and a handler that needs the quantize extra says so (exit 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.argtypes import bounded_int, threads
from app.core.bounds import PPL_TOKENS_MAX, PPL_TOKENS_MIN, VERIFY_PROMPTS_MAX, VERIFY_WINDOW_MAX
from app.core.errors import EXIT_TERMINATED, AsclepiusError, Cancelled
from quantize.errors import (
    MissingExtraError,
    NotesError,
    NotVerifiedError,
    QuantizeUsageError,
    VerificationFailed,
)

EXTRA_MESSAGE = "needs the quantize extra: pip install 'asclepius-desk[quantize]'"
EXIT_INTERRUPTED, EXIT_TERMINATED = Cancelled.exit_code, EXIT_TERMINATED
"""Ctrl+C (SIGINT) and SIGTERM (128 + 15); every code is in the app's one table (``app.core.errors``)."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup (partial files, the quantize child) runs."""


def _missing(modules: tuple[str, ...]) -> list[str]:
    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _guarded(needs: tuple[str, ...], fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        missing = _missing(needs)
        if missing:
            print(
                f"asclepius quantize {args.quantize_command} {EXTRA_MESSAGE} (missing: {', '.join(missing)})",
                file=sys.stderr,
            )
            return MissingExtraError.exit_code
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            return fn(args)
        except AsclepiusError as exc:  # QuantizeError, and OutputError from the private-file writer
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except ImportError as exc:
            print(f"asclepius quantize {args.quantize_command} {EXTRA_MESSAGE} ({exc})", file=sys.stderr)
            return MissingExtraError.exit_code
        except KeyboardInterrupt:
            print("interrupted (SIGINT); nothing was left half-written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated:
            print("terminated (SIGTERM); nothing was left half-written", file=sys.stderr)
            return EXIT_TERMINATED
        finally:
            signal.signal(signal.SIGTERM, previous)

    handler.__name__ = fn.__name__
    return handler


class _Progress:
    """A tqdm bar on stderr (created on the first report); ``unit`` names what ``done``/``total`` count."""

    def __init__(self, label: str, quiet: bool = False, unit: str = "B"):
        self.label, self.quiet, self.unit = label, quiet, unit
        self.bar: Any = None

    def __call__(self, msg: str, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            scale = self.unit == "B"
            self.bar = tqdm(
                total=total, desc=self.label, unit=self.unit, unit_scale=scale, file=sys.stderr, mininterval=0.5
            )
        self.bar.set_postfix_str(msg, refresh=False)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _clean_partials(directories: list[Path]) -> None:
    from quantize.gguf_io import clean_stale_partials

    for d in dict.fromkeys(p.resolve() for p in directories):
        for stale in clean_stale_partials(d):
            print(f"note: {stale.describe()}", file=sys.stderr)


TORCH_NEEDS = ("torch", "safetensors", "numpy", "gguf")
VERIFY_NEEDS = (*TORCH_NEEDS, "transformers", "llama_cpp")


def cmd_convert(args: argparse.Namespace) -> int:
    ckpt = Path(args.checkpoint)
    named = Path(args.adapter) if args.adapter else ckpt  # a merge is named after its adapter
    out = Path(args.output) if args.output else named.parent / f"{named.name}-{args.outtype}.gguf"
    _clean_partials([out.parent])
    if not args.adapter:
        return _convert(args, ckpt, out, args.name)
    import shutil
    import tempfile

    from quantize.adapter import check_adapter_dir, write_merged
    from quantize.checkpoint import checkpoint_files
    from quantize.gguf_io import output_dir

    check_adapter_dir(named)
    checkpoint_files(ckpt)
    if out.exists() and not args.force:  # before the merge, which takes minutes for a 7B base
        raise QuantizeUsageError(f"{out} already exists; pass --force to replace it")
    # Beside the output (a merged 7B is 13-27 GB; /tmp may be small), removed whatever happens.
    merge_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.merge-", dir=output_dir(out.parent)))
    try:
        print(f"merging {named} into {ckpt} (in {merge_dir})", file=sys.stderr)
        write_merged(ckpt, named, merge_dir)
        return _convert(args, merge_dir, out, args.name or named.name)
    finally:
        shutil.rmtree(merge_dir, ignore_errors=True)


def _convert(args: argparse.Namespace, ckpt: Path, out: Path, name: str | None) -> int:
    from quantize.convert import ConvertOptions, convert_checkpoint

    bar = _Progress("convert", args.quiet)
    opts = ConvertOptions(
        ckpt,
        out,
        out_type=args.outtype,
        name=name,
        prompt_style=args.prompt_style,
        base_model=args.base_model,
        license=args.license,
        force=args.force,
        progress=bar,
    )
    try:
        r = convert_checkpoint(opts)
    finally:
        bar.close()
    for note in r.notes:
        print(f"note: {note}", file=sys.stderr)
    gb = r.tensor_bytes / 1e9
    print(f"wrote {r.output} ({r.out_type.upper()}, {r.n_tensors} tensors, {gb:.2f} GB, {r.seconds:.1f} s)")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from quantize.gguf_io import output_dir
    from quantize.quant import check_source, default_output, quantize_gguf, write_manifest

    inp = Path(args.input)
    types = args.type or ["Q4_K_M"]
    if args.output and len(types) > 1:
        raise QuantizeUsageError("--output names one file; with several --type values use --out-dir")
    outputs = []
    for q in types:
        out = Path(args.output) if args.output else default_output(inp, q)
        outputs.append(Path(args.out_dir) / out.name if args.out_dir else out)
    check_source(inp)  # a wrong input is refused before any output folder is created
    for out in outputs:
        output_dir(out.parent)
    _clean_partials([o.parent for o in outputs])
    results = []
    for q, out in zip(types, outputs, strict=True):
        bar = _Progress(f"quantize {q}", args.quiet, unit="tensor")
        try:
            r = quantize_gguf(inp, out, q, threads=args.threads or 0, force=args.force, progress=bar)
        finally:
            bar.close()
        print(f"wrote {r.output} ({r.qtype}, {r.size / 1e6:,.1f} MB, {r.seconds:.1f} s)")
        results.append(r)
    manifest = write_manifest(inp, results)
    print(f"manifest: {manifest}")
    return 0


def _load_notes(path: Path) -> list[tuple[str, str]]:
    from quantize.notes import load_notes

    try:
        notes = load_notes(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotesError(f"cannot read held-out notes from {path}: {exc}") from None
    if not notes:
        raise NotesError(f"no notes found in {path}")
    return notes


def cmd_verify(args: argparse.Namespace) -> int:
    """Run every check the arguments allow; PASS only when each file got each check that applies to it."""
    from quantize import verify as v
    from quantize.notes import default_notes_dir

    files = [Path(p) for p in args.gguf]
    notes_path = Path(args.notes) if args.notes else default_notes_dir()
    notes = _load_notes(notes_path)
    failed: list[str] = []
    not_checked: list[str] = []
    full = [f for f in files if v.file_type_name(f) in v.TOLERANCES]
    quantized = [f for f in files if f not in full]
    if args.checkpoint:
        failed += _against_checkpoint(args, full, (full or files)[0], notes)
    else:
        not_checked += [f"{f.name}: logits, greedy text and tokenizer (no --checkpoint given)" for f in full]
    if quantized:
        ref = Path(args.reference) if args.reference else (full[0] if full else None)
        if ref is None:
            not_checked += [
                f"{f.name}: perplexity gate (no F16/F32 source: pass --reference or list the source GGUF too)"
                for f in quantized
            ]
        else:
            if v.file_type_name(ref) not in v.TOLERANCES:
                raise QuantizeUsageError(f"--reference {ref.name} is quantized; give the F32/F16/BF16 source GGUF")
            held_out = notes if args.notes else _held_out(notes_path)
            log = None if args.quiet else (lambda m: print(m, file=sys.stderr))
            rows = v.perplexity_table(ref, quantized, held_out, n_ctx=args.ctx, max_tokens=args.ppl_tokens, log=log)
            print(v.format_ppl_table(rows))
            gates, ungated = v.ppl_gates(rows)
            for g in gates:
                print(g.format())
                if not g.ok:
                    failed.append(f"{g.path.name}: perplexity {g.rel_delta:+.2%} vs its source (limit ±{g.limit:.2%})")
            not_checked += [f"{r.path.name}: perplexity gate (no published figure for {r.file_type})" for r in ungated]
    return _verdict(failed, not_checked)


def _against_checkpoint(
    args: argparse.Namespace, full: list[Path], first: Path, notes: list[tuple[str, str]]
) -> list[str]:
    """Logits and greedy text of each F32/F16/BF16 file, and the tokenizer of ``first``, against the HF
    checkpoint; returns what failed. A file whose shape is not the checkpoint's fails here, unevaluated:
    llama.cpp cannot even decode a token id beyond its vocabulary."""
    from quantize import verify as v

    ckpt = Path(args.checkpoint)
    model, tok = v.load_hf(ckpt, args.hf_dtype)
    failed: list[str] = []
    mismatch = {f: v.checkpoint_mismatch(model.config, f) for f in dict.fromkeys([*full, first])}
    for f, why in mismatch.items():
        if why:
            failed.append(f"{f.name}: not converted from the checkpoint {ckpt} ({why})")
    prompts = _prompts(notes, args.prompts)
    # A bfloat16 reference rounds the HF weights itself: hold every file to the BF16 tolerance then.
    tol = v.TOLERANCES["MOSTLY_BF16"] if args.hf_dtype == "bfloat16" else None
    for f in (f for f in full if not mismatch[f]):
        rep = v.verify_numerics(ckpt, f, prompts, max_tokens=args.max_tokens, hf=(model, tok), tolerance=tol)
        print(rep.format())
        if not rep.ok:
            failed.append(f"{f.name}: logits or greedy text differ from the checkpoint")
    if not mismatch[first]:
        parity = v.tokenizer_parity(tok, first, notes)
        print(parity.format(tok))
        if not parity.ok:
            failed.append(f"{first.name}: tokenizer differs from the checkpoint's")
    return failed


def _verdict(failed: list[str], not_checked: list[str]) -> int:
    for line in failed:
        print(f"failed: {line}")
    for line in not_checked:
        print(f"not checked: {line}")
    if failed:
        print("verify: FAIL")
        return VerificationFailed.exit_code
    if not_checked:
        print("verify: INCOMPLETE (nothing failed, but the checks listed above were not run)")
        return NotVerifiedError.exit_code
    print("verify: PASS")
    return 0


def _prompts(notes: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """The Asclepius prompt around ``n`` notes spread over the set: the text the model will really see."""
    from resources.prompts import ASCLEPIUS

    step = max(1, len(notes) // max(n, 1))
    picked = notes[::step][:n]
    return [(src, ASCLEPIUS.render(text, "Summarize the hospital course.")) for src, text in picked]


def _held_out(notes_dir: Path) -> list[tuple[str, str]]:
    """Validation splits only (never what a tokenizer or model might have been fitted on here)."""
    from quantize.notes import iter_notes

    files = [p for p in sorted(notes_dir.glob("*.csv")) if "valid" in p.name.lower()] or [notes_dir]
    return [n for f in files for n in iter_notes(f)]


def cmd_compare(args: argparse.Namespace) -> int:
    """KL divergence, top-1 agreement and perplexity ratio of a candidate GGUF against a reference."""
    import json

    from quantize.compare import CompareOptions, compare

    opts = CompareOptions(
        Path(args.reference),
        Path(args.candidate),
        tuple(Path(p) for p in args.notes),
        ctx=args.ctx,
        batch=args.batch,
        threads=args.threads,
    )
    bar = _Progress("compare", args.quiet, unit="chunk")
    try:
        result = compare(opts, progress=bar)
    finally:
        bar.close()
    print(json.dumps(result.to_json(), indent=2) if args.json else result.format())
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from quantize.gguf_io import format_inspection, inspect_gguf

    ins = inspect_gguf(Path(args.gguf))
    if args.json:
        meta = {
            k: (v if not isinstance(v, list) or len(v) <= 64 else f"<{len(v)} items>") for k, v in ins.metadata.items()
        }
        print(
            json.dumps(
                {
                    "path": str(ins.path),
                    "size": ins.size,
                    "metadata": meta,
                    "tensors": [{"name": n, "type": t, "shape": s, "bytes": b} for n, t, s, b in ins.tensors],
                },
                indent=2,
                default=str,
            )
        )
    else:
        print(format_inspection(ins, show_tensors=args.tensors))
    return 0


def register(subparsers: Any) -> None:
    """Add ``quantize`` and its five commands to an argparse subparsers object."""
    from quantize.convert import OUT_TYPES
    from quantize.quant import QUANT_TYPES

    p = subparsers.add_parser("quantize", help="convert HF checkpoints to GGUF, quantize, verify, compare, inspect")
    sub = p.add_subparsers(dest="quantize_command", metavar="COMMAND", required=True)

    c = sub.add_parser("convert", help="HF checkpoint directory -> F32/F16/BF16 GGUF (streamed)")
    c.add_argument("checkpoint", help="directory with config.json, tokenizer and weights (with --adapter: the base)")
    c.add_argument(
        "--adapter",
        metavar="ADAPTER_DIR",
        help="a LoRA adapter (adapter_config.json + weights) to merge into the checkpoint before converting "
        "(needs peft and RAM for the base in fp32)",
    )
    c.add_argument("-o", "--output", help="output .gguf (default: <checkpoint>-<outtype>.gguf beside it)")
    c.add_argument(
        "--outtype", choices=OUT_TYPES, default="auto", help="auto: F16 for fp32/fp16 sources, BF16 for bf16 sources"
    )
    c.add_argument("--name", help="general.name (default: the checkpoint directory's name)")
    c.add_argument(
        "--prompt-style",
        help="prompt style id recorded for the app (default: the training manifest's, else asclepius)",
    )
    c.add_argument("--base-model", help="base model name recorded as provenance")
    c.add_argument("--license", help="licence recorded in the GGUF")
    c.add_argument("--force", action="store_true", help="replace an existing output")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=_guarded(TORCH_NEEDS, cmd_convert))

    q = sub.add_parser("quantize", help="F32/F16/BF16 GGUF -> quantized GGUF(s) through llama.cpp")
    q.add_argument("input", help="the GGUF written by convert")
    q.add_argument(
        "-t",
        "--type",
        action="append",
        type=str.upper,
        choices=QUANT_TYPES,
        help="quantization type; repeat for several (default Q4_K_M)",
    )
    q.add_argument("-o", "--output", help="output file (one --type only)")
    q.add_argument("--out-dir", help="directory for the outputs (default: beside the input)")
    q.add_argument("--threads", type=threads, help="CPU threads (default: all cores)")
    q.add_argument("--force", action="store_true")
    q.add_argument("-q", "--quiet", action="store_true")
    q.set_defaults(func=_guarded(("llama_cpp", "gguf", "numpy"), cmd_quantize))

    v = sub.add_parser(
        "verify",
        help="logits, greedy text and tokenizer vs HF; perplexity gate of quantized files vs their source",
        description="PASS only when every file got every check that applies to it: F32/F16/BF16 files need "
        "--checkpoint, quantized files need their source (--reference or listed too). Exit 0 pass, 4 a check "
        "failed, 2 something could not be checked (listed), 3 no usable notes.",
    )
    v.add_argument("gguf", nargs="+", help="GGUF files: F32/F16/BF16 ones get numerics, quantized ones perplexity")
    v.add_argument("--checkpoint", help="the HF checkpoint the files came from (for logits and tokenizer)")
    v.add_argument("--reference", help="F16/F32 GGUF that perplexity deltas are measured against")
    v.add_argument("--notes", help="CSV/text file or folder of notes (default: shared/data/notes)")
    v.add_argument(
        "--prompts",
        type=bounded_int("prompts", 1, VERIFY_PROMPTS_MAX),
        default=4,
        help=f"number of prompts for the logits check (1..{VERIFY_PROMPTS_MAX})",
    )
    v.add_argument(
        "--max-tokens",
        type=bounded_int("max tokens", 1, VERIFY_WINDOW_MAX),
        default=256,
        help=f"tokens per prompt for the logits check (1..{VERIFY_WINDOW_MAX})",
    )
    v.add_argument(
        "--hf-dtype",
        default="float32",
        choices=("float32", "bfloat16"),
        help="HF reference precision (bfloat16 halves memory for 13B; loosens the check)",
    )
    v.add_argument(
        "--ctx",
        type=bounded_int("perplexity window", PPL_TOKENS_MIN, VERIFY_WINDOW_MAX),
        default=512,
        help=f"perplexity window in tokens ({PPL_TOKENS_MIN}..{VERIFY_WINDOW_MAX})",
    )
    v.add_argument(
        "--ppl-tokens",
        type=bounded_int("perplexity tokens", PPL_TOKENS_MIN, PPL_TOKENS_MAX),
        default=4096,
        help=f"held-out tokens scored per file ({PPL_TOKENS_MIN}..{PPL_TOKENS_MAX:,})",
    )
    v.add_argument("-q", "--quiet", action="store_true", help="no per-file perplexity lines on stderr")
    v.set_defaults(func=_guarded(("llama_cpp", "gguf", "numpy"), cmd_verify))

    k = sub.add_parser(
        "compare",
        help="KL divergence, top-1 agreement and perplexity ratio of a quantized GGUF vs its reference",
        description="Both files are run over the notes in chunks of --ctx tokens, as llama.cpp's "
        "llama-perplexity --kl-divergence does (the second half of each chunk is scored). Exit 0 done, "
        "2 the files cannot be compared (different vocabularies) or bad options, 3 no usable notes, "
        "4 a file is missing, damaged or cannot be loaded.",
    )
    k.add_argument("reference", help="the reference GGUF (the F16/F32/BF16 source)")
    k.add_argument("candidate", help="the GGUF measured against it")
    k.add_argument("--notes", nargs="+", required=True, help="CSV/text files or folders of notes")
    k.add_argument(
        "--ctx",
        type=bounded_int("chunk size", PPL_TOKENS_MIN, VERIFY_WINDOW_MAX),
        default=512,
        help=f"tokens per chunk, llama-perplexity's -c ({PPL_TOKENS_MIN}..{VERIFY_WINDOW_MAX})",
    )
    k.add_argument(
        "--batch",
        type=bounded_int("batch", PPL_TOKENS_MIN, 16 * VERIFY_WINDOW_MAX),
        help="tokens per decode call, llama-perplexity's -b: batch/ctx chunks at once (default: --ctx)",
    )
    k.add_argument("--threads", type=threads, help="CPU threads (default: llama-cpp-python's)")
    k.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    k.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    k.set_defaults(func=_guarded(("llama_cpp", "gguf", "numpy"), cmd_compare))

    i = sub.add_parser("inspect", help="metadata and tensor summary of a GGUF")
    i.add_argument("gguf")
    i.add_argument("--tensors", action="store_true", help="list every tensor")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_guarded(("gguf", "numpy"), cmd_inspect))


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m quantize.cli``) for use before the app CLI wires the group in."""
    parser = argparse.ArgumentParser(prog="asclepius")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
