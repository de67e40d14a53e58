"""``asclepius ask``: stream one answer to stdout; grounding and metrics to stderr."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from app.cli.context import CliContext
from app.core.engine import raise_if_cancelled
from app.core.errors import ContextOverflowError, UsageError
from app.core.notes import decode_note_bytes, read_note_file
from app.core.types import AskRequest, RunResult, SamplingParams
from resources import get_task


def read_note_arg(note: str) -> str:
    if note == "-":
        return decode_note_bytes(sys.stdin.buffer.read(), "standard input")
    return read_note_file(note)


def sampling_from_args(args: argparse.Namespace, task_max: int, task_temp: float, seed: int) -> SamplingParams:
    try:
        return SamplingParams(
            max_tokens=args.max_tokens if args.max_tokens is not None else task_max,
            temperature=args.temperature if args.temperature is not None else task_temp,
            seed=args.seed if args.seed is not None else seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def print_metrics(result: RunResult, model_label: str, out: Any = sys.stderr) -> None:
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
    if g:
        print(f"-- grounding: {g['supported']} of {g['checked']} checked facts found in the note", file=out)
        if g["unsupported"]:
            print("-- NOT found in the note (check these): " + "; ".join(g["unsupported"]), file=out)


def ask(args: argparse.Namespace, ctx: CliContext, runner: Callable[[Callable[[threading.Event], Any]], Any]) -> int:
    try:
        task = get_task(args.task)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if not args.instruction.strip():
        raise UsageError("the instruction is empty")
    note = read_note_arg(args.note)
    model = ctx.model(args.model)
    sampling = sampling_from_args(args, task.max_tokens, task.temperature, ctx.config.generation.seed)
    request = AskRequest(note, task.name, args.instruction, sampling, args.prompt_style, args.truncate)
    if model.is_demo:
        print("-- note: using the demo model (Gemma 3 270M), not trained for clinical tasks", file=sys.stderr)

    log = None if args.no_log else _open_log(ctx)
    engine = ctx.engine(model)
    try:

        def on_token(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        def work(cancel: threading.Event) -> RunResult:
            if log is not None:
                log.start_run(request, model)
            try:
                result = engine.ask(request, on_token=None if args.json else on_token, cancel=cancel)
            except BaseException as exc:
                if log is not None:
                    log.fail_run(request.run_uuid, str(exc) or type(exc).__name__)
                raise
            if log is not None:
                log.finish_run(result)
            return result

        try:
            result = runner(work)
        except ContextOverflowError as exc:
            raise ContextOverflowError(f"{exc} (pass --truncate to cut it, reported)") from None
    finally:
        engine.close()
        if log is not None:
            log.close()
    if args.json:
        d = replace(result).to_dict()
        print(json.dumps(d, indent=2, default=str))
    else:
        sys.stdout.write("\n")
    print_metrics(result, model.display_name)
    raise_if_cancelled(result)
    return 0


def _open_log(ctx: CliContext) -> Any:
    """The evaluation log, if this installation has it (wired by app.store)."""
    try:
        from app.store.runlog import open_run_log
    except ModuleNotFoundError:
        return None
    return open_run_log(ctx.paths, ctx.config)
