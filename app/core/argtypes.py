"""argparse ``type=`` parsers for numbers in a range: the one implementation every command group uses.

A value out of range is refused by argparse itself (a usage error, exit 2) before any work starts. The ranges
come from ``app.core.bounds``; these functions only parse and compare. They live in ``app.core`` rather than
``app.cli`` because the ``quantize`` and ``train`` command groups, which may not import ``app.cli``
(tests/unit/test_layering.py), parse their numbers with them too; ``app/cli/validators.py`` builds the app's
own flags (threads, max tokens, seed, temperature) from them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from app.core.bounds import max_threads


def _shown(value: str) -> str:
    return value[:40]


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip(), 10)
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {_shown(value)!r}") from None


def _float(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be a number, not {_shown(value)!r}") from None


def _named(parse: Callable[[str], object], what: str) -> None:
    parse.__name__ = what.replace(" ", "_")  # argparse names the type in its messages


def bounded_int(what: str, low: int, high: Callable[[], int] | int) -> Callable[[str], int]:
    """A whole number in ``low..high`` (``high`` may be a function: a limit that depends on the machine)."""

    def parse(value: str) -> int:
        top = high() if callable(high) else high
        n = _int(value, what)
        if not low <= n <= top:
            raise argparse.ArgumentTypeError(f"{what} must be {low}..{top:,}, not {_shown(value)}")
        return n

    _named(parse, what)
    return parse


def bounded_float(what: str, low: float, high: float) -> Callable[[str], float]:
    """A finite number in ``low..high`` (``nan`` and ``inf`` parse as floats but mean nothing as a setting)."""

    def parse(value: str) -> float:
        x = _float(value, what)
        if not math.isfinite(x) or not low <= x <= high:
            raise argparse.ArgumentTypeError(f"{what} must be a finite number from {low:g} to {high:g}")
        return x

    _named(parse, what)
    return parse


def positive_float(what: str) -> Callable[[str], float]:
    """A finite number above zero, with no upper limit of its own (a timeout, a rate)."""

    def parse(value: str) -> float:
        x = _float(value, what)
        if not math.isfinite(x) or x <= 0:
            raise argparse.ArgumentTypeError(f"{what} must be a positive number, not {_shown(value)}")
        return x

    _named(parse, what)
    return parse


threads = bounded_int("threads", 1, max_threads)
"""CPU threads for llama.cpp (``ask``, ``batch``, ``selftest``, ``quantize quantize``): 1..``max_threads()``."""
