"""``asclepius batch --endpoint``: the flags, their checks, and running items with N in flight.

The items still go one by one through the ask service (``service.ask``: start, ask, ground, finish or fail);
only the scheduling differs from the local engine's per-note ``ask_many``. See app/core/remote.py.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from app.core.errors import AsclepiusError, UsageError


def endpoint_settings(args: argparse.Namespace) -> Any:
    """``EndpointSettings`` from the flags when ``--endpoint`` is given, else None; UsageError for any mix-up."""
    endpoint = getattr(args, "endpoint", None)
    remote_only = {
        "--endpoint-model": getattr(args, "endpoint_model", None),
        "--concurrency": getattr(args, "concurrency", None),
        "--api-key-env": getattr(args, "api_key_env", None),
        "--endpoint-timeout": getattr(args, "endpoint_timeout", None),
        "--endpoint-attempts": getattr(args, "endpoint_attempts", None),
    }
    if not endpoint:
        given = [flag for flag, value in remote_only.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only apply with --endpoint URL")
        return None
    from app.core.remote import DEFAULT_KEY_ENV, EndpointSettings

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
    kw: dict[str, Any] = {}
    if args.endpoint_timeout is not None:
        kw["timeout_s"] = args.endpoint_timeout
    if args.endpoint_attempts is not None:
        kw["max_attempts"] = args.endpoint_attempts
    return EndpointSettings(
        base_url=args.endpoint,
        served_model=args.endpoint_model,
        prompt_style=args.prompt_style or "asclepius",
        api_key_env=args.api_key_env or DEFAULT_KEY_ENV,
        concurrency=args.concurrency if args.concurrency is not None else 4,
        **kw,
    )


def run_concurrent(
    service: Any, work: list[tuple[Any, Any, str]], batch_id: int, cancel: threading.Event, summary: Any,
    progress: Any, concurrency: int,
) -> None:  # fmt: skip
    """Ask items through the ask service with up to ``concurrency`` in flight (a remote backend).

    Each item is one ``service.ask`` (the service starts, finishes or fails its run, claims included); the
    outcomes are counted here, on the calling thread. When the server stays unreachable (EndpointError) no
    new item is sent, the ones in flight end (each recorded), and the error is raised: exit 8, resumable.
    """
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from app.cli.batch import _count as count
    from app.core.errors import StoreError
    from app.core.remote import EndpointError
    from app.store.claims import ItemClaimed

    stop: list[BaseException] = []
    todo = iter(work)
    pending: dict[Future[Any], Any] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch-remote") as pool:
        while True:
            while len(pending) < concurrency and not stop and not cancel.is_set():
                nxt = next(todo, None)
                if nxt is None:
                    break
                item, req, key = nxt
                f = pool.submit(service.ask, req, cancel=cancel, batch_id=batch_id, resume_key=key)
                pending[f] = item
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                item = pending.pop(f)
                try:
                    out = f.result()
                except ItemClaimed:
                    summary.skipped += 1
                    progress.update()
                except (StoreError, EndpointError) as e:  # the log or the server is unusable: stop sending
                    if isinstance(e, EndpointError):
                        summary.failed += 1
                        progress.write(f"line {item.line}: the server failed; recorded as failed", file=sys.stderr)
                        progress.update()
                    stop.append(e)
                except AsclepiusError as e:  # this item only (a prompt over the context, say): logged as failed
                    summary.failed += 1
                    progress.write(f"line {item.line}: {type(e).__name__}: {e}", file=sys.stderr)
                    progress.update()
                else:
                    count(item, out, summary, progress)
    if cancel.is_set() and not stop:
        summary.cancelled = True
    if stop:
        store = [e for e in stop if isinstance(e, StoreError)]
        raise store[0] if store else stop[0]


def add_remote_flags(b: argparse.ArgumentParser) -> None:
    from app.cli import validators as v

    r = b.add_argument_group("a remote server (OpenAI-compatible: vLLM, llama.cpp's server, TGI)")
    r.add_argument("--endpoint", type=v.endpoint_url, help="the server's base URL, e.g. http://gpu-host:8000/v1")
    r.add_argument("--endpoint-model", type=v.text, help="the model name the server serves (vLLM --served-model-name)")
    r.add_argument(
        "--api-key-env", help="environment variable holding the API key (default OPENAI_API_KEY; unset: no key)"
    )
    r.add_argument("--concurrency", type=v.bounded_int("concurrency", 1, 64), help="requests in flight (default 4)")
    r.add_argument(
        "--endpoint-timeout", type=v.positive_float("endpoint timeout"), help="seconds per attempt (default 600)"
    )
    r.add_argument(
        "--endpoint-attempts",
        type=v.bounded_int("endpoint attempts", 1, 100),
        help="tries per request before the batch stops (default 5; backoff honours Retry-After)",
    )
