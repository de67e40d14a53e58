"""``asclepius batch INPUT``: run many (note, task, instruction) items through one or more models.

- Input: CSV (header line) or JSON Lines with ``note`` or ``note_path`` (relative to the input file),
  ``task`` (name or short name), ``instruction`` and an optional ``id``. Every row is checked first and
  every problem reported with its line number; the valid rows still run.
- Work is grouped by note, so each note's KV state is reused across its questions (the engine reuses it
  when consecutive asks share a note).
- Resumable: a run is recorded as started before the engine runs and finished after; an item whose
  resume key (model sha256, sampling parameters, note, task, instruction, id) already has a finished run
  is skipped, so a batch killed at any moment and started again finishes the rest, with no duplicates.
- Progress (done / total, rate, ETA) goes to stderr; answers go to the log, and to ``--output`` if given.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import AsclepiusError, Cancelled, UsageError
from app.core.records import Row, check_file, read_records, type_problems

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


class Progress:
    """``done/total`` with rate and ETA on stderr: redrawn in place on a terminal, a line a second in a log."""

    def __init__(self, total: int, label: str, out: Any = None) -> None:
        self.total, self.label, self.out = total, label, out or sys.stderr  # the stream now, not at import
        self.done = 0
        self.t0 = time.monotonic()
        self.last = 0.0
        self.tty = hasattr(out, "isatty") and out.isatty()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.done == self.total or now - self.last >= (0.1 if self.tty else 1.0):
            self.last = now
            elapsed = max(now - self.t0, 1e-9)
            rate = self.done / elapsed
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            msg = (
                f"{self.label}: {self.done}/{self.total} items, {rate:.2f} items/s, "
                f"elapsed {_hms(elapsed)}, ETA {_hms(eta)}"
            )
            print(("\r" + msg) if self.tty else msg, end="" if self.tty else "\n", file=self.out, flush=True)
            if self.tty and self.done == self.total:
                print(file=self.out)


def _hms(s: float) -> str:
    s = int(s + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


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


def _request(item: Item, args: argparse.Namespace, default_seed: int) -> Any:
    from app.core.types import AskRequest, SamplingParams
    from resources import get_task

    preset = get_task(item.task)
    try:
        sp = SamplingParams(
            max_tokens=preset.max_tokens if args.max_tokens is None else args.max_tokens,
            temperature=preset.temperature if args.temperature is None else args.temperature,
            seed=default_seed if args.seed is None else args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return AskRequest(item.note, item.task, item.instruction, sp, args.prompt_style)


def _key(model_sha: str, req: Any, item: Item) -> str:
    from app.core.types import note_sha256
    from app.store import params_hash, resume_key

    return resume_key(model_sha, params_hash(req), note_sha256(req.note), req.task, req.instruction, item.item_id)


def run_model(
    log: Any, engine: Any, model: Any, work: list[tuple[Item, Any, str]], batch_id: int, cancel: threading.Event,
    summary: Summary, progress: Progress,
) -> None:  # fmt: skip
    from app.core.types import FinishReason
    from app.store.claims import ItemClaimed

    for item, req, key in work:
        if cancel.is_set():
            summary.cancelled = True
            return
        try:
            run_id = log.start_run(req, model, batch_id=batch_id, resume=key)
        except ItemClaimed:  # another batch on this log has it (done or running): never run it twice
            summary.skipped += 1
            progress.step()
            continue
        try:
            result = engine.ask(req, on_token=None, cancel=cancel)
        except AsclepiusError as e:
            reason = FinishReason.CANCELLED if isinstance(e, Cancelled) else FinishReason.ERROR
            log.fail_run(run_id, str(e), reason)
            summary.failed += 1
            print(f"\nline {item.line}: {type(e).__name__}: {e}", file=sys.stderr)
            progress.step()
            continue
        log.finish_run(run_id, result)
        if result.finish_reason == FinishReason.CANCELLED:
            summary.cancelled = True
            return
        if result.finish_reason == FinishReason.ERROR:
            summary.failed += 1
        else:
            summary.ran += 1
        progress.step()


def write_output(log: Any, path: Path, keys: dict[str, tuple[Item, str]], follow_symlinks: bool = False) -> int:
    """One row per item and model that has a finished answer (skipped items included)."""
    from sqlalchemy import select

    from app.store.models import Model, Run

    rows = []
    with log.read_session() as s:
        chunks = list(keys)
        for i in range(0, len(chunks), 500):
            stmt = (
                select(Run.resume_key, Run.uuid, Run.answer, Run.finish_reason, Run.completion_tokens, Model.file_name)
                .join(Model, Run.model_id == Model.id)
                .where(Run.resume_key.in_(chunks[i : i + 500]), Run.status == "finished")
                .where(Run.finish_reason.in_(("stop", "length")))
                .order_by(Run.id)
            )
            rows.extend(s.execute(stmt))
    latest = {r.resume_key: r for r in rows}  # ordered by id: the last one wins
    fields = ["line", "id", "model_file", "task", "instruction", "answer", "finish_reason", "run_id", "tokens"]
    from app.core.privatefile import private_file

    # Answers quote patient data: a new 0600 file renamed over the target, never through a link.
    with private_file(path, follow_symlinks=follow_symlinks, what="--output") as fh:
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
    from app.core.privatefile import check_output

    path = Path(args.input)
    check_file(path, MAX_INPUT_BYTES, "batch input")
    if args.output and Path(args.output).suffix.lower() not in (".csv", ".jsonl"):
        raise UsageError("--output must end in .csv or .jsonl")
    if args.output:  # before any model runs: `--output dir.csv` must not fail after an hour of work
        check_output(args.output, follow_symlinks=args.follow_symlinks, what="--output")
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
    parsed = parse_input(path)
    for line, problem in parsed.errors:
        print(f"{path.name}: line {line}: {problem}", file=sys.stderr)
    summary = Summary(valid=len(parsed.items), invalid=len(parsed.errors))
    items = group_by_note(parsed.items)
    models = [ctx.model(m) for m in (args.model or [None])]
    batch_id = log.start_batch(path.name, hashlib.sha256(path.read_bytes()).hexdigest())
    all_keys: dict[str, tuple[Item, str]] = {}
    plans = []
    for model in models:
        work = []
        for it in items:
            req = _request(it, args, ctx.config.generation.seed)
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
    progress = Progress(total, "batch")
    for model, work in plans:
        if not work or cancel.is_set():
            continue
        if model.is_demo:
            print("-- note: the demo model (Gemma 3 270M) is not trained for clinical tasks", file=sys.stderr)
        engine = ctx.engine(model)
        try:
            run_model(log, engine, model, work, batch_id, cancel, summary, progress)
        finally:
            engine.close()
    log.finish_batch(batch_id, summary.as_dict())
    if args.output:
        n = write_output(log, Path(args.output), all_keys, args.follow_symlinks)
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
    from app.cli import validators as v

    b = subparsers.add_parser("batch", help="run a CSV/JSONL of questions through one or more models (resumable)")
    b.add_argument("input", help=".csv or .jsonl with note or note_path, task, instruction, optional id")
    b.add_argument("--model", action="append", help="model (repeat for several); default: the default model")
    b.add_argument("--output", help="also write answers to this .csv or .jsonl (mode 0600)")
    b.add_argument("--follow-symlinks", action="store_true", help="write to the target if --output is a link")
    b.add_argument("--max-tokens", type=v.max_tokens, help="override the task presets' max new tokens")
    b.add_argument("--temperature", type=v.temperature)
    b.add_argument("--seed", type=v.seed)
    b.add_argument("--prompt-style", help="prompt style id (default: each model's own)")
    b.add_argument("--threads", type=v.threads)
    b.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    b.set_defaults(func=cmd_batch)
