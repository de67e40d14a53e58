"""``asclepius models list|import|info|verify``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from app.cli.context import CliContext
from app.core.config import save_config
from app.core.errors import ModelError
from app.core.limits import allocated_context
from app.core.registry import describe, read_gguf
from app.core.types import ModelInfo


def _progress(done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\rsha256: {done / max(total, 1):6.1%}", end="", file=sys.stderr, flush=True)
        if done >= total:
            print(file=sys.stderr)


def _row(m: ModelInfo, default_sha: str) -> str:
    size = f"{m.size_bytes / 1e9:.2f} GB"
    params = f"{m.parameter_count / 1e9:.2f}B" if m.parameter_count else "?"
    mark = "*" if m.sha256 == default_sha else " "
    return (
        f"{mark} {m.short_sha}  {m.display_name:<60}  {m.architecture:<8} {params:>7} {size:>9}  ctx {m.context_length}"
    )


def models_command(args: argparse.Namespace, ctx: CliContext) -> int:
    reg = ctx.registry
    action = args.models_command
    if action == "list":
        models = reg.list()
        if not any(m.is_demo for m in models):
            models.insert(0, reg.ensure_demo())
        default = ctx.config.default_model or next((m.sha256 for m in models if m.is_demo), "")
        if args.json:
            print(json.dumps([describe(m) for m in models], indent=2))
        else:
            for m in models:
                print(_row(m, default))
        return 0
    if action == "import":
        info = reg.import_model(args.path, prompt_style=args.prompt_style, progress=_progress)
        print(f"imported {info.display_name} ({info.short_sha}), prompt style {info.prompt_style}")
        if args.set_default:
            save_config(ctx.paths, replace(ctx.config, default_model=info.sha256))
            print("set as the default model")
        return 0
    if action == "info":
        ref = args.model
        if ref and Path(ref).exists() and reg.find(ref) is None:
            meta = read_gguf(Path(ref))
            print(json.dumps(meta, indent=2, default=str))
            return 0
        info = ctx.model(ref)
        eng = ctx.config.engine
        d = describe(info, n_ctx=allocated_context(info, eng.n_ctx, eng.max_ctx))
        if args.json:
            print(json.dumps(d, indent=2))
        else:
            for k, v in d.items():
                print(f"{k:>16}: {v}")
        return 0
    if action == "verify":
        info, ok = reg.verify(args.model, progress=_progress)
        if not ok:
            raise ModelError(f"{info.path}: sha256 does not match the registered {info.sha256} (file changed?)")
        print(f"ok: {info.file_name} sha256 {info.sha256}")
        return 0
    raise AssertionError(action)
