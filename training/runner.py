"""Running a stage's requests: content-derived ids, an append-only result log, resume, progress.

The result log (``<stage>.results.jsonl`` under the output directory) is append-only JSON lines:

- ``sent``: written (and flushed) just before a request's first HTTP attempt leaves;
- ``submitted`` (``--background`` only): the server accepted the request and named its response
  (``response_id``); written the moment that id arrives;
- ``ok`` / ``failed``: written the moment the reply is parsed, with no other await in between, so it is in
  the operating system's page cache (safe from a SIGKILL of this process) before anything else runs; then
  ``fdatasync``-ed (group commit in a thread: one sync covers every line written before it) before the worker
  takes its next request, so it is on disk too (safe from a power loss or an OS crash).

A run killed at any moment loses only the replies that had not arrived yet; a torn last line is cut off when
the log is opened again. Starting again skips every id with an ``ok`` line (a received reply is never asked
for again) and sends the rest, failed ones included. An id whose last line is ``sent`` was in flight when the
earlier run stopped: it is sent again, unavoidably (its reply never arrived), and counted as "re-sent after
an interruption" (``Usage.resent_after_interruption``), apart from ordinary retries. With ``--background``
an id whose last line is ``submitted`` (or ``failed`` with a ``response_id``: only fetching it failed) is not
sent again: its response is fetched by id (``Usage.recovered_after_interruption``), so a kill re-sends only
requests whose id had not come back yet (training.endpoint.background). Requests are produced
lazily by the caller's iterator and pulled by ``concurrency`` workers, so memory does not grow with the
number of requests (only the sets of finished and interrupted ids do).

Ctrl+C or SIGTERM stops sending new requests and waits for those in flight, so their replies are recorded
and nothing is sent twice on resume (a second Ctrl+C abandons them); the run then ends with exit code 130.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.core.errors import Cancelled
from training.endpoint.chat import ChatRequest, Completion
from training.endpoint.client import Endpoint
from training.endpoint.settings import ChatSettings
from training.endpoint.usage import Usage

FILE_MODE = 0o600


def request_id(stage: str, prompt_key: str, *content: Any) -> str:
    """sha256 of the stage, the prompt version and the request's content (first 32 hex digits)."""
    payload = json.dumps([stage, prompt_key, *content], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file this package wrote (a torn last line, from a kill, is skipped)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            yield json.loads(line)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultLog:
    """The append-only record of one stage's requests in one output directory.

    ``durable`` (default): :meth:`sync` waits until every line written so far is on disk (``fdatasync`` in
    a worker thread; callers waiting at the same time share one sync). Without it, lines are only flushed to
    the operating system, which survives the process being killed but not the machine losing power."""

    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.interrupted: set[str] = set()
        """Ids an earlier run sent and never got a reply for (their last line is ``sent``)."""
        self.submitted: dict[str, str] = {}
        """Background mode: id -> the response id an earlier run got and never fetched the reply of."""
        self.repaired_bytes = 0
        self._written = 0
        self._synced = 0
        self._sync: asyncio.Future[None] | None = None
        if path.exists():
            self._repair()
            for rec in read_jsonl(path):
                rid, status = rec["id"], rec["status"]
                if status == "sent":
                    self.interrupted.add(rid)
                    self.submitted.pop(rid, None)
                    continue
                self.interrupted.discard(rid)
                if status == "submitted" or (status == "failed" and rec.get("response_id")):
                    self.submitted[rid] = rec["response_id"]
                else:
                    self.submitted.pop(rid, None)
                if status == "submitted":
                    continue
                if status == "ok":
                    self.done.add(rid)
                    self.failed.discard(rid)
                elif rid not in self.done:
                    self.failed.add(rid)
            self.interrupted -= self.done
            for rid in self.done:
                self.submitted.pop(rid, None)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # a log that exists already (copied in, restored) is made private too
        self._fh: TextIO = os.fdopen(fd, "a", encoding="utf-8")

    def _repair(self) -> None:
        """Cut a torn last line (the process was killed mid-write) so appends start on a fresh line."""
        size = self.path.stat().st_size
        if size == 0:
            return
        with self.path.open("rb+") as fh:
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            # Walk back to the last newline; lines are short, so read the tail in blocks.
            pos = size
            while pos > 0:
                start = max(0, pos - 65536)
                fh.seek(start)
                chunk = fh.read(pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    cut = start + nl + 1
                    break
                pos = start
            else:
                cut = 0
            fh.truncate(cut)
            self.repaired_bytes = size - cut

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()  # in the OS page cache now: survives a SIGKILL of this process
        self._written += 1

    def mark_sent(self, rid: str) -> None:
        """Record that ``rid`` is about to be sent (so a kill before its reply is told apart on resume)."""
        self._write({"id": rid, "status": "sent", "at": utc_now()})

    def mark_submitted(self, rid: str, response_id: str) -> None:
        """Background mode: the server accepted ``rid`` as ``response_id`` (fetched by that id on resume)."""
        self._write({"id": rid, "status": "submitted", "response_id": response_id, "at": utc_now()})

    def append(self, record: dict[str, Any]) -> None:
        """A finished request (``ok`` or ``failed``); call :meth:`sync` to wait until it is on disk."""
        self._write(record)
        self.interrupted.discard(record["id"])
        if record.get("response_id") and record["status"] == "failed":
            self.submitted[record["id"]] = record["response_id"]
        else:
            self.submitted.pop(record["id"], None)
        if record["status"] == "ok":
            self.done.add(record["id"])
            self.failed.discard(record["id"])
        else:
            self.failed.add(record["id"])

    async def sync(self) -> None:
        """Wait until every line written so far is on disk (no-op unless ``durable``). Group commit: one
        ``fdatasync`` at a time, in a thread so the event loop keeps serving replies; a caller whose line
        was written after the running sync started waits for the next one."""
        if not self.durable:
            return
        target = self._written
        while self._synced < target:
            if self._sync is None or self._sync.done():
                self._sync = asyncio.ensure_future(self._sync_once())
            await asyncio.shield(self._sync)  # a cancelled caller does not cancel the others' sync

    async def _sync_once(self) -> None:
        upto = self._written
        sync = getattr(os, "fdatasync", os.fsync)  # an append's new size is data to fdatasync: enough here
        await asyncio.get_running_loop().run_in_executor(None, sync, self._fh.fileno())
        self._synced = max(self._synced, upto)  # set before the task is done, so no waiter sees it stale

    def close(self) -> None:
        self._fh.flush()
        if self.durable and self._synced < self._written:
            os.fsync(self._fh.fileno())
        self._fh.close()

    def failures(self, ids: set[str] | None = None) -> dict[str, int]:
        """Requests whose outcome is ``failed`` (of ``ids`` only, when given), counted by error, most common
        first: what a stage's summary names."""
        recs = (r for r in self.records("failed") if ids is None or r["id"] in ids)
        return dict(Counter(str(r.get("error") or "unknown error") for r in recs).most_common())

    def records(self, status: str = "ok") -> Iterator[dict[str, Any]]:
        """The latest record of each id with this status, in log order (first appearance)."""
        self._fh.flush()
        seen: set[str] = set()
        for rec in read_jsonl(self.path):
            if rec["status"] == status and rec["id"] not in seen:
                if status == "failed" and rec["id"] in self.done:
                    continue
                seen.add(rec["id"])
                yield rec


@dataclass
class Progress:
    """A tqdm bar on stderr: count, rate, ETA, and tokens spent so far."""

    total: int
    desc: str
    usage: Usage
    enabled: bool = True

    def __post_init__(self) -> None:
        self._bar: Any = None
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit="req", file=sys.stderr, dynamic_ncols=True)

    def update(self) -> None:
        if self._bar is not None:
            u = self.usage
            self._bar.set_postfix_str(f"tokens {u.total_tokens:,} failed {u.failed} retries {u.retries}", refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


OnResult = Callable[[ChatRequest, Completion], None]


async def _run(
    cfg: ChatSettings,
    requests: Iterable[ChatRequest],
    log: ResultLog,
    usage: Usage,
    progress: Progress,
    on_result: OnResult | None,
    stage: str,
) -> None:
    it = iter(requests)
    in_flight: set[str] = set()
    deleting: set[asyncio.Task[bool]] = set()
    stop = asyncio.Event()
    workers: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
            print(
                f"\nasclepius: stopping: waiting for {len(in_flight)} requests in flight so none is lost "
                "(press Ctrl+C again to abandon them)",
                file=sys.stderr,
            )
        else:
            for w in workers:
                w.cancel()

    loop = asyncio.get_running_loop()
    handled = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
            handled.append(sig)

    async with Endpoint(cfg, usage) as ep:

        async def worker() -> None:
            for req in it:  # workers share one lazy iterator: requests are built as they are sent
                if stop.is_set():
                    return
                if req.id in log.done or req.id in in_flight:
                    continue
                in_flight.add(req.id)
                usage.requests += 1
                earlier = log.submitted.get(req.id) if cfg.background else None
                if req.id in log.interrupted or (req.id in log.submitted and not cfg.background):
                    usage.resent_after_interruption += 1
                try:
                    res = await ep.complete(
                        req,
                        on_send=lambda rid=req.id: log.mark_sent(rid),
                        on_submitted=lambda resp, rid=req.id: log.mark_submitted(rid, resp),
                        response_id=earlier,
                    )
                finally:
                    in_flight.discard(req.id)
                rec = {
                    "id": req.id,
                    "stage": stage,
                    "status": "ok" if res.ok else "failed",
                    "attempts": res.attempts,
                    "model": cfg.served_model,
                    "at": utc_now(),
                    "meta": req.meta,
                }
                if res.ok:
                    usage.succeeded += 1
                    rec.update(
                        text=res.text,
                        finish_reason=res.finish_reason,
                        prompt_tokens=res.prompt_tokens,
                        completion_tokens=res.completion_tokens,
                    )
                    # The server's own account, as batch --endpoint logs it (the judge's ratings carry it).
                    rec.update(
                        {k: v for k, v in (("reported_model", res.reported_model),
                                           ("system_fingerprint", res.system_fingerprint)) if v}
                    )  # fmt: skip
                else:
                    usage.failed += 1
                    rec["error"] = res.error
                if res.response_id:
                    rec["response_id"] = res.response_id
                log.append(rec)  # no await since the reply was parsed: a kill now still finds it on resume
                await log.sync()  # on disk before this worker sends anything else
                if res.ok and res.response_id and not cfg.keep_responses:
                    # Only now that the reply is on disk: the server's stored copy is no longer needed.
                    task = asyncio.create_task(ep.forget(res.response_id))
                    deleting.add(task)
                    task.add_done_callback(deleting.discard)
                if on_result is not None:
                    on_result(req, res)
                progress.update()

        workers.extend(asyncio.create_task(worker()) for _ in range(cfg.concurrency))
        try:
            await asyncio.gather(*workers)
            if deleting:
                await asyncio.gather(*deleting)
        except BaseException as exc:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if isinstance(exc, asyncio.CancelledError) and stop.is_set():
                again = "fetched by id, or sent again if no id had come back" if cfg.background else "sent again"
                raise Cancelled(f"cancelled; requests in flight were abandoned (they are {again} next run)") from None
            raise
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
    if stop.is_set():
        raise Cancelled(
            f"stopped after {usage.requests:,} requests, every reply recorded; run the same command to go on"
        )


def run_requests(
    cfg: ChatSettings,
    requests: Iterable[ChatRequest],
    log: ResultLog,
    *,
    total: int,
    stage: str,
    on_result: OnResult | None = None,
    progress: bool = True,
    usage: Usage | None = None,
) -> Usage:
    """Send every request whose id is not done yet, ``cfg.concurrency`` at a time; return the usage. A caller
    that passes ``usage`` still holds what was spent when the run is stopped (an exception)."""
    usage = usage if usage is not None else Usage()
    bar = Progress(total, stage, usage, enabled=progress)
    t0 = time.perf_counter()
    try:
        asyncio.run(_run(cfg, requests, log, usage, bar, on_result, stage))
    finally:
        usage.elapsed_s = time.perf_counter() - t0
        bar.close()
    return usage
