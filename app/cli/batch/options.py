"""What ``asclepius batch`` was asked to do: :class:`BatchOptions`, built and checked once from the flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.batch.items import check_input
from app.core.bounds import check_parallel
from app.core.errors import UsageError

if TYPE_CHECKING:
    from app.core.openai_policy import EndpointSettings
    from app.service import SamplingOverrides

OUTPUT_SUFFIXES = (".csv", ".jsonl")


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """One batch command, checked: every flag and both paths, before the log is opened or a model loads."""

    input: Path
    """The .csv or .jsonl of items (a readable file within the size limit, its columns, a valid row)."""
    models: tuple[str, ...]
    """``--model`` references in order; empty: the default model (and always empty with ``endpoint``)."""
    output: Path | None
    """``--output``: also write the answers here (.csv or .jsonl, mode 0600); None: the log only."""
    follow_symlinks: bool
    """Write to the target when ``output`` is a symbolic link (refused otherwise)."""
    sampling: SamplingOverrides
    """The sampling values given as flags (None: not given; the service's sampling rule fills the rest)."""
    prompt_style: str | None
    """A prompt style id for every model; None: each model's own."""
    threads: int | None
    """CPU threads for the local engine; None: the configured number."""
    parallel: int | None
    """Answers about one note decoded together by the local engine; None: from the context; 1: in turn."""
    endpoint: EndpointSettings | None
    """Send the prompts to this OpenAI-compatible server instead of a local model; None: local."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BatchOptions:
        """The options from parsed flags; UsageError (or the input file's own error) for the first problem."""
        from app.cli.ask import overrides_from_args
        from app.core.privatefile import check_output

        endpoint = endpoint_settings(args)  # every flag checked before any file is read or the server is asked
        path = Path(args.input)
        check_input(path)  # its header and rows up to the first valid one: nothing is created for a bad input
        output = Path(args.output) if args.output else None
        if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
            raise UsageError("--output must end in .csv or .jsonl")
        if output is not None:  # before any model runs: `--output dir.csv` must not fail after an hour of work
            check_output(args.output, follow_symlinks=args.follow_symlinks, what="--output")
        parallel = getattr(args, "parallel", None)
        if problem := check_parallel(parallel):
            raise UsageError(problem)
        return cls(
            input=path,
            models=tuple(args.model or ()),
            output=output,
            follow_symlinks=bool(args.follow_symlinks),
            sampling=overrides_from_args(args),
            prompt_style=args.prompt_style,
            threads=args.threads,
            parallel=parallel,
            endpoint=endpoint,
        )


REMOTE_ONLY = {
    "--endpoint-model": "endpoint_model",
    "--concurrency": "concurrency",
    "--api-key-env": "api_key_env",
    "--endpoint-timeout": "endpoint_timeout",
    "--endpoint-attempts": "endpoint_attempts",
}
"""Flags that only mean something with ``--endpoint``: flag -> argparse destination."""


def endpoint_settings(args: argparse.Namespace) -> EndpointSettings | None:
    """``EndpointSettings`` from the flags when ``--endpoint`` is given, else None; UsageError for any mix-up."""
    if not getattr(args, "endpoint", None):
        given = [flag for flag, dest in REMOTE_ONLY.items() if getattr(args, dest, None) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --endpoint URL")
        return None
    from app.core.openai_policy import EndpointSettings

    problems = []
    if not args.endpoint_model:
        problems.append("--endpoint needs --endpoint-model NAME (the model name the server serves)")
    if args.model:
        problems.append("--model picks a local model; with --endpoint the server's model is --endpoint-model")
    if getattr(args, "parallel", None) is not None:
        problems.append("--parallel is for the local engine; with --endpoint use --concurrency N")
    if args.threads is not None:
        problems.append("--threads is for the local engine; with --endpoint use --concurrency N")
    if problems:
        raise UsageError("; ".join(problems))
    given: dict[str, Any] = {
        "prompt_style": args.prompt_style,
        "api_key_env": args.api_key_env,
        "concurrency": args.concurrency,
        "timeout_s": args.endpoint_timeout,
        "max_attempts": args.endpoint_attempts,
    }
    # A flag not given (or given empty) leaves the dataclass's own default: the one place defaults live.
    kw = {name: value for name, value in given.items() if value is not None and value != ""}
    return EndpointSettings(base_url=args.endpoint, served_model=args.endpoint_model, **kw)
