"""The batch input: rows read, checked and turned into :class:`BatchItem` s, streamed window by window.

CSV (header line) or JSON Lines with ``note`` or ``note_path`` (relative to the input file), ``task`` (name
or short name), ``instruction`` and an optional ``id``. Every problem is reported with its line number; the
valid rows still run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.records import Row, iter_records, type_problems

MAX_INPUT_BYTES = 1024 * 1024 * 1024
MAX_INSTRUCTION_CHARS = 4000
"""Far more than any real instruction; a longer cell is a pasted note in the wrong column."""
COLUMNS = ("id", "note", "note_path", "task", "instruction")
WINDOW_ROWS = 2000
"""Rows read, grouped by note, checked against the log and run at a time. The first answer starts after one
window, not after the whole file (a 1e6-row input took 87 s and 1.86 GB before its first item), and memory
stays flat however long the input is. Notes are grouped within a window: put a note's rows together."""
MAX_LISTED_PROBLEMS = 20
"""Rejected rows named when an input has no valid row at all (the count says how many more)."""
MAX_SHARED_NOTES = 10_000
"""Distinct inline notes kept as one shared string each (a repeated note costs one copy, not one a row)."""

RowProblem = tuple[int, str]
"""(line number, what is wrong with that row)."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One valid input row: a question about a note."""

    line: int
    """The row's line in the input file (what every message about it names)."""
    item_id: str
    """The row's ``id`` ("" when none): part of the resume key, so two rows may ask the same question."""
    note: str
    """The validated note text (inline, or read from ``note_path``)."""
    task: str
    """The task's full name (a short name in the input is resolved)."""
    instruction: str
    """The question, stripped."""


@dataclass
class Parsed:
    """A whole (small) input at once."""

    items: list[BatchItem] = field(default_factory=list)
    """The valid rows, in input order."""
    errors: list[RowProblem] = field(default_factory=list)
    """The rejected rows with their problems."""


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


def check_input(path: Path) -> None:
    """Refuse an input that cannot give a single item, before the log is opened or a batch is recorded.

    The whole-file checks, the CSV header's columns, a file without rows, a file whose every row is bad: each
    once created the log and a batch record and then said "run the same command again" (issue 21). Rows are
    read up to the first valid one only; the run reads the file again, window by window.
    """
    problems: list[RowProblem] = []
    with closing(iter_input(path)) as rows:
        for x in rows:
            if isinstance(x, BatchItem):
                return
            problems.append(x)
    if not problems:
        raise UsageError(f"{path.name}: no rows, nothing to run")
    listed = "".join(f"\n  line {line}: {problem}" for line, problem in problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    raise UsageError(
        f"{path.name}: no valid row; every row was rejected{listed}"
        + (f"\n  ... and {more:,} more" if more > 0 else "")
    )


def parse_input(path: Path) -> Parsed:
    """Every row of a (small) input at once: the items and the problems with their line numbers."""
    out = Parsed()
    for x in iter_input(path):
        (out.items if isinstance(x, BatchItem) else out.errors).append(x)  # type: ignore[arg-type]
    return out


def windows(path: Path, size: int = WINDOW_ROWS) -> Iterator[tuple[list[BatchItem], list[RowProblem]]]:
    """The input in windows of ``size`` rows: (valid items, row problems), streamed."""
    items: list[BatchItem] = []
    errors: list[RowProblem] = []
    for x in iter_input(path):
        (items if isinstance(x, BatchItem) else errors).append(x)  # type: ignore[arg-type]
        if len(items) + len(errors) >= size:
            yield items, errors
            items, errors = [], []
    if items or errors:
        yield items, errors


def iter_input(path: Path) -> Iterator[BatchItem | RowProblem]:
    """Each data row as a BatchItem, or (line, problem): streamed, so memory does not grow with the file."""
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
        task = _task(cell["task"], problems)
        instruction = cell["instruction"].strip()
        if not instruction:
            problems.append("instruction is empty")
        elif len(instruction) > MAX_INSTRUCTION_CHARS:
            problems.append(f"instruction is {len(instruction):,} characters (limit {MAX_INSTRUCTION_CHARS:,})")
        note = _note(path, cell, notes, problems)
        if problems:
            yield (line, "; ".join(problems))
        else:
            yield BatchItem(line, item_id, note, task, instruction)


def _task(cell: str, problems: list[str]) -> str:
    """The task's full name, or "" with the problem added."""
    from resources import get_task

    if not cell.strip():
        problems.append("task is empty")
        return ""
    try:
        return get_task(cell.strip()).name
    except KeyError:
        problems.append(f"unknown task {cell.strip()[:60]!r}")
        return ""


def _note(path: Path, cell: dict[str, str], shared: dict[str, str], problems: list[str]) -> str:
    """The row's validated note (inline or from ``note_path``), or "" with the problem added."""
    from app.core.errors import NoteError
    from app.core.notes import read_note_file, validate_note

    try:
        if cell["note"].strip() and cell["note_path"].strip():
            problems.append("give note or note_path, not both")
        elif cell["note"].strip():
            note = validate_note(cell["note"], "note")
            return shared.setdefault(note, note) if len(shared) < MAX_SHARED_NOTES else note
        elif cell["note_path"].strip():
            return read_note_file(path.parent / cell["note_path"].strip())
        else:
            problems.append("note and note_path are both empty")
    except NoteError as e:
        problems.append(str(e))
    return ""


def group_by_note(items: list[BatchItem]) -> list[BatchItem]:
    """Stable order, each note's questions together (first appearance order of notes)."""
    order: dict[str, int] = {}
    for it in items:
        order.setdefault(it.note, len(order))
    return sorted(items, key=lambda it: order[it.note])


def count_lines(path: Path) -> int:
    """Data lines (an estimate of rows for the progress total: a quoted cell may span lines)."""
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return max(0, n - (1 if path.suffix.lower() == ".csv" else 0))


def item_key(model_sha: str, req: Any, item: BatchItem) -> str:
    """The item's resume key on one model: a finished run with this key means the item is done."""
    from app.core.types import note_sha256
    from app.store import params_hash, resume_key

    return resume_key(model_sha, params_hash(req), note_sha256(req.note), req.task, req.instruction, item.item_id)
