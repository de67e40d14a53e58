"""Running the items: two schedulers over the one ask service, and one policy for counting what came back.

- :func:`run_by_note` (a local model, whose runs are serialised): consecutive items about one note go to
  ``AskService.ask_many``, which evaluates the note once and decodes up to ``parallel`` answers together.
- :func:`run_concurrent` (a backend declaring ``capabilities.concurrency``, a remote server): items one by
  one through ``AskService.ask``, up to ``concurrency`` in flight, across notes.

Both count every outcome and every per-item exception through :class:`BatchRun` (``count_outcome``,
``count_failure``), so a failure means the same thing, and stops the batch or not, on either path.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.cli.batch.items import BatchItem, count_lines, group_by_note, item_key, windows
from app.cli.batch.output import write_output
from app.core.errors import AsclepiusError, Cancelled, EndpointError, StoreError, UsageError

if TYPE_CHECKING:
    from app.cli.batch.options import BatchOptions

Work = tuple[BatchItem, Any, str]
"""(item, its ``AskRequest``, its resume key on the model being run)."""


@dataclass
class BatchCounts:
    """What happened to the items (stored with the batch in the log: the field names are its keys)."""

    valid: int = 0
    """Rows that became items."""
    invalid: int = 0
    """Rows rejected (each reported with its line)."""
    ran: int = 0
    """Items answered in this run (per model)."""
    skipped: int = 0
    """Items already done (a finished run with their resume key), or claimed by another batch on the log."""
    failed: int = 0
    """Items refused or failed (each recorded as a failed run)."""
    cancelled: bool = False
    """The user stopped the batch (Ctrl-C)."""
    stopped: str | None = None
    """Why the batch stopped early (the server went away), if it did."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class BatchRun:
    """One batch being run: what both schedulers share, and the one outcome policy."""

    batch_id: int
    """The batch's row in the log (every run is recorded under it)."""
    cancel: threading.Event
    """Set by Ctrl-C: no new item starts, the ones running end as cancelled."""
    progress: Any
    """The progress bar (tqdm): ``update`` per item, ``write`` for a message that keeps the bar intact."""
    counts: BatchCounts = field(default_factory=BatchCounts)

    def count_outcome(self, item: BatchItem, out: Any) -> bool:
        """Add one ``AskOutcome``; False when it was cancelled (the batch stops)."""
        from app.core.types import FinishReason

        if out.result.finish_reason == FinishReason.CANCELLED:
            self.counts.cancelled = True
            return False
        if out.result.finish_reason == FinishReason.ERROR or out.log_error:
            self.counts.failed += 1
            self.say(f"line {item.line}: {out.result.error or out.log_error}")
        else:
            self.counts.ran += 1
        self.progress.update()
        return True

    def count_failure(self, item: BatchItem, exc: BaseException) -> bool:
        """Add one item whose ask raised (``ItemClaimed`` or an ``AsclepiusError``); True when the batch must
        stop and re-raise it: the log is unusable (StoreError, not counted: nothing more can be recorded) or
        the server stays unreachable (EndpointError: this item failed, the rerun resumes)."""
        from app.store.claims import ItemClaimed

        if isinstance(exc, ItemClaimed):  # another batch on this log has it (done or running): never run it twice
            self.counts.skipped += 1
            self.progress.update()
            return False
        if isinstance(exc, StoreError):
            return True
        self.counts.failed += 1  # the service has logged the run as failed
        if isinstance(exc, EndpointError):
            self.say(f"line {item.line}: the server failed; recorded as failed")
        else:
            self.say(f"line {item.line}: {type(exc).__name__}: {exc}")
        self.progress.update()
        return isinstance(exc, EndpointError)

    def say(self, message: str) -> None:
        self.progress.write(message, file=sys.stderr)


def _note_groups(work: list[Work]) -> Iterator[list[Work]]:
    """Runs of consecutive items about one note (the work is grouped by note)."""
    group: list[Work] = []
    for w in work:
        if group and group[0][1].note != w[1].note:
            yield group
            group = []
        group.append(w)
    if group:
        yield group


def run_by_note(service: Any, work: list[Work], run: BatchRun, parallel: int | None) -> None:
    """Ask each note's items together through the ask service (which logs each run).

    A group goes to ``AskService.ask_many`` (up to ``parallel`` answers decoded together; 1: in turn); a
    group with an item that cannot run (a prompt over the context, say) is asked item by item so the others
    still run and that one is reported.
    """
    from app.store.claims import ItemClaimed

    for group in _note_groups(work):
        if run.cancel.is_set():
            run.counts.cancelled = True
            return
        if len(group) > 1 and parallel != 1:
            try:
                outs = service.ask_many(
                    [r for _, r, _ in group],
                    cancel=run.cancel,
                    parallel=parallel,
                    batch_id=run.batch_id,
                    resume_keys=[k for _, _, k in group],
                )
            except StoreError:
                raise  # the log is unusable: stop the batch (exit 6), nothing is lost
            except (AsclepiusError, ItemClaimed) as e:
                # Checked before anything ran, or another batch on this log claimed one of the items: ask them
                # one by one below, which reports the bad one and skips claimed ones (answers this group's
                # parallel pass already finished are claimed by their own runs, so they are skipped, not rerun).
                # A request the service already logged as refused is reported here, not asked (and logged) again.
                refused = getattr(e, "request_index", None)
                if refused is not None:
                    run.count_failure(group[refused][0], e)
                    group = [w for j, w in enumerate(group) if j != refused]
            else:
                for (item, _, _), out in zip(group, outs, strict=False):
                    if not run.count_outcome(item, out):
                        return
                if len(outs) < len(group):
                    run.counts.cancelled = True
                    return
                continue
        if not _ask_in_turn(service, group, run):
            return


def _ask_in_turn(service: Any, group: list[Work], run: BatchRun) -> bool:
    """Each item through ``service.ask``; False when the batch stops (cancelled)."""
    from app.store.claims import ItemClaimed

    for item, req, key in group:
        if run.cancel.is_set():
            run.counts.cancelled = True
            return False
        try:
            out = service.ask(req, cancel=run.cancel, batch_id=run.batch_id, resume_key=key)
        except (ItemClaimed, AsclepiusError) as e:
            if run.count_failure(item, e):
                raise
            continue
        if not run.count_outcome(item, out):
            return False
    return True


def run_concurrent(service: Any, work: list[Work], run: BatchRun, concurrency: int) -> None:
    """Ask items through the ask service with up to ``concurrency`` in flight (a remote backend).

    Each item is one ``service.ask`` (the service starts, finishes or fails its run, claims included); the
    outcomes are counted here, on the calling thread. When the server stays unreachable (EndpointError) no
    new item is sent, the ones in flight end (each recorded), and the error is raised: exit 8, resumable.
    """
    from app.store.claims import ItemClaimed

    stop: list[BaseException] = []
    todo = iter(work)
    pending: dict[Future[Any], BatchItem] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch-remote") as pool:
        while True:
            while len(pending) < concurrency and not stop and not run.cancel.is_set():
                nxt = next(todo, None)
                if nxt is None:
                    break
                item, req, key = nxt
                f = pool.submit(service.ask, req, cancel=run.cancel, batch_id=run.batch_id, resume_key=key)
                pending[f] = item
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                item = pending.pop(f)
                try:
                    out = f.result()
                except (ItemClaimed, AsclepiusError) as e:
                    if run.count_failure(item, e):  # the log or the server is unusable: stop sending
                        stop.append(e)
                else:
                    run.count_outcome(item, out)  # a cancel also stops the sending loop above
    if run.cancel.is_set() and not stop:
        run.counts.cancelled = True
    if stop:
        store = [e for e in stop if isinstance(e, StoreError)]
        raise store[0] if store else stop[0]


def progress_bar(total: int, out: Any = None) -> Any:
    """done/total with rate and ETA on stderr (tqdm): redrawn in place on a terminal, a line every few
    seconds when stderr is a file, so a log of a long batch stays readable."""
    from tqdm import tqdm

    out = out or sys.stderr
    tty = hasattr(out, "isatty") and out.isatty()
    return tqdm(total=total, desc="batch", unit="item", file=out, mininterval=0.1 if tty else 5.0, dynamic_ncols=tty)


DEMO_NOTE = "-- note: the demo model (Gemma 3 270M) is not trained for clinical tasks"


def run_batch(opts: BatchOptions, ctx: Any, log: Any, cancel: threading.Event, remote: Any = None) -> int:
    """Run every item on every model (or on ``remote``), write ``opts.output``; the exit code.

    The batch is recorded in the log with its counts, also when a server that went away stops it (the
    error is then raised after the summary is printed).
    """
    models = [remote.model] if remote is not None else [ctx.model(m) for m in (opts.models or [None])]
    from app.core.hashing import sha256_file  # the one streaming file hash (standard library only)

    batch_id = log.start_batch(opts.input.name, sha256_file(opts.input))
    make = _request_maker(ctx, opts)
    counts = BatchCounts()
    open_engine = (lambda _m: remote) if remote is not None else ctx.engine
    try:
        with progress_bar(count_lines(opts.input) * len(models)) as progress:
            run = BatchRun(batch_id, cancel, progress, counts)
            _run_windows(opts, ctx, log, run, models, make, open_engine)
    except AsclepiusError as e:
        if isinstance(e, StoreError):
            raise
        # The server went away: keep the record straight, say what is done, then exit with its code.
        counts.stopped = str(e)
        log.finish_batch(batch_id, counts.as_dict())
        print(
            f"-- summary: {counts.ran} run, {counts.skipped} skipped (already done), {counts.failed} failed; "
            "stopped: run the same command again to go on",
            file=sys.stderr,
        )
        raise
    log.finish_batch(batch_id, counts.as_dict())
    if opts.output is not None:
        n_out = write_output(log, opts.input, opts.output, [(m, make) for m in models], opts.follow_symlinks)
        print(f"-- wrote {n_out} answers to {opts.output}", file=sys.stderr)
    print(
        f"-- summary: {counts.ran} run, {counts.skipped} skipped (already done), {counts.failed} failed, "
        f"{counts.invalid} rows rejected{', cancelled' if counts.cancelled else ''}",
        file=sys.stderr,
    )
    if counts.cancelled:
        return Cancelled.exit_code
    if counts.failed:
        return 7
    return UsageError.exit_code if counts.invalid else 0


def _request_maker(ctx: Any, opts: BatchOptions) -> Callable[[BatchItem], Any]:
    """Item -> request, by the service's one sampling rule: a flag > the user's settings > the task preset."""
    requests = ctx.service(None, None)
    return lambda it: requests.request(
        it.note, it.task, it.instruction, explicit=opts.sampling, prompt_style=opts.prompt_style
    )


def _run_windows(
    opts: BatchOptions, ctx: Any, log: Any, run: BatchRun, models: list[Any], make: Callable[[BatchItem], Any],
    open_engine: Callable[[Any], Any],
) -> None:  # fmt: skip
    """model -> window of rows -> grouped by note -> what is not done yet -> run through the ask service."""
    for n, model in enumerate(models):
        engine = None
        try:
            for items, errors in windows(opts.input):
                if n == 0:  # rows are checked (and reported) on the first model's pass
                    for line, problem in errors:
                        run.say(f"{opts.input.name}: line {line}: {problem}")
                    run.counts.valid += len(items)
                    run.counts.invalid += len(errors)
                run.progress.update(len(errors))
                work = [(it, req, item_key(model.sha256, req, it)) for it in group_by_note(items) for req in [make(it)]]
                done = log.finished_keys(k for _, _, k in work)
                todo = [w for w in work if w[2] not in done]
                run.counts.skipped += len(done)
                run.progress.update(len(done))
                lines = f"lines {items[0].line}-{items[-1].line}" if items else "rows"
                run.say(
                    f"-- batch {lines}: {len(items)} valid items, model {model.file_name}; {len(done)} already done, "
                    f"{len(todo)} to run; {len(errors)} rows rejected"
                )
                if not todo:
                    continue
                if run.cancel.is_set():
                    run.counts.cancelled = True
                    break
                if engine is None:
                    if model.is_demo:
                        run.say(DEMO_NOTE)
                    engine = open_engine(model)
                service = ctx.service(engine, log)
                concurrency = engine.capabilities.concurrency
                if concurrency is not None:  # a remote server: items in flight at once, across notes
                    run_concurrent(service, todo, run, concurrency)
                else:
                    run_by_note(service, todo, run, opts.parallel)
                if run.counts.cancelled:
                    break
        finally:
            if engine is not None:
                engine.close()
        if run.counts.cancelled:
            break
