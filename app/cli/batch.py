"""``asclepius batch INPUT``: run many (note, task, instruction) items through one or more models.

- Input: CSV (header line) or JSON Lines with ``note`` or ``note_path`` (relative to the input file),
  ``task`` (name or short name), ``instruction`` and an optional ``id``. Every row is checked first and
  every problem reported with its line number; the valid rows still run.
- Work is grouped by note: each note is read once and its questions are decoded together
  (``AskService.ask_many``; ``--parallel N`` caps how many, 1 = one at a time).
- Resumable: a run is recorded as started before the engine runs and finished after; an item whose
  resume key (model sha256, sampling parameters, note, task, instruction, id) already has a finished run
  is skipped, so a batch killed at any moment and started again finishes the rest, with no duplicates.
- Progress (done / total, rate, ETA; tqdm) goes to stderr; answers go to the log, and to ``--output`` if given.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import AsclepiusError, Cancelled, UsageError
from app.core.records import Row, read_records

MAX_INPUT_BYTES = 1024 * 1024 * 1024
MAX_INSTRUCTION_CHARS = 4000
"""Far more than any real instruction; a longer cell is a pasted note in the wrong column."""
COLUMNS = ("id", "note", "note_path", "task", "instruction")


@dataclass(frozen=True)
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


def _records(path: Path) -> list[Row]:
    """(line number, record or a problem) for each data row."""
    names, rows = read_records(path, max_bytes=MAX_INPUT_BYTES, what="batch input")
    if path.suffix.lower() == ".csv":
        missing = [c for c in ("task", "instruction") if c not in names]
        if not set(names) & {"note", "note_path"}:
            missing.append("note or note_path")
        if missing:
            raise UsageError(f"{path.name}: missing columns: {', '.join(missing)} (have: {', '.join(sorted(names))})")
    return rows


def parse_input(path: Path) -> Parsed:
    from app.core.errors import NoteError
    from app.core.notes import read_note_file, validate_note
    from resources import get_task

    out = Parsed()
    seen_ids: dict[str, int] = {}
    for line, rec in _records(path):
        if isinstance(rec, str):
            out.errors.append((line, rec))
            continue
        problems = []
        cell = {k: rec.get(k) for k in COLUMNS}
        for k, v in cell.items():
            if v is not None and not isinstance(v, str | int):
                problems.append(f"{k} must be text")
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
            elif cell["note_path"].strip():
                note = read_note_file(path.parent / cell["note_path"].strip())
            else:
                problems.append("note and note_path are both empty")
        except NoteError as e:
            problems.append(str(e))
        if problems:
            out.errors.append((line, "; ".join(problems)))
        else:
            out.items.append(Item(line, item_id, note, task, instruction))
    return out


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
            except AsclepiusError:
                pass  # checked before anything ran: ask them one by one below, reporting the bad one
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


def write_output(log: Any, path: Path, keys: dict[str, tuple[Item, str]]) -> int:
    """One row per item and model that has a finished answer (skipped items included)."""
    latest = log.finished_answers(keys)
    fields = ["line", "id", "model_file", "task", "instruction", "answer", "finish_reason", "run_id", "tokens"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # answers quote patient data
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fields, lineterminator="\n") if path.suffix.lower() == ".csv" else None
        if w:
            w.writeheader()
        for key, (item, model_file) in keys.items():
            r = latest.get(key)
            if r is None:
                continue
            rec = {
                "line": item.line, "id": item.item_id, "model_file": model_file, "task": item.task,
                "instruction": item.instruction, "answer": r.answer, "finish_reason": r.finish_reason,
                "run_id": r.uuid, "tokens": r.completion_tokens,
            }  # fmt: skip
            if w:
                w.writerow(rec)
            else:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return len(latest)


def cmd_batch(args: argparse.Namespace) -> int:
    from app.cli.context import CliContext
    from app.cli.log_cmds import open_log

    path = Path(args.input)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".jsonl"):
        raise UsageError("--output must end in .csv or .jsonl")
    parallel = getattr(args, "parallel", None)
    if parallel is not None and not 1 <= parallel <= 64:
        raise UsageError(f"--parallel must be 1..64, not {parallel}")
    ctx = CliContext.create(threads=args.threads)
    log = open_log(args)  # before loading any model: a read-only or locked log is reported first
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        return _run(args, ctx, log, path, cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        log.close()


def _run(args: argparse.Namespace, ctx: Any, log: Any, path: Path, cancel: threading.Event) -> int:
    from app.cli.ask import overrides_from_args

    parsed = parse_input(path)
    for line, problem in parsed.errors:
        print(f"{path.name}: line {line}: {problem}", file=sys.stderr)
    summary = Summary(valid=len(parsed.items), invalid=len(parsed.errors))
    items = group_by_note(parsed.items)
    models = [ctx.model(m) for m in (args.model or [None])]
    batch_id = log.start_batch(path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    all_keys: dict[str, tuple[Item, str]] = {}
    plans = []
    explicit = overrides_from_args(args)
    requests = ctx.service(None, None)
    for model in models:
        work = []
        for it in items:
            # The service's one sampling rule: a flag > the user's settings > the task preset.
            req = requests.request(it.note, it.task, it.instruction, explicit=explicit, prompt_style=args.prompt_style)
            key = _key(model.sha256, req, it)
            all_keys[key] = (it, model.file_name)
            work.append((it, req, key))
        done = log.finished_keys(k for _, _, k in work)
        summary.skipped += len(done)
        plans.append((model, [w for w in work if w[2] not in done]))
    total = sum(len(w) for _, w in plans)
    print(
        f"-- batch: {len(items)} valid items x {len(models)} model(s); {summary.skipped} already done, "
        f"{total} to run; {len(parsed.errors)} rows rejected",
        file=sys.stderr,
    )
    with progress_bar(total) as progress:
        for model, work in plans:
            if not work or cancel.is_set():
                continue
            if model.is_demo:
                progress.write(
                    "-- note: the demo model (Gemma 3 270M) is not trained for clinical tasks", file=sys.stderr
                )
            engine = ctx.engine(model)
            try:
                run_model(
                    ctx.service(engine, log), work, batch_id, cancel, summary, progress, getattr(args, "parallel", None)
                )
            finally:
                engine.close()
    log.finish_batch(batch_id, summary.as_dict())
    if args.output:
        n = write_output(log, Path(args.output), all_keys)
        print(f"-- wrote {n} answers to {args.output}", file=sys.stderr)
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


def register(subparsers: Any) -> None:
    b = subparsers.add_parser("batch", help="run a CSV/JSONL of questions through one or more models (resumable)")
    b.add_argument("input", help=".csv or .jsonl with note or note_path, task, instruction, optional id")
    b.add_argument("--model", action="append", help="model (repeat for several); default: the default model")
    b.add_argument("--output", help="also write answers to this .csv or .jsonl (mode 0600)")
    b.add_argument(
        "--max-tokens", type=int, help="answer token limit (default: the Settings cap or the task's, the lower)"
    )
    b.add_argument("--temperature", type=float, help="0 = greedy (default: the Settings value)")
    b.add_argument("--seed", type=int, help="default: the Settings value")
    b.add_argument("--prompt-style", help="prompt style id (default: each model's own)")
    b.add_argument("--threads", type=int)
    b.add_argument(
        "--parallel", type=int, help="answers about one note decoded together (default: from the context; 1 = in turn)"
    )
    b.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    b.set_defaults(func=cmd_batch)
