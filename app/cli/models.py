"""``asclepius models list|import|info|verify|remove|rename|set-default``.

The same registry API as the desktop Models screen (``app.core.models``): one entry per file path,
status ok / missing / changed, copies into the app's model library (the default for removable media).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from app.cli.context import CliContext
from app.core.config import save_config
from app.core.errors import ModelError
from app.core.models import (
    MISSING,
    Registry,
    add_model,
    default_setting,
    describe,
    human_size,
    is_default,
    is_removable,
    mark_missing,
    printable,
    read_gguf,
    remove_model,
    rename_model,
    verified_label,
)
from app.core.types import ModelInfo


def _progress(what: str):
    """Percent, bytes and throughput on one terminal line (Ctrl+C stops the work; a partial copy is deleted)."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if sys.stderr.isatty():
            rate = human_size(int(done / max(time.monotonic() - started, 1e-3)))
            line = f"{what}: {done / max(total, 1):6.1%} of {human_size(total)}, {rate}/s"
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
            if done >= total:
                print(file=sys.stderr)

    return report


def _row(reg: Registry, m: ModelInfo, default: str) -> str:
    size = human_size(m.size_bytes)
    params = f"{m.parameter_count / 1e9:.2f}B" if m.parameter_count else "?"
    mark = "*" if is_default(reg, m, default) else " "
    where = "library" if m.in_library else ("built-in" if reg.is_builtin(m) else "")
    return (
        f"{mark} {m.short_sha}  {m.display_name:<60}  {m.architecture:<8} {params:>7} {size:>9}  "
        f"ctx {m.context_length:<6}  verified {verified_label(m):<7}  {where:<8}  {printable(m.path)}"
    )


def _list(args: argparse.Namespace, ctx: CliContext) -> int:
    reg = ctx.registry
    if not any(reg.is_builtin(m) for m in reg.list()):
        reg.ensure_demo()
    models = sorted(reg.list(), key=lambda m: (not reg.is_builtin(m), m.name.lower(), m.path))
    default = ctx.config.default_model
    for m in models:
        if m.status == MISSING:
            mark_missing(reg, m.path)
    if args.json:
        out = []
        for m in models:
            d = describe(m)
            d.update(id=m.path, is_default=is_default(reg, m, default), builtin=reg.is_builtin(m))
            out.append(d)
        print(json.dumps(out, indent=2))
    else:
        for m in models:
            print(_row(reg, m, default))
    chosen = reg.default_entry() if default else None
    if default and (chosen is None or chosen.status == MISSING):
        print(
            f"-- notice: the default model {default} is missing; the demo model is used until it is back",
            file=sys.stderr,
        )
    return 0


def _import(args: argparse.Namespace, ctx: CliContext) -> int:
    reg = ctx.registry
    copy = args.copy if args.copy is not None else is_removable(args.path, library=ctx.paths.models_dir)
    what = "copy and check" if copy else "sha256"
    info, note = add_model(
        reg, args.path, copy=copy, prompt_style=args.prompt_style, name=args.name, progress=_progress(what)
    )
    print(f"imported {info.display_name} ({info.short_sha}), prompt style {info.prompt_style}: {printable(info.path)}")
    if note:
        print(f"-- {note}", file=sys.stderr)
    if args.set_default:
        _save_default(ctx, info.path)
    return 0


def _save_default(ctx: CliContext, ref: str) -> None:
    info, value = default_setting(ctx.registry, ref)
    save_config(ctx.paths, replace(ctx.config, default_model=value))
    print(f"{info.display_name} is now the default model")


def _remove(args: argparse.Namespace, ctx: CliContext) -> int:
    reg = ctx.registry
    info = reg.get(args.model, strict=True)
    delete = args.delete_copy
    if info.in_library and not delete and not args.keep_copy and sys.stdin.isatty() and not reg.is_builtin(info):
        size = human_size(info.size_bytes)
        answer = input(f"Also delete the app's library copy {info.path} ({size})? [y/N] ")
        delete = answer.strip().lower() in ("y", "yes")
    was_default = is_default(reg, info, ctx.config.default_model)
    removed, deleted = remove_model(reg, info.path, delete_copy=delete)
    print(f"removed {removed.display_name} ({removed.short_sha}); its runs stay in the evaluation log")
    if deleted is not None:
        print(f"deleted the library copy {deleted}")
    elif removed.status != MISSING:
        print(f"the file stays where it is: {removed.path}")
    if was_default and ctx.config.default_model:
        save_config(ctx.paths, replace(ctx.config, default_model=""))
        print("the default model is now the demo model")
    return 0


def _info(args: argparse.Namespace, ctx: CliContext) -> int:
    reg = ctx.registry
    ref = args.model
    if ref and Path(ref).exists() and reg.find(ref) is None:
        meta = read_gguf(Path(ref))
        print(json.dumps(meta, indent=2, default=str))
        return 0
    info = ctx.model(ref)  # no ref: the default, or the demo with a notice when the default's file is gone
    eng = ctx.config.engine
    d = describe(info, n_ctx=eng.context_for(info.context_length))
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:>16}: {v}")
    return 0


def _verify(args: argparse.Namespace, ctx: CliContext) -> int:
    info, ok = ctx.registry.verify(args.model, progress=_progress("sha256"))
    if not ok:
        raise ModelError(f"{info.path}: sha256 does not match the registered {info.sha256} (file changed?)")
    print(f"ok: {info.file_name} sha256 {info.sha256}")
    return 0


def _rename(args: argparse.Namespace, ctx: CliContext) -> int:
    info = rename_model(ctx.registry, args.model, args.name)
    print(f"renamed: {info.display_name} ({info.path})")
    return 0


def _set_default(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.demo:
        save_config(ctx.paths, replace(ctx.config, default_model=""))
        print("the demo model is now the default model")
        return 0
    _save_default(ctx, args.model)
    return 0


ACTIONS = {
    "list": _list,
    "import": _import,
    "info": _info,
    "verify": _verify,
    "remove": _remove,
    "rename": _rename,
    "set-default": _set_default,
}


def models_command(args: argparse.Namespace, ctx: CliContext) -> int:
    return ACTIONS[args.models_command](args, ctx)
