"""Errors the core raises, each with the CLI exit code it maps to.

Exit codes (documented in the README):
  0 success; 1 unexpected internal error; 2 usage error (bad arguments, unknown task);
  3 bad input note (empty, too large, binary, not UTF-8); 4 model problem (missing, not GGUF, truncated,
  unsupported architecture, checksum mismatch); 5 the prompt does not fit the model's context;
  6 evaluation-log (database) problem; 7 generation failed; 130 cancelled by the user (Ctrl+C).
"""

from __future__ import annotations


class AsclepiusError(Exception):
    """Base class: a problem we can describe to the user in one clear message."""

    exit_code = 1


class UsageError(AsclepiusError):
    exit_code = 2


class NoteError(AsclepiusError):
    exit_code = 3


class ModelError(AsclepiusError):
    exit_code = 4


class ContextOverflowError(AsclepiusError):
    exit_code = 5


class StoreError(AsclepiusError):
    exit_code = 6


class GenerationError(AsclepiusError):
    exit_code = 7


class Cancelled(AsclepiusError):
    exit_code = 130
