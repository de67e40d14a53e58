"""``import-ratings``: ratings made outside the app (a clinicians' spreadsheet) come back in.

Input: CSV (first line a header) or JSON Lines. Columns: ``run_id`` (a run's uuid, or its integer id),
``score`` (1-4), ``rater`` (or a default rater for the whole file), and optionally ``hallucination``
(yes/no, true/false, 1/0), ``comment``, ``corrected_answer``, ``rater_kind`` (human or judge) and
``rated_at`` (ISO 8601 with a time zone). A CSV of exported runs with a ``score`` column added is valid.

Every row is checked and every problem reported with its line number; the valid rows are imported in one
transaction. Importing the same file twice changes nothing: a row equal to the rater's current rating of
that run is counted as unchanged instead of adding history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.core.errors import UsageError
from app.core.records import read_records
from app.store.export import csv_unsafe
from app.store.log import EvalLog, NewRating
from app.store.models import Rater, Rating

MAX_FILE_BYTES = 200 * 1024 * 1024
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(line number, problem) for every rejected row."""

    @property
    def ok(self) -> bool:
        return not self.errors


def _parse(rec: dict[str, Any], default_rater: str | None) -> NewRating:
    problems = []
    run = str(rec.get("run_id") or "").strip()
    if not run:
        problems.append("run_id is empty")
    rater = str(rec.get("rater") or default_rater or "").strip()
    if not rater:
        problems.append("rater is empty (add a rater column or pass --rater)")
    raw_score = rec.get("score")
    score: int | None = None
    if isinstance(raw_score, int) and not isinstance(raw_score, bool):
        score = raw_score
    elif isinstance(raw_score, str) and raw_score.strip().isdigit():
        score = int(raw_score.strip())
    if score not in (1, 2, 3, 4):
        problems.append(f"score must be 1, 2, 3 or 4, not {raw_score!r}")
    raw_h = rec.get("hallucination", "")
    h = str(raw_h).strip().lower() if not isinstance(raw_h, bool) else ("true" if raw_h else "false")
    if h not in _TRUE | _FALSE:
        problems.append(f"hallucination must be yes or no, not {raw_h!r}")
    kind = str(rec.get("rater_kind") or "human").strip()
    at = None
    if rec.get("rated_at"):
        try:
            at = datetime.fromisoformat(str(rec["rated_at"]).replace("Z", "+00:00"))
            if at.tzinfo is None:
                problems.append("rated_at needs a time zone (e.g. 2026-11-24T10:00:00+00:00)")
        except ValueError:
            problems.append(f"rated_at is not an ISO 8601 time: {rec['rated_at']!r}")
    if problems:
        raise ValueError("; ".join(problems))
    assert score is not None
    return NewRating(
        run=int(run) if run.isdigit() else run,
        rater=rater,
        score=score,
        hallucination=h in _TRUE,
        comment=(csv_unsafe(str(rec.get("comment") or "").strip()) or None),
        corrected_answer=(csv_unsafe(str(rec.get("corrected_answer") or "").strip()) or None),
        rater_kind=kind,
        at=at,
    )


def _same_as_current(s: Any, log: EvalLog, r: NewRating) -> bool:
    rid = log._run_id(s, r.run)
    cur = s.execute(
        select(Rating.score, Rating.hallucination, Rating.comment, Rating.corrected_answer)
        .join(Rater, Rating.rater_id == Rater.id)
        .where(Rating.run_id == rid, Rater.name == r.rater, Rating.is_current.is_(True))
    ).first()
    return cur is not None and tuple(cur) == (r.score, r.hallucination, r.comment, r.corrected_answer)


def import_ratings(log: EvalLog, path: Path, default_rater: str | None = None) -> ImportReport:
    report = ImportReport()
    _names, records = read_records(path, max_bytes=MAX_FILE_BYTES, what="ratings file")
    seen: dict[tuple[str, str], int] = {}
    with log.write_session() as s:
        for line, rec in records:
            try:
                if isinstance(rec, str):
                    raise ValueError(rec)
                r = _parse(rec, default_rater)
                key = (str(r.run), r.rater)
                if key in seen:
                    raise ValueError(f"same run and rater as line {seen[key]}")
                seen[key] = line
                if _same_as_current(s, log, r):
                    report.unchanged += 1
                    continue
                # A savepoint per row: a rejected row leaves the others of the transaction intact.
                with s.begin_nested():
                    log.add_rating_in(s, r)
                report.imported += 1
            except (ValueError, UsageError) as e:
                report.errors.append((line, str(e)))
    return report
