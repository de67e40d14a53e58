"""``import-ratings``: ratings made outside the app (a clinicians' spreadsheet) come back in.

Input: CSV (first line a header) or JSON Lines. Columns: ``run_id`` (a run's uuid, or its integer id),
``score`` (1-4), ``rater`` (or a default rater for the whole file), and optionally ``hallucination``
(yes/no, true/false, 1/0), ``comment``, ``corrected_answer``, ``rater_kind`` (human or judge) and
``rated_at`` (ISO 8601 with a time zone). A CSV of exported runs with a ``score`` column added is valid.

Every row is checked and every problem reported with its line number; the good rows are imported (or, with
``all_or_nothing``, none if any row is bad). Problems never quote SQL or the text of a cell (comments
and corrected answers can carry patient details): they name the column and what it must be. A run that
cannot be rated (``app/store/rules.py``: failed, stopped, unfinished, empty answer) is a bad row, named
by its run id; so is a rating that contradicts itself (``ratings.rating_problem``: Hallucination ticked with a
score above 1 and no comment), and one by a rater the log does not list unless ``add_raters`` is given.

Rows go in chunks of ``CHUNK_ROWS``, one short write transaction each, with bulk lookups and bulk inserts:
the write lock is held for a fraction of a second at a time, so the desktop app or an ``ask`` can write
between chunks (a single transaction over 1e6 rows held the lock for 22 minutes). An interrupted import
keeps the chunks it committed; running it again counts those rows as unchanged.

Importing the same file twice changes nothing: a row equal to the rater's current rating of that run is
counted as unchanged instead of adding history.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from app.core.records import iter_records
from app.store.base import run_number
from app.store.export import csv_unsafe
from app.store.log import EvalLog
from app.store.models import RATER_KINDS, Rater, utcnow
from app.store.ratings import NewRating, rating_problem
from app.store.rules import not_rateable_message, why_not_rateable
from resources.rubric import FLAG_FALSE, FLAG_TRUE

MAX_FILE_BYTES = 1024 * 1024 * 1024
CHUNK_ROWS = 5000
"""Rows per write transaction: ~0.1 s of lock at the measured rate, far below any writer's busy timeout."""
_IN_SLICE = 900
"""Values per ``IN (...)``: under the 999 bound parameters of older SQLite builds."""
_YES_NO = FLAG_TRUE | FLAG_FALSE


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(line number, problem) for every rejected row."""
    all_or_nothing: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


def _score(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) < 3:
        return int(raw.strip())
    return None


def _text(rec: dict[str, Any], key: str, problems: list[str]) -> str:
    v = rec.get(key)
    if type(v) is str:  # the common case (every CSV cell), first: this runs 5 times a row
        return v.strip()
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, str | int):
        problems.append(f"{key} must be text")
        return ""
    return str(v).strip()


def parse_row(rec: dict[str, Any], default_rater: str | None) -> NewRating:
    """One record as a rating; ValueError listing every problem (names and rules only, never the values)."""
    problems: list[str] = []
    run = _text(rec, "run_id", problems)
    run_ref: int | str = run
    if not run:
        problems.append("run_id is empty")
    else:
        try:
            number = run_number(run)
        except ValueError:
            problems.append("run_id is not a run id (too large)")
        else:
            run_ref = run if number is None else number
    rater = _text(rec, "rater", problems) or (default_rater or "").strip()
    if not rater:
        problems.append("rater is empty (add a rater column or pass --rater)")
    elif len(rater) > 128:
        problems.append("rater is longer than 128 characters")
    score = _score(rec.get("score"))
    if score not in (1, 2, 3, 4):
        problems.append("score must be 1, 2, 3 or 4")
    raw_h = rec.get("hallucination", "")
    h = ("true" if raw_h else "false") if isinstance(raw_h, bool) else str(raw_h or "").strip().lower()
    if h not in _YES_NO:
        problems.append("hallucination must be yes or no")
    kind = _text(rec, "rater_kind", problems) or "human"
    if kind not in RATER_KINDS:
        problems.append(f"rater_kind must be one of {', '.join(RATER_KINDS)}")
    at = _time(rec.get("rated_at"), problems)
    comment = _text(rec, "comment", problems)
    corrected = _text(rec, "corrected_answer", problems)
    if score in (1, 2, 3, 4) and h in _YES_NO and (why := rating_problem(score, h in FLAG_TRUE, comment)):
        problems.append(why)  # the store's rule, so a spreadsheet cannot say what the app refuses
    if problems:
        raise ValueError("; ".join(problems))
    assert score is not None
    return NewRating(
        run=run_ref,
        rater=rater,
        score=score,
        hallucination=h in FLAG_TRUE,
        comment=(csv_unsafe(comment) if comment.startswith("'") else comment) or None,
        corrected_answer=(csv_unsafe(corrected) if corrected.startswith("'") else corrected) or None,
        rater_kind=kind,
        at=at,
    )


def _time(raw: Any, problems: list[str]) -> datetime | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        problems.append("rated_at must be an ISO 8601 time")
        return None
    try:
        at = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        problems.append("rated_at is not an ISO 8601 time (e.g. 2026-11-24T10:00:00+00:00)")
        return None
    if at.tzinfo is None:
        problems.append("rated_at needs a time zone (e.g. 2026-11-24T10:00:00+00:00)")
        return None
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError):
        problems.append("rated_at is out of range")
        return None


@dataclass
class _Row:
    line: int
    r: NewRating


def _parsed(records: Iterable[tuple[int, Any]], default_rater: str | None, report: ImportReport) -> Iterator[_Row]:
    seen: dict[tuple[str, str], int] = {}
    for line, rec in records:
        try:
            if isinstance(rec, str):
                raise ValueError(rec)
            r = parse_row(rec, default_rater)
            key = (str(r.run), r.rater)
            if key in seen:
                raise ValueError(f"same run and rater as line {seen[key]}")
            seen[key] = line
            yield _Row(line, r)
        except ValueError as e:
            report.errors.append((line, str(e)))


def _chunks(rows: Iterator[_Row], n: int) -> Iterator[list[_Row]]:
    while chunk := list(islice(rows, n)):
        yield chunk


def _query(s: Any, sql: str, values: list[Any]) -> Iterator[tuple[Any, ...]]:
    """``sql`` with ``IN ({})`` filled for ``values``, in slices under SQLite's bound-parameter cap.

    Plain driver SQL: at 20,000+ rows/s the ORM's per-row work was most of the import's time.
    """
    raw = _driver(s)
    for i in range(0, len(values), _IN_SLICE):
        part = values[i : i + _IN_SLICE]
        yield from raw.execute(sql.format(", ".join("?" * len(part))), part).fetchall()


def _driver(s: Any) -> Any:
    """The sqlite3 connection under the session's transaction (the same BEGIN IMMEDIATE)."""
    return s.connection().connection.driver_connection


_RUN_COLS = "id, status, finish_reason, answer"
"""What the rateable rule reads: the answer too, since an empty one cannot be rated."""


def _runs(s: Any, rows: list[_Row]) -> dict[int | str, tuple[int, str | None]]:
    """run reference -> (row id, why it cannot be rated or None), looked up in bulk."""
    ids = sorted({r.r.run for r in rows if isinstance(r.r.run, int)})
    uuids = sorted({r.r.run for r in rows if isinstance(r.r.run, str)})
    found: dict[int | str, tuple[int, str | None]] = {}
    for rid, status, reason, answer in _query(s, f"SELECT {_RUN_COLS} FROM runs WHERE id IN ({{}})", ids):
        found[rid] = (rid, why_not_rateable(status, reason, answer))
    by_uuid = f"SELECT {_RUN_COLS}, uuid FROM runs WHERE uuid IN ({{}})"
    for rid, status, reason, answer, uuid in _query(s, by_uuid, uuids):
        found[uuid] = (rid, why_not_rateable(status, reason, answer))
    return found


def _raters(s: Any, rows: list[_Row], create: bool) -> dict[str, tuple[int, str]]:
    names = sorted({r.r.rater for r in rows})
    found = {n: (i, k) for i, n, k in _query(s, "SELECT id, name, kind FROM raters WHERE name IN ({})", names)}
    if create:
        for name in names:
            if name not in found:
                kind = next(r.r.rater_kind for r in rows if r.r.rater == name)
                rid = s.execute(insert(Rater).values(name=name, kind=kind, created_at=utcnow())).inserted_primary_key[0]
                found[name] = (rid, kind)
    return found


def _current(s: Any, run_ids: list[int], rater_ids: list[int]) -> dict[tuple[int, int], tuple[Any, ...]]:
    if not rater_ids:
        return {}
    # The chunk's raters are few: their ids go in the SQL as integers (no user text), the runs as parameters.
    sql = (
        "SELECT run_id, rater_id, id, score, hallucination, comment, corrected_answer FROM ratings "
        f"WHERE is_current = 1 AND rater_id IN ({', '.join(str(int(i)) for i in rater_ids)}) AND run_id IN ({{}})"
    )
    return {(r[0], r[1]): (r[2], r[3], bool(r[4]), r[5], r[6]) for r in _query(s, sql, run_ids)}


_INSERT = (
    "INSERT INTO ratings (run_id, rater_id, score, hallucination, comment, corrected_answer, is_current, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
)


def _stamp(t: datetime) -> str:
    """As ``app.store.models.UTCDateTime`` stores times (ISO 8601 UTC, microseconds)."""
    return t.astimezone(UTC).isoformat(timespec="microseconds")


UNKNOWN_RATER = "rater is not in this log's rater list (pass --add-raters to add the file's new raters)"


def _chunk(s: Any, rows: list[_Row], report: ImportReport, write: bool, add_raters: bool) -> None:
    runs = _runs(s, rows)
    raters = _raters(s, rows, create=write and add_raters)
    good: list[tuple[_Row, int, int | None]] = []
    for row in rows:
        r = row.r
        hit = runs.get(r.run)
        if hit is None:
            report.errors.append((row.line, "no run with this run_id in the log"))
        elif hit[1] is not None:
            report.errors.append((row.line, not_rateable_message(r.run, hit[1])))
        elif r.rater not in raters and not add_raters:
            report.errors.append((row.line, UNKNOWN_RATER))
        elif r.rater in raters and raters[r.rater][1] != r.rater_kind:
            report.errors.append((row.line, f"this rater is a {raters[r.rater][1]} in the log, not a {r.rater_kind}"))
        else:
            good.append((row, hit[0], raters.get(r.rater, (None, ""))[0]))
    current = _current(s, sorted({rid for _, rid, _ in good}), sorted({i for _, _, i in good if i is not None}))
    supersede: list[tuple[int]] = []
    new: list[tuple[Any, ...]] = []
    now = _stamp(utcnow())
    for row, run_id, rater_id in good:
        r = row.r
        cur = current.get((run_id, rater_id)) if rater_id is not None else None
        if cur is not None and cur[1:] == (r.score, r.hallucination, r.comment, r.corrected_answer):
            report.unchanged += 1
            continue
        if cur is not None:
            supersede.append((cur[0],))
        report.imported += 1
        at = _stamp(r.at) if r.at else now
        new.append((run_id, rater_id, r.score, int(r.hallucination), r.comment, r.corrected_answer, at))
    if write and new:
        raw = _driver(s)
        if supersede:
            raw.executemany("UPDATE ratings SET is_current = 0 WHERE id = ?", supersede)
        raw.executemany(_INSERT, new)


def import_ratings(
    log: EvalLog,
    path: Path,
    default_rater: str | None = None,
    *,
    all_or_nothing: bool = False,
    add_raters: bool = False,
) -> ImportReport:
    """Import a ratings file; see the module docstring. Raises UsageError for an unreadable file.

    A rater name the log does not list (``EvalLog.add_rater``; the app's Settings) is a bad row unless
    ``add_raters``: a typo in a spreadsheet must not become a new rater whose ratings count as another
    person's."""
    if all_or_nothing:
        check = ImportReport(all_or_nothing=True)
        _run(log, path, default_rater, check, write=False, add_raters=add_raters)
        if check.errors:
            return ImportReport(errors=check.errors, all_or_nothing=True)
    report = ImportReport(all_or_nothing=all_or_nothing)
    _run(log, path, default_rater, report, write=True, add_raters=add_raters)
    return report


def _run(
    log: EvalLog, path: Path, default_rater: str | None, report: ImportReport, *, write: bool, add_raters: bool
) -> None:
    _names, records = iter_records(path, max_bytes=MAX_FILE_BYTES, what="ratings file")
    for chunk in _chunks(_parsed(records, default_rater, report), CHUNK_ROWS):
        with log.write_session() if write else log.read_session() as s:
            _chunk(s, chunk, report, write, add_raters)
    report.errors.sort()
