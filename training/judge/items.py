"""What the judge scores: items (a note, an instruction, N candidate answers) from the log or a JSONL file.

From the evaluation log: finished runs that produced an answer, filtered by task, model and batch, grouped
by (note, task, instruction); each run is a candidate, and its score becomes a rating on that run. A log
that keeps note hashes only (``store_note_text`` off) cannot be judged: such items are skipped and counted.

From JSON Lines, one item per line::

    {"id": "...", "note": "...", "question": "...", "task": "...", "answers": [{"model": "a", "answer": "..."}, ...]}

(``answers`` may also be an object ``{"model": "answer"}``), or one answer per line with ``model`` and
``answer`` beside ``note`` and ``question``: lines with the same note and question form one item.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.records import read_records

MAX_JSONL_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Candidate:
    key: str
    """Stable and unique within the item: ``run:<id>`` or ``<model>:<answer sha256 prefix>``."""
    model: str
    answer: str
    run_id: int | None = None


@dataclass(frozen=True)
class Item:
    key: str
    note: str
    question: str
    task: str | None
    candidates: tuple[Candidate, ...]


@dataclass
class Items:
    items: list[Item] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def item_key(note: str, task: str | None, question: str) -> str:
    payload = json.dumps([hashlib.sha256(note.encode()).hexdigest(), task, question])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def items_from_log(log: Any, filters: Any, limit: int | None = None) -> Items:
    """Group the log's finished runs matching ``filters`` (a RunFilter) into items."""
    from dataclasses import replace

    f = replace(filters, finished_only=True)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    offset = 0
    while True:
        page = log.list_runs(f, offset=offset, limit=500)
        if not page:
            break
        for r in page:
            if r.answer and r.answer.strip():
                groups.setdefault((r.note_sha256, r.task, r.instruction), []).append(r)
        offset += len(page)
    out = Items()
    for (_, task, instruction), runs in sorted(groups.items(), key=lambda kv: min(r.id for r in kv[1])):
        full = log.get_run(runs[0].id)
        if full is None or full.note_text is None:
            out.skipped.append(f"runs {', '.join(str(r.id) for r in runs)}: the log keeps no note text for them")
            continue
        cands = tuple(
            Candidate(f"run:{r.id}", r.model_file, r.answer.strip(), r.id) for r in sorted(runs, key=lambda r: r.id)
        )
        out.items.append(Item(item_key(full.note_text, task, instruction), full.note_text, instruction, task, cands))
        if limit and len(out.items) >= limit:
            break
    return out


def _answers(rec: dict[str, Any]) -> list[tuple[str, str]] | str:
    raw = rec.get("answers")
    if isinstance(raw, dict):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = []
        for a in raw:
            if not isinstance(a, dict):
                return "each answer must be an object with model and answer"
            pairs.append((a.get("model"), a.get("answer")))
    else:
        return "answers must be a list or an object"
    for m, a in pairs:
        if not isinstance(m, str) or not m.strip() or not isinstance(a, str):
            return "each answer needs a model name and answer text"
    return [(m, a) for m, a in pairs]


def items_from_jsonl(path: Path, limit: int | None = None) -> Items:
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        raise UsageError(f"{path.name}: answers to judge must be a .jsonl file")
    _, rows = read_records(path, max_bytes=MAX_JSONL_BYTES, what="answers file")
    if not rows:
        raise UsageError(f"{path.name}: no rows (an empty file)")
    out = Items()
    grouped: dict[tuple[str, str, str | None], list[tuple[str, str]]] = {}
    for line, rec in rows:
        if isinstance(rec, str):
            out.skipped.append(f"line {line}: {rec}")
            continue
        note, question = rec.get("note"), rec.get("question", rec.get("instruction"))
        task = rec.get("task")
        if not isinstance(note, str) or not note.strip() or not isinstance(question, str) or not question.strip():
            out.skipped.append(f"line {line}: needs note and question text")
            continue
        if task is not None and not isinstance(task, str):
            out.skipped.append(f"line {line}: task must be text")
            continue
        if "answers" in rec:
            pairs = _answers(rec)
        elif isinstance(rec.get("model"), str) and isinstance(rec.get("answer"), str):
            pairs = [(rec["model"], rec["answer"])]
        else:
            pairs = "needs answers, or model and answer"
        if isinstance(pairs, str):
            out.skipped.append(f"line {line}: {pairs}")
            continue
        grouped.setdefault((note.strip(), question.strip(), task), []).extend(pairs)
    for (note, question, task), pairs in grouped.items():
        cands: dict[str, Candidate] = {}
        for model, answer in pairs:
            c = Candidate(f"{model}:{_sha(answer)}", model, answer.strip())
            cands.setdefault(c.key, c)
        out.items.append(Item(item_key(note, task, question), note, question, task, tuple(cands.values())))
        if limit and len(out.items) >= limit:
            break
    if not out.items:
        # Say why (line by line, never a value): "3 lines left out" alone sends the user hunting.
        why = "; ".join(out.skipped[:5]) + (f"; {len(out.skipped) - 5} more" if len(out.skipped) > 5 else "")
        raise UsageError(f"{path.name}: no usable items ({len(out.skipped)} lines left out: {why})")
    return out
