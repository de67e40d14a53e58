"""``asclepius cache``: the note KV states kept on disk so notes stay warm across restarts."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.context import CliContext
from app.core.kvstate import STATE_DIR_NAME, DiskStateStore


def _store(ctx: CliContext) -> DiskStateStore:
    return DiskStateStore(ctx.paths.data_dir / STATE_DIR_NAME, ctx.config.engine.kv_disk_mb * 1024 * 1024)


def cmd_clear(args: argparse.Namespace) -> int:
    n, size = _store(CliContext.create()).clear()
    print(f"removed {n} kept note state(s), {size / 1e6:.1f} MB")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    ctx = CliContext.create()
    store = _store(ctx)
    state = "on" if ctx.config.store_note_text else "off (hash-only note storage)"
    print(f"kept note states: {state}; {store.used_bytes / 1e6:.1f} MB of {ctx.config.engine.kv_disk_mb} MB")
    print(f"directory: {store.directory}")
    return 0


def register(subparsers: Any) -> None:
    cache = subparsers.add_parser("cache", help="note states kept on disk (warm notes after a restart)")
    sub = cache.add_subparsers(dest="cache_command", required=True, metavar="{clear,info}")
    c = sub.add_parser("clear", help="delete every kept note state (they encode note text)")
    c.set_defaults(func=cmd_clear)
    i = sub.add_parser("info", help="where the states are and how much room they take")
    i.set_defaults(func=cmd_info)
