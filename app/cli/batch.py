"""``asclepius batch INPUT``: run many (note, task, instruction) items through one or more models.

- Input: CSV (header line) or JSON Lines with ``note`` or ``note_path`` (relative to the input file),
  ``task`` (name or short name), ``instruction`` and an optional ``id``. The input is streamed in windows
  of ``WINDOW_ROWS`` rows; every problem is reported with its line number as its window is reached; the
  valid rows still run.
- Work is grouped by note within a window: each note is read once and its questions are decoded together
  (``AskService.ask_many``; ``--parallel N`` caps how many, 1 = one at a time).
- Resumable: a run is recorded as started before the engine runs and finished after; an item whose
  resume key (model sha256, sampling parameters, note, task, instruction, id) already has a finished run
  is skipped, so a batch killed at any moment and started again finishes the rest, with no duplicates.
  Each item is claimed in the log as its run starts (app/store/claims.py): two batches on one log share
  the work and never run an item twice.
- Progress (done / total, rate, ETA; tqdm) goes to stderr; answers go to the log, and to ``--output`` if given.
- ``--endpoint URL --endpoint-model NAME`` sends the same prompts to an OpenAI-compatible server instead
  (``app.core.remote.RemoteEngine`` behind the same ask service): up to ``--concurrency`` items in flight,
  each logged as it ends. A server that stays unreachable stops the batch (exit 8) with the items done kept
  and the failing ones recorded as failed; the same command resumes later. The command then runs outside the
  network namespace and may reach that URL's host and port only (``netns.calls_endpoint``).
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.cli.batch_remote import add_remote_flags, endpoint_settings, run_concurrent
from app.core.bounds import check_parallel
from app.core import netns
from app.core.errors import AsclepiusError, Cancelled, UsageError
from app.core.records import Row, check_file, iter_records, type_problems

MAX_INPUT_BYTES = 1024 * 1024 * 1024
MAX_INSTRUCTION_CHARS = 4000
"""Far more than any real instruction; a longer cell is a pasted note in the wrong column."""
COLUMNS = ("id", "note", "note_path", "task", "instruction")
WINDOW_ROWS = 2000
"""Rows read, grouped by note, checked against the log and run at a time. The first answer starts after one
window, not after the whole file (a 1e6-row input took 87 s and 1.86 GB before its first item), and memory
stays flat however long the input is. Notes are grouped within a window: put a note's rows together."""
DEMO_NOTE = "-- note: the demo model (Gemma 3 270M) is not trained for clinical tasks"
MAX_SHARED_NOTES = 10_000
"""Distinct inline notes kept as one shared string each (a repeated note costs one copy, not one a row)."""


@dataclass(frozen=True, slots=True)
class Item:
    line: int
    item_id: str
    note: str
    task: str
    instruction: str


@dataclass
class Parsed:
    items: list[Item] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _records(path: Path) -> Iterator[Row]:
    """(line number, record or a problem) for each data row, streamed."""
    names, rows = iter_records(path, max_bytes=MAX_INPUT_BYTES, what="batch input")
    if path.suffix.lower() == ".csv":
        missing = [c for c in ("task", "instruction") if c not in names]
        if not set(names) & {"note", "note_path"}:
            missing.append("note or note_path")
        if missing:
            raise UsageError(f"{path.name}: missing columns: {', '.join(missing)} (have: {', '.join(sorted(names))})")
    return rows


def parse_input(path: Path) -> Parsed:
    """Every row of a (small) input at once: the items and the problems with their line numbers."""
    out = Parsed()
    for x in iter_input(path):
        (out.items if isinstance(x, Item) else out.errors).append(x)  # type: ignore[arg-type]
    return out


def windows(path: Path, size: int = WINDOW_ROWS) -> Iterator[tuple[list[Item], list[tuple[int, str]]]]:
    """The input in windows of ``size`` rows: (valid items, row problems), streamed."""
    items: list[Item] = []
    errors: list[tuple[int, str]] = []
    for x in iter_input(path):
        (items if isinstance(x, Item) else errors).append(x)  # type: ignore[arg-type]
        if len(items) + len(errors) >= size:
            yield items, errors
            items, errors = [], []
    if items or errors:
        yield items, errors


def iter_input(path: Path) -> Iterator[Item | tuple[int, str]]:
    """Each data row as an Item, or (line, problem): streamed, so memory does not grow with the file."""
    from app.core.errors import NoteError
    from app.core.notes import read_note_file, validate_note
    from resources import get_task

    seen_ids: dict[str, int] = {}
    notes: dict[str, str] = {}  # one string per distinct note, however many rows repeat it
    for line, rec in _records(path):
        if isinstance(rec, str):
            yield (line, rec)
            continue
        problems = type_problems(rec, COLUMNS, numbers_ok=("id",))
        cell = {k: rec.get(k) for k in COLUMNS}
        cell = {k: "" if v is None else str(v) for k, v in cell.items()}
        item_id = cell["id"].strip()
        if item_id:
            if item_id in seen_ids:
                problems.append(f"duplicate id {item_id!r} (first on line {seen_ids[item_id]})")
            else:
                seen_ids[item_id] = line
        task = ""
        if not cell["task"].strip():
            problems.append("task is empty")
        else:
            try:
                task = get_task(cell["task"].strip()).name
            except KeyError:
                problems.append(f"unknown task {cell['task'].strip()[:60]!r}")
        instruction = cell["instruction"].strip()
        if not instruction:
            problems.append("instruction is empty")
        elif len(instruction) > MAX_INSTRUCTION_CHARS:
            problems.append(f"instruction is {len(instruction):,} characters (limit {MAX_INSTRUCTION_CHARS:,})")
        note = ""
        try:
            if cell["note"].strip() and cell["note_path"].strip():
                problems.append("give note or note_path, not both")
            elif cell["note"].strip():
                note = validate_note(cell["note"], "note")
                note = notes.setdefault(note, note) if len(notes) < MAX_SHARED_NOTES else note
            elif cell["note_path"].strip():
                note = read_note_file(path.parent / cell["note_path"].strip())
            else:
                problems.append("note and note_path are both empty")
        except NoteError as e:
            problems.append(str(e))
        if problems:
            yield (line, "; ".join(problems))
        else:
            yield Item(line, item_id, note, task, instruction)


def group_by_note(items: list[Item]) -> list[Item]:
    """Stable order, each note's questions together (first appearance order of notes)."""
    order: dict[str, int] = {}
    for it in items:
        order.setdefault(it.note, len(order))
    return sorted(items, key=lambda it: order[it.note])


def progress_bar(total: int, out: Any = None) -> Any:
    """done/total with rate and ETA on stderr (tqdm): redrawn in place on a terminal, a line every few
    seconds when stderr is a file, so a log of a long batch stays readable."""
    from tqdm import tqdm

    out = out or sys.stderr
    tty = hasattr(out, "isatty") and out.isatty()
    return tqdm(total=total, desc="batch", unit="item", file=out, mininterval=0.1 if tty else 5.0, dynamic_ncols=tty)


@dataclass
class Summary:
    valid: int = 0
    invalid: int = 0
    ran: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: bool = False
    stopped: str | None = None
    """Why the batch stopped early (the server went away), if it did."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _key(model_sha: str, req: Any, item: Item) -> str:
    from app.core.types import note_sha256
    from app.store import params_hash, resume_key

    return resume_key(model_sha, params_hash(req), note_sha256(req.note), req.task, req.instruction, item.item_id)


def run_model(
    service: Any, work: list[tuple[Item, Any, str]], batch_id: int, cancel: threading.Event, summary: Summary,
    progress: Any, parallel: int | None = None,
) -> None:  # fmt: skip
    """Ask each note's items together through the ask service (which logs each run).

    Consecutive items about one note (the work is grouped by note) go to ``AskService.ask_many``, which
    decodes up to ``parallel`` answers together; a group with an item that cannot run (a prompt over the
    context, say) is asked item by item so the others still run and that one is reported.
    """
    from app.core.errors import StoreError
    from app.store.claims import ItemClaimed

    groups: list[list[tuple[Item, Any, str]]] = []
    for w in work:
        if groups and groups[-1][0][1].note == w[1].note:
            groups[-1].append(w)
        else:
            groups.append([w])
    for group in groups:
        if cancel.is_set():
            summary.cancelled = True
            return
        if len(group) > 1 and parallel != 1:
            try:
                outs = service.ask_many(
                    [r for _, r, _ in group],
                    cancel=cancel,
                    parallel=parallel,
                    batch_id=batch_id,
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
                    item = group[refused][0]
                    summary.failed += 1
                    progress.write(f"line {item.line}: {type(e).__name__}: {e}", file=sys.stderr)
                    progress.update()
                    group = [w for j, w in enumerate(group) if j != refused]
            else:
                for (item, _, _), out in zip(group, outs, strict=False):
                    if not _count(item, out, summary, progress):
                        return
                if len(outs) < len(group):
                    summary.cancelled = True
                    return
                continue
        for item, req, key in group:
            if cancel.is_set():
                summary.cancelled = True
                return
            try:
                out = service.ask(req, cancel=cancel, batch_id=batch_id, resume_key=key)
            except ItemClaimed:  # another batch on this log has it (done or running): never run it twice
                summary.skipped += 1
                progress.update()
                continue
            except StoreError:
                raise
            except AsclepiusError as e:  # the service has logged the run as failed
                summary.failed += 1
                progress.write(f"line {item.line}: {type(e).__name__}: {e}", file=sys.stderr)
                progress.update()
                continue
            if not _count(item, out, summary, progress):
                return


def _count(item: Item, out: Any, summary: Summary, progress: Any) -> bool:
    """Add one outcome to the summary; False when it was cancelled (the batch stops)."""
    from app.core.types import FinishReason

    if out.result.finish_reason == FinishReason.CANCELLED:
        summary.cancelled = True
        return False
    if out.result.finish_reason == FinishReason.ERROR or out.log_error:
        summary.failed += 1
        progress.write(f"line {item.line}: {out.result.error or out.log_error}", file=sys.stderr)
    else:
        summary.ran += 1
    progress.update()
    return True


def write_output(
    log: Any, path: Path, out_path: Path, plan: list[tuple[Any, Any]], follow_symlinks: bool = False
) -> int:
    """One row per item and model that has a finished answer (skipped items included), streamed: the input
    is read again window by window, so memory does not grow with it. ``plan``: (model, request maker)."""
    from app.core.privatefile import private_file

    fields = ["line", "id", "model_file", "task", "instruction", "answer", "finish_reason", "run_id", "tokens"]
    n = 0
    # Answers quote patient data: a new 0600 file renamed over the target, never through a link.
    with private_file(out_path, follow_symlinks=follow_symlinks, what="--output") as fh:
        w = csv.DictWriter(fh, fields, lineterminator="\n") if out_path.suffix.lower() == ".csv" else None
        if w:
            w.writeheader()
        for model, make in plan:
            for items, _errors in windows(path):
                keys = {_key(model.sha256, make(it), it): it for it in group_by_note(items)}
                answers = log.finished_answers(keys)
                for key, item in keys.items():
                    r = answers.get(key)
                    if r is None:
                        continue
                    rec = {
                        "line": item.line, "id": item.item_id, "model_file": model.file_name, "task": item.task,
                        "instruction": item.instruction, "answer": r.answer, "finish_reason": r.finish_reason,
                        "run_id": r.uuid, "tokens": r.completion_tokens,
                    }  # fmt: skip
                    if w:
                        w.writerow(rec)
                    else:
                        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
    return n


@netns.calls_endpoint("endpoint")
def cmd_batch(args: argparse.Namespace) -> int:
    from app.cli.context import CliContext
    from app.cli.log_cmds import open_log
    from app.core.privatefile import check_output

    settings = endpoint_settings(args)  # every flag checked before any file is read or the server is asked
    path = Path(args.input)
    check_file(path, MAX_INPUT_BYTES, "batch input")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".jsonl"):
        raise UsageError("--output must end in .csv or .jsonl")
    if args.output:  # before any model runs: `--output dir.csv` must not fail after an hour of work
        check_output(args.output, follow_symlinks=args.follow_symlinks, what="--output")
    if problem := check_parallel(getattr(args, "parallel", None)):
        raise UsageError(problem)
    ctx = CliContext.create(threads=args.threads)
    log = open_log(args)  # before loading any model: a read-only or locked log is reported first
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    remote = None
    try:
        if settings is not None:
            from app.core.remote import RemoteEngine

            remote = RemoteEngine(settings)  # asks GET /models: an unreachable server is reported now (exit 8)
            print(
                f"-- batch on {settings.public_url}, model {settings.served_model!r} (prompt style "
                f"{settings.prompt_style}), up to {settings.concurrency} requests at once",
                file=sys.stderr,
            )
        return _run(args, ctx, log, path, cancel, remote)
    finally:
        signal.signal(signal.SIGINT, previous)
        if remote is not None:
            remote.close()
        log.close()


def _count_lines(path: Path) -> int:
    """Data lines (an estimate of rows for the progress total: a quoted cell may span lines)."""
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return max(0, n - (1 if path.suffix.lower() == ".csv" else 0))


def _requests(ctx: Any, args: argparse.Namespace) -> Any:
    """Item -> request, by the service's one sampling rule: a flag > the user's settings > the task preset."""
    from app.cli.ask import overrides_from_args

    explicit = overrides_from_args(args)
    requests = ctx.service(None, None)
    return lambda it: requests.request(
        it.note, it.task, it.instruction, explicit=explicit, prompt_style=args.prompt_style
    )


def _run(args: argparse.Namespace, ctx: Any, log: Any, path: Path, cancel: threading.Event, remote: Any = None) -> int:
    models = [remote.model] if remote is not None else [ctx.model(m) for m in (args.model or [None])]
    from app.core.hashing import sha256_file  # the one streaming file hash (standard library only)

    batch_id = log.start_batch(path.name, sha256_file(path))
    make = _requests(ctx, args)
    summary = Summary()
    open_engine = (lambda _m: remote) if remote is not None else ctx.engine
    try:
        with progress_bar(_count_lines(path) * len(models)) as progress:
            _run_windows(args, ctx, log, path, cancel, models, make, batch_id, summary, progress, open_engine)
    except AsclepiusError as e:
        from app.core.errors import StoreError

        if isinstance(e, StoreError):
            raise
        # The server went away: keep the record straight, say what is done, then exit with its code.
        summary.stopped = str(e)
        log.finish_batch(batch_id, summary.as_dict())
        print(
            f"-- summary: {summary.ran} run, {summary.skipped} skipped (already done), {summary.failed} failed; "
            "stopped: run the same command again to go on",
            file=sys.stderr,
        )
        raise
    log.finish_batch(batch_id, summary.as_dict())
    if args.output:
        n_out = write_output(log, path, Path(args.output), [(m, make) for m in models], args.follow_symlinks)
        print(f"-- wrote {n_out} answers to {args.output}", file=sys.stderr)
    print(
        f"-- summary: {summary.ran} run, {summary.skipped} skipped (already done), {summary.failed} failed, "
        f"{summary.invalid} rows rejected{', cancelled' if summary.cancelled else ''}",
        file=sys.stderr,
    )
    if summary.cancelled:
        return Cancelled.exit_code
    if summary.failed:
        return 7
    return UsageError.exit_code if summary.invalid else 0


def _run_windows(
    args: argparse.Namespace, ctx: Any, log: Any, path: Path, cancel: threading.Event, models: list[Any],
    make: Any, batch_id: int, summary: Summary, progress: Any, open_engine: Any,
) -> None:  # fmt: skip
    """model -> window of rows -> grouped by note -> what is not done yet -> run through the ask service."""
    for n, model in enumerate(models):
        engine = None
        try:
            for items, errors in windows(path):
                if n == 0:  # rows are checked (and reported) on the first model's pass
                    for line, problem in errors:
                        progress.write(f"{path.name}: line {line}: {problem}", file=sys.stderr)
                    summary.valid += len(items)
                    summary.invalid += len(errors)
                progress.update(len(errors))
                work = [(it, req, _key(model.sha256, req, it)) for it in group_by_note(items) for req in [make(it)]]
                done = log.finished_keys(k for _, _, k in work)
                todo = [w for w in work if w[2] not in done]
                summary.skipped += len(done)
                progress.update(len(done))
                lines = f"lines {items[0].line}-{items[-1].line}" if items else "rows"
                progress.write(
                    f"-- batch {lines}: {len(items)} valid items, model {model.file_name}; {len(done)} already done, "
                    f"{len(todo)} to run; {len(errors)} rows rejected",
                    file=sys.stderr,
                )
                if not todo:
                    continue
                if cancel.is_set():
                    summary.cancelled = True
                    break
                if engine is None:
                    if model.is_demo:
                        progress.write(DEMO_NOTE, file=sys.stderr)
                    engine = open_engine(model)
                service = ctx.service(engine, log)
                concurrency = getattr(engine, "concurrency", None)
                if concurrency is not None:  # a remote server: items in flight at once, across notes
                    run_concurrent(service, todo, batch_id, cancel, summary, progress, concurrency)
                else:
                    run_model(service, todo, batch_id, cancel, summary, progress, getattr(args, "parallel", None))
                if summary.cancelled:
                    break
        finally:
            if engine is not None:
                engine.close()
        if summary.cancelled:
            break


def register(subparsers: Any) -> None:
    from app.cli import validators as v

    b = subparsers.add_parser("batch", help="run a CSV/JSONL of questions through one or more models (resumable)")
    b.add_argument("input", help=".csv or .jsonl with note or note_path, task, instruction, optional id")
    b.add_argument("--model", action="append", help="model (repeat for several); default: the default model")
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
    add_remote_flags(b)
    b.set_defaults(func=cmd_batch)
