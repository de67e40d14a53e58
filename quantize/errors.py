"""The one exception type the CLI turns into a plain message and a non-zero exit code."""

from __future__ import annotations


class QuantizeError(Exception):
    """A failure the user can act on; the message says what is wrong and, where it can, what to do."""
