"""Answers produced elsewhere (a GPU server, a paper's released outputs), and the items written out for such
runs.

An answers file is JSON Lines: one object a line with ``id`` (the item id: the PMID for PubTator and PubMedQA,
the document id for BioC; ``ID#k`` with several instruction templates; a number is read as its digits) and
``answer`` (text). Refused, naming the lines: a line that is not a JSON object, a missing or empty ``id``, an
``answer`` that is missing or not text, the same id twice; and the whole file when it is missing, empty,
binary, not UTF-8 or too large (``app.core.records``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.evaluation.gold import SHOWN
from app.core.evaluation.loaders import EvalItem
from app.core.records import read_records

MAX_ANSWERS_BYTES = 1 << 30
"""A million long answers fit well under this."""


def _problem_text(problems: list[str], what: str, path: Path) -> str:
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return f"{path.name}: {len(problems)} {what}: {'; '.join(problems[:SHOWN])}{more}"


def _item_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        return None
    return str(value).strip()


def read_answers(path: str | Path) -> dict[str, str]:
    """Item id -> answer from a JSON Lines answers file (see the module docstring)."""
    p = Path(path)
    if p.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise UsageError(f'{p.name}: an answers file must be JSON Lines (.jsonl), one {{"id", "answer"}} a line')
    _, rows = read_records(p, max_bytes=MAX_ANSWERS_BYTES, what="answers file")
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    problems = []
    for line, rec in rows:
        if isinstance(rec, str):
            problems.append(f"line {line}: {rec}")
            continue
        item_id = _item_id(rec.get("id"))
        answer = rec.get("answer")
        if item_id is None:
            problems.append(f"line {line}: no id (each line needs the item id it answers)")
        elif not isinstance(answer, str):
            what = "no answer" if answer is None else f"answer must be text, not {type(answer).__name__}"
            problems.append(f"line {line}: {what}")
        elif item_id in out:
            problems.append(f"line {line}: id {item_id!r} again (first at line {first_line[item_id]})")
        else:
            out[item_id] = answer
            first_line[item_id] = line
    if problems:
        raise UsageError(_problem_text(problems, "bad line(s)", p))
    if not out:
        raise UsageError(f"{p.name}: no answers in the file")
    return out


def answers_for(items: Sequence[EvalItem], answers: dict[str, str], path: str | Path) -> tuple[list[str], list[str]]:
    """Each item's answer, in item order, and notes; ``UsageError`` listing the items the file does not answer
    (a partial file would score as if the model had said nothing there). Answers for ids that are not items
    (a larger file than the suite's sample) are left out and counted in the notes."""
    p = Path(path)
    missing = [it.id for it in items if it.id not in answers]
    if missing:
        ids = ", ".join(missing[:SHOWN]) + (f" (and {len(missing) - SHOWN} more)" if len(missing) > SHOWN else "")
        hint = (
            " none of its ids is an item id: is it the answers file of this suite?"
            if len(missing) == len(items)
            else ""
        )
        raise UsageError(f"{p.name}: no answer for {len(missing)} of {len(items)} items: {ids}.{hint}")
    wanted = {it.id for it in items}
    extra = sum(1 for k in answers if k not in wanted)
    notes = [f"{p.name}: {extra} answer(s) for ids that are not items of this suite were left out"] if extra else []
    return [answers[it.id] for it in items], notes


def items_records(items: Sequence[EvalItem]) -> list[dict[str, str]]:
    """The items as records for an outside run (``eval items``): id, note, instruction."""
    return [{"id": it.id, "note": it.note, "instruction": it.instruction} for it in items]
