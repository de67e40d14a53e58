"""Errors the core raises, each with the CLI exit code it maps to.

``EXIT_CODES`` is the one table of exit codes for every command group (``ask``, ``tasks``, ``models``,
``log``, ``batch``, ``quantize``, ...): the table in docs/cli.md is printed from it (``python -m app.core.errors``)
and tests/integration/test_exit_codes.py runs each group's typical failures against it.
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


class EndpointError(AsclepiusError):
    """The inference server (``batch --endpoint``, ``data``, ``judge``) could not be reached, refused every
    request, or requests kept failing after their retries."""

    exit_code = 8


class PolicyError(AsclepiusError):
    """The organisation's policy (``/etc/asclepius-desk/policy.toml``, or the user's ``policy.toml``) is malformed
    or unreadable, so nothing runs (fail closed), or it forbids what the command asked (``app/core/policy.py``)."""

    exit_code = 9


class Cancelled(AsclepiusError):
    exit_code = 130


EXIT_TERMINATED = 143
"""128 + SIGTERM: a long job stopped by ``kill`` or a closed session (partial outputs removed)."""

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error, a bug (set `ASCLEPIUS_DEBUG=1` for a traceback)",
    UsageError.exit_code: "usage error: bad arguments or option values, unknown task, prompt style or command; "
    "an output that exists (without `--force`) or cannot be written; a missing optional extra "
    "(`quantize`); `quantize verify` with nothing to compare a file against; a model name that is empty or "
    "over 120 characters; removing or renaming the built-in demo model; a model library copy that cannot be "
    "written (disk full)",
    NoteError.exit_code: "bad input text: a note (or the answer `ground` checks) that is empty, over 200,000 "
    "characters, binary, not UTF-8 or "
    "unreadable; the held-out notes of `quantize verify`",
    ModelError.exit_code: "model problem: missing, not GGUF, truncated, unsupported architecture, checksum "
    "mismatch; no registered model by that name, or a name that fits several (`models remove/rename/"
    "set-default`); a missing file made the default; a library copy that differs from its source; "
    "a checkpoint that cannot be converted or a GGUF that cannot be quantized; "
    "`quantize verify` found a difference (logits, tokenizer or the perplexity gate)",
    ContextOverflowError.exit_code: "the prompt does not fit the model's context (use `--truncate` to cut the note "
    "explicitly)",
    StoreError.exit_code: "evaluation-log problem: read-only location, locked, corrupt, from a newer version",
    GenerationError.exit_code: "generation failed inside llama.cpp",
    EndpointError.exit_code: "the inference server (`batch --endpoint`, `data`, `judge`) could not be reached, "
    "refused the key, or requests kept failing after their retries; answers already made are kept: run the same "
    "command again to go on",
    PolicyError.exit_code: "refused by policy: the machine policy file (`/etc/asclepius-desk/policy.toml`) or "
    "the user's `policy.toml` is malformed or unreadable (no command runs until it is fixed), or the policy "
    "forbids the command: an endpoint command with `endpoint_commands = false`, a host not in "
    "`allowed_endpoint_hosts`, a `--db` other than the fixed `log_path`; the message names the key and the file",
    Cancelled.exit_code: "cancelled (Ctrl+C, SIGINT); partial outputs are removed",
    EXIT_TERMINATED: "terminated (SIGTERM); partial outputs are removed",
}


def exit_code_table() -> str:
    """EXIT_CODES as the markdown table in docs/cli.md."""
    rows = ["| code | meaning |", "|---|---|"] + [f"| {code} | {text} |" for code, text in EXIT_CODES.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(exit_code_table())
