"""``asclepius batch INPUT``: run many (note, task, instruction) items through one or more models.

- Input (``items.py``): CSV (header line) or JSON Lines with ``note`` or ``note_path`` (relative to the input
  file), ``task`` (name or short name), ``instruction`` and an optional ``id``. The input is streamed in
  windows of ``WINDOW_ROWS`` rows; every problem is reported with its line number as its window is reached;
  the valid rows still run.
- The flags become one checked ``BatchOptions`` (``options.py``) before the log is opened or a model loads.
- Scheduling (``runner.py``): work is grouped by note within a window: each note is read once and its
  questions are decoded together (``AskService.ask_many``; ``--parallel N`` caps how many, 1 = one at a
  time). A backend declaring ``capabilities.concurrency`` (a remote server) gets up to that many items in
  flight instead, across notes. Both paths count outcomes with the one policy of ``BatchRun``.
- Resumable: a run is recorded as started before the engine runs and finished after; an item whose
  resume key (model sha256, sampling parameters, note, task, instruction, id) already has a finished run
  is skipped, so a batch killed at any moment and started again finishes the rest, with no duplicates.
  Each item is claimed in the log as its run starts (app/store/claims.py): two batches on one log share
  the work and never run an item twice.
- Progress (done / total, rate, ETA; tqdm) goes to stderr; answers go to the log, and to ``--output`` if
  given (``output.py``).
- ``--endpoint URL --endpoint-model NAME`` sends the same prompts to an OpenAI-compatible server instead
  (``app.core.remote.RemoteEngine`` behind the same ask service): up to ``--concurrency`` items in flight,
  each logged as it ends. A server that stays unreachable stops the batch (exit 8) with the items done kept
  and the failing ones recorded as failed; the same command resumes later. The command then runs outside the
  network namespace and may reach that URL's host and port only (``netns.calls_endpoint``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from app.core import netns


@netns.calls_endpoint("endpoint")
def cmd_batch(args: argparse.Namespace) -> int:
    from app.cli.batch.options import BatchOptions
    from app.cli.batch.runner import run_batch
    from app.cli.context import CliContext
    from app.cli.log_cmds import open_log

    opts = BatchOptions.from_args(args)
    ctx = CliContext.create(threads=opts.threads)
    log = open_log(args)  # before loading any model: a read-only or locked log is reported first
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    remote = None
    try:
        if (settings := opts.endpoint) is not None:
            from app.core.remote import RemoteEngine

            remote = RemoteEngine(settings)  # asks GET /models: an unreachable server is reported now (exit 8)
            print(
                f"-- batch on {settings.public_url}, model {settings.served_model!r} (prompt style "
                f"{settings.prompt_style}), up to {settings.concurrency} requests at once",
                file=sys.stderr,
            )
        return run_batch(opts, ctx, log, cancel, remote)
    finally:
        signal.signal(signal.SIGINT, previous)
        if remote is not None:
            remote.close()
        log.close()


def register(subparsers: Any) -> None:
    from app.cli import validators as v

    b = subparsers.add_parser("batch", help="run a CSV/JSONL of questions through one or more models (resumable)")
    b.add_argument("input", help=".csv or .jsonl with note or note_path, task, instruction, optional id")
    b.add_argument(
        "--model", action="append", type=v.model_ref, help="model (repeat for several); default: the default model"
    )
    b.add_argument("--output", help="also write answers to this .csv or .jsonl (mode 0600)")
    b.add_argument("--follow-symlinks", action="store_true", help="write to the target if --output is a link")
    b.add_argument(
        "--max-tokens",
        type=v.max_tokens,
        help="answer token limit (default: the lower of the Settings cap and the task's)",
    )
    b.add_argument("--temperature", type=v.temperature, help="0 = greedy (default: the Settings value)")
    b.add_argument("--seed", type=v.seed, help="default: the Settings value")
    b.add_argument("--prompt-style", type=v.prompt_style, help="prompt style id (default: each model's own)")
    b.add_argument("--threads", type=v.threads)
    b.add_argument(
        "--parallel",
        type=int,
        help="answers about one note decoded together (default: from the context; 1 = in turn)",
    )
    b.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    _add_remote_flags(b)
    b.set_defaults(func=cmd_batch)


def _add_remote_flags(b: argparse.ArgumentParser) -> None:
    """The ``--endpoint`` group; each default shown is ``EndpointSettings``' own (the one place it lives)."""
    from dataclasses import fields

    from app.cli import validators as v
    from app.core.openai_policy import EndpointSettings

    default = {f.name: f.default for f in fields(EndpointSettings)}
    r = b.add_argument_group("a remote server (OpenAI-compatible: vLLM, llama.cpp's server, TGI)")
    r.add_argument("--endpoint", type=v.endpoint_url, help="the server's base URL, e.g. http://gpu-host:8000/v1")
    r.add_argument("--endpoint-model", type=v.text, help="the model name the server serves (vLLM --served-model-name)")
    r.add_argument(
        "--api-key-env",
        help=f"environment variable holding the API key (default {default['api_key_env']}; unset: no key)",
    )
    r.add_argument(
        "--concurrency",
        type=v.bounded_int("concurrency", 1, EndpointSettings.MAX_CONCURRENCY),
        help=f"requests in flight (default {default['concurrency']})",
    )
    r.add_argument(
        "--endpoint-timeout",
        type=v.positive_float("endpoint timeout"),
        help=f"deadline in seconds for each attempt, the whole reply included (default {default['timeout_s']:g})",
    )
    r.add_argument(
        "--endpoint-attempts",
        type=v.bounded_int("endpoint attempts", 1, 100),
        help=f"tries per request before the batch stops (default {default['max_attempts']}; "
        "backoff honours Retry-After)",
    )
