"""A stand-in for ``asclepius`` with only the log and batch groups, as app.cli.main registers them.

Tests use it (in process, and as ``python -m tests.store.cli_runner`` in a subprocess) so they do not
depend on the other command groups that app.cli.main also loads.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli import batch, log_cmds
from app.core.errors import AsclepiusError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asclepius")
    sub = parser.add_subparsers(dest="command", required=True)
    log_cmds.register(sub)
    batch.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AsclepiusError as exc:
        print(f"asclepius: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
