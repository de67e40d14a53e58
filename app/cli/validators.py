"""argparse ``type=`` validators shared by every command, so a bad flag is refused before any work.

A value out of range is a usage error (exit 2) raised by argparse itself: nothing is loaded, no log is
opened, no batch record is created. The ranges are those the engine can honour:
- threads: 1..``max_threads()`` (llama.cpp aborted with std::bad_alloc at 100,000 and hung at 8,192);
- max tokens: 1..32,768 (the longest context of a supported model);
- temperature: a finite number 0..5 (``nan`` and ``inf`` parse as floats but mean nothing here);
- seed: 0..2^32-2 (llama.cpp's seed is 32-bit and 2^32-1 means "random", which would not reproduce).
Text arguments that came from a non-UTF-8 terminal (Python keeps the bad bytes as lone surrogates) are
refused too: they cannot be stored or shown.
"""

from __future__ import annotations

import argparse

# The parsers themselves live in app.core.argtypes (quantize and train use them too and may not import
# app.cli); the app's commands keep reaching them through this module.
from app.core.argtypes import bounded_float, bounded_int, threads
from app.core.argtypes import positive_float as positive_float
from app.core.bounds import ANSWER_TOKENS_MAX, SEED_MAX, TEMPERATURE_MAX, max_threads

max_tokens = bounded_int("max tokens", 1, ANSWER_TOKENS_MAX)
seed = bounded_int("seed", 0, SEED_MAX)
temperature = bounded_float("temperature", 0.0, TEMPERATURE_MAX)


def text(value: str) -> str:
    """A text argument that is valid Unicode (argv bytes that were not UTF-8 are refused)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid UTF-8 text (a byte that is not UTF-8 at character {exc.start}); check the terminal's encoding"
        ) from None
    return value


def model_ref(value: str) -> str:
    """A model reference (path, file name, name or sha256) that says something: ``--model ""`` (an unset
    shell variable) used to run the default model without a word."""
    if not text(value).strip():
        raise argparse.ArgumentTypeError(
            "the model is empty; give a model path, file name, name or sha256 (leave --model out for the default)"
        )
    return value


def prompt_style(value: str) -> str:
    """A known prompt style id (an unknown one would break every later ask of a model)."""
    from resources import get_style

    try:
        get_style(value)
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0]) if exc.args else f"unknown prompt style {value!r}") from None
    return value


def add_sampling_flags(p: argparse.ArgumentParser, *, threads_help: str = "CPU threads") -> None:
    """--max-tokens, --temperature, --seed, --threads, validated the same way for every command."""
    p.add_argument("--max-tokens", type=max_tokens, help=f"answer token limit 1..{ANSWER_TOKENS_MAX}")
    p.add_argument("--temperature", type=temperature, help="0 = greedy; up to 5")
    p.add_argument("--seed", type=seed, default=None, help=f"0..{SEED_MAX}")
    add_threads_flag(p, threads_help)


def add_threads_flag(p: argparse.ArgumentParser, help_text: str = "CPU threads") -> None:
    p.add_argument("--threads", type=threads, help=f"{help_text} (1..{max_threads()} on this machine)")


def endpoint_url(value: str) -> str:
    """An http(s) base URL with no userinfo, query or fragment (a key in the URL would be printed)."""
    from app.core.errors import UsageError
    from app.core.openai_policy import check_url

    try:
        return check_url(text(value))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
