"""Extraction items aligned to their mentions in the note: the public face of the one aligner.

* ``NoteIndex(note)`` and ``align_mention(text, index) -> Alignment`` (``app.core.grounding.mention``): where
  a phrase occurs (exact, normalized, fuzzy or none), with every note span. The task-evaluation scorers use
  these too; import them from here.
* ``align_items(answer, note, task, senses)``: an extraction task's answer split into items
  (``app.core.grounding.items``) and each part aligned, one ``ItemSpan`` per part, with notes in words on
  what was not done. A time expression that is a date is matched by its value, so "03/14/2026" finds
  "March 14, 2026" (a normalized match). An abbreviation expansion is checked against the sense inventories
  when some are given (``ItemSpan.sense``), never aligned: a note rarely spells out what it abbreviates.
"""

from __future__ import annotations

from collections.abc import Iterator

from app.core.grounding.items import SPLITTERS, Piece
from app.core.grounding.mention import FUZZY_THRESHOLD, RANK, Alignment, NoteIndex, align_mention
from app.core.grounding.report import ItemSpan
from app.core.grounding.senses import SenseInventory
from app.core.grounding.tokens import _dates_in
from resources.tasks import get_task

__all__ = [
    "EXTRACTION_TASKS",
    "FUZZY_THRESHOLD",
    "Alignment",
    "NoteIndex",
    "align_items",
    "align_mention",
    "task_slug",
]

EXTRACTION_TASKS = frozenset(SPLITTERS)
"""Slugs of the tasks whose answers are lists of things named in the note."""

NO_SENSES = (
    "no abbreviation sense inventory is configured: abbreviations were aligned to the note, their expansions "
    "not checked against known senses"
)


def task_slug(task: str | None) -> str:
    """The slug of a task name or slug; "" for None or an unknown task (nothing to align, no error: the
    checker runs on answers from anywhere)."""
    if not task:
        return ""
    try:
        return get_task(task).slug
    except KeyError:
        return ""


def _align_time(text: str, index: NoteIndex) -> Alignment:
    """A date by its value (any format either side reads), anything else as a phrase."""
    keys = {k for _, _, k in _dates_in(text)}
    if keys:
        spans = tuple((s, e) for s, e, k in _dates_in(index.note) if k in keys)
        if spans:
            kind = "exact" if all(index.note[s:e] == text for s, e in spans) else "normalized"
            return Alignment(kind, 1.0, spans)
    return align_mention(text, index)


def _best(answer: str, piece: Piece, index: NoteIndex) -> tuple[tuple[int, int], Alignment]:
    """The whole phrase, else the first fallback that matches better (exact/normalized beat a fuzzy
    match of the whole)."""
    whole = (piece.start, piece.end)
    aligner = _align_time if piece.role == "time" else align_mention
    best = (whole, aligner(answer[piece.start : piece.end], index))
    for span in piece.fallbacks:
        if RANK[best[1].match] >= RANK["normalized"]:
            break
        got = align_mention(answer[span[0] : span[1]], index)
        if RANK[got.match] > RANK[best[1].match]:
            best = (span, got)
    return best


def _aligned(answer: str, pieces: list[Piece], index: NoteIndex) -> Iterator[tuple[Piece, tuple[int, int], Alignment]]:
    """Each piece with its best span and alignment; a line that may be a list is kept whole when the whole
    occurs in the note, else its parts are aligned one by one."""
    for piece in pieces:
        if piece.parts:
            whole = align_mention(answer[piece.start : piece.end], index, threshold=2.0)  # no fuzzy for a list
            if whole.match != "none":
                yield piece, (piece.start, piece.end), whole
                continue
            for part in piece.parts:
                yield part, *_best(answer, part, index)
        else:
            yield piece, *_best(answer, piece, index)


def align_items(
    answer: str, note: str, task: str | None, senses: SenseInventory | None = None
) -> tuple[list[ItemSpan], list[str]]:
    """Each part of each item of an extraction task's answer aligned to the note (``task``: a name or slug;
    ([], []) for other tasks), and notes in words on what was not checked."""
    slug = task_slug(task)
    if slug not in EXTRACTION_TASKS or not answer.strip():
        return [], []
    pieces, unread = SPLITTERS[slug](answer)
    index = NoteIndex(note)
    items: list[ItemSpan] = []
    for piece, (s, e), got in _aligned(answer, pieces, index):
        sense = (
            senses.check(answer[s:e], piece.expansion) if senses is not None and piece.role == "abbreviation" else ""
        )
        items.append(
            ItemSpan(
                text=answer[s:e],
                answer_start=s,
                answer_end=e,
                match=got.match,
                score=got.score,
                note_spans=got.spans,
                abbreviation=answer[s:e] if piece.role == "abbreviation" else "",
                expansion=piece.expansion,
                sense=sense,
                role=piece.role,
                group=piece.group or len(items) + 1,
                label=piece.label,
            )
        )
    notes: list[str] = []
    if unread:
        notes.append(f"{unread} line(s) of the answer could not be read as {get_task(slug).name} items")
    if slug == "abbrev" and senses is None and pieces:
        notes.append(NO_SENSES)
    elif slug == "abbrev" and senses is not None:
        unlisted = sum(1 for i in items if i.role == "abbreviation" and i.expansion and not i.sense)
        if unlisted:
            notes.append(f"{unlisted} abbreviation(s) not in the sense inventories: their expansions not checked")
    return items, notes
