"""The exceptions the quantize commands turn into one plain message and an exit code.

The codes are the app's own (``app.core.errors``, the one table in docs/cli.md), so a script that drives
``asclepius quantize`` reads them the same way as ``asclepius ask``:

* 2 usage: bad options, an output that already exists (without ``--force``) or cannot be written, a
  missing ``quantize`` extra, or a ``verify`` that had nothing to compare against (it says what was not
  checked, and never prints PASS);
* 3 bad input text: the held-out notes for ``verify`` are missing, empty or unreadable;
* 4 model problem: the checkpoint or GGUF is incomplete, damaged, unsupported, cannot be quantized, or
  failed verification (logits, tokenizer or the perplexity gate);
* 130 / 143: interrupted by SIGINT / SIGTERM (the partial output is removed).
"""

from __future__ import annotations

from app.core.errors import AsclepiusError, ModelError, NoteError, UsageError


class QuantizeError(AsclepiusError):
    """A failure the user can act on; the message says what is wrong and, where it can, what to do.

    Without a more specific subclass it is a model problem: the checkpoint or GGUF given is unusable."""

    exit_code = ModelError.exit_code


class QuantizeUsageError(QuantizeError):
    """Options that cannot work together, an output that exists or cannot be written."""

    exit_code = UsageError.exit_code


class MissingExtraError(QuantizeUsageError):
    """torch, transformers, llama-cpp-python or gguf is not installed (the ``quantize`` extra)."""


class NotesError(QuantizeError):
    """The held-out notes ``verify`` measures on are missing, empty or unreadable."""

    exit_code = NoteError.exit_code


class NotVerifiedError(QuantizeUsageError):
    """``verify`` had nothing to compare a file against (no checkpoint, no F16/F32 reference)."""


class VerificationFailed(QuantizeError):
    """A check ran and failed: the file does not compute what its source computes."""
