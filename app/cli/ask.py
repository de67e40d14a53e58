"""``asclepius ask``: stream answers to stdout; grounding and metrics to stderr.

Several instructions about the note are answered together (``AskService.ask_many``: the note is read
once and up to ``--parallel`` answers decode in one batch); they are printed in order, each under a
``## [n]`` header, with each one's metrics.

The run goes through ``app.service.AskService`` like every other front end: the sampling settings follow
its one rule (a flag > the user's settings > the task preset), so what the Settings screen saves applies
here too.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from app.cli.context import CliContext
from app.core.bounds import check_parallel
from app.core.errors import Cancelled, ContextOverflowError, StoreError, UsageError
from app.core.grounding import GroundingReport, describe_summary
from app.core.grounding.text import report_lines
from app.core.limits import answer_cap, context_warning
from app.core.notes import decode_note_bytes, read_note_file
from app.core.types import RunResult
from app.service import AskOutcome, SamplingOverrides, raise_for_finish
from app.service.streams import OrderedStream
from resources import get_task


def read_note_arg(note: str) -> str:
    if note == "-":
        return decode_note_bytes(sys.stdin.buffer.read(), "standard input")
    return read_note_file(note)


def overrides_from_args(args: argparse.Namespace) -> SamplingOverrides:
    """The sampling values given on the command line (None: not given)."""
    return SamplingOverrides(
        max_tokens=getattr(args, "max_tokens", None),
        temperature=getattr(args, "temperature", None),
        seed=getattr(args, "seed", None),
    )


def print_metrics(result: RunResult, model_label: str, out: Any = None) -> None:
    out = out or sys.stderr  # looked up at call time: a redirected stderr is honoured
    g = result.grounding or {}
    print("", file=out)
    print(f"-- model: {model_label}", file=out)
    print(
        f"-- {result.finish_reason}: {result.completion_tokens} tokens, time to first token "
        f"{result.ttft_s:.2f} s, {result.decode_tokens_per_s:.1f} tokens/s, prompt {result.prompt_tokens} "
        f"tokens ({result.reused_tokens} reused)",
        file=out,
    )
    if result.truncation:
        print(f"-- {result.truncation.message}", file=out)
    if result.lookup is not None and result.lookup.acceptance is not None:
        lk = result.lookup
        print(
            f"-- prompt lookup: {lk.accepted} of {lk.drafted} drafted tokens accepted ({lk.acceptance:.0%})"
            + (", then off for the rest (low acceptance)" if lk.stopped else ""),
            file=out,
        )
    if g:
        print(f"-- grounding: {describe_summary(g)}", file=out)
        # Flagged claims and items, omissions and what was not done; supported claims stay quiet.
        for line in report_lines(GroundingReport.from_dict(g), flagged_only=True):
            print(f"-- check: {line}", file=out)


def _instructions(args: argparse.Namespace) -> list[str]:
    value = args.instruction
    return [value] if isinstance(value, str) else list(value)


def ask(args: argparse.Namespace, ctx: CliContext, runner: Callable[[Callable[[threading.Event], Any]], Any]) -> int:
    parallel = getattr(args, "parallel", None)
    if problem := check_parallel(parallel):
        raise UsageError(problem)
    # Every input is checked before the log is opened or a model is loaded.
    probe = ctx.service(None, None)
    note = read_note_arg(args.note)
    requests = [
        probe.request(
            note,
            args.task,
            instruction,
            explicit=overrides_from_args(args),
            prompt_style=args.prompt_style,
            truncate=args.truncate,
        )
        for instruction in _instructions(args)
    ]
    several = len(requests) > 1
    model = ctx.model(args.model)
    if model.is_demo:
        print("-- note: using the demo model (Gemma 3 270M), not trained for clinical tasks", file=sys.stderr)
    cap = answer_cap(get_task(requests[0].task).max_tokens, ctx.config.generation.max_tokens, args.max_tokens)
    if cap.source != "preset":  # the task's own cap stays visible when a setting or flag replaces it
        print(f"-- answer cap: {cap.describe()}", file=sys.stderr)
    log = None if args.no_log else ctx.open_log()  # a read-only or locked log is reported before loading
    if getattr(args, "lookup", None) is not None:
        ctx.config = ctx.config.with_engine(lookup=args.lookup)
    try:
        engine = ctx.engine(model, logged=log is not None)
        if warning := context_warning(model, engine.n_ctx):
            print(f"-- warning: {warning}", file=sys.stderr)
        try:
            service = ctx.service(engine, log)

            def write(piece: str) -> None:
                sys.stdout.write(piece)
                sys.stdout.flush()

            def header(i: int) -> str:
                return ("\n\n" if i else "") + f"## [{i + 1}] {requests[i].instruction}\n"

            def work(cancel: threading.Event) -> list[AskOutcome]:
                if not several:
                    return [service.ask(requests[0], on_token=None if args.json else write, cancel=cancel)]
                stream = OrderedStream(len(requests), write, header)
                return service.ask_many(
                    requests,
                    on_token=None if args.json else stream.piece,
                    on_done=None if args.json else stream.done,
                    cancel=cancel,
                    parallel=parallel,
                )

            try:
                outcomes: list[AskOutcome] = runner(work)
            except ContextOverflowError as exc:
                raise ContextOverflowError(f"{exc} (pass --truncate to cut it, reported)") from None
        finally:
            engine.close()
    finally:
        if log is not None:
            log.close()
    if args.json:
        payload = [o.result.to_dict() for o in outcomes]
        print(json.dumps(payload if several else payload[0], indent=2, default=str))
    else:
        sys.stdout.write("\n")
    for i, outcome in enumerate(outcomes):
        if several:
            print(f"\n-- [{i + 1}] {outcome.request.instruction}", file=sys.stderr)
        print_metrics(outcome.result, model.display_name)
    if len(outcomes) < len(requests):
        print(f"-- {len(requests) - len(outcomes)} instruction(s) not started (cancelled)", file=sys.stderr)
    failed = [o.log_error for o in outcomes if o.log_error]
    if failed and log is not None:
        raise StoreError(f"the answers above were not all recorded: {failed[0]}")
    for outcome in outcomes:
        raise_for_finish(outcome)
    if len(outcomes) < len(requests):
        raise Cancelled("cancelled")
    return 0
