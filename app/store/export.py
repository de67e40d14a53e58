"""Export runs or ratings as CSV or JSON Lines, streamed (a 100,000-run log exports in seconds).

Two kinds:
- ``runs``: one row per run with its full provenance, its grounding report (JSON) and the report's one-line
  summary (``grounding_summary``), the number and mean of its current ratings, and the
  note text unless ``include_note_text`` is false (or the log keeps hashes only). The ``run_id`` column
  is what ``import-ratings`` matches on, so a spreadsheet of runs, given ``score`` (and ``rater``)
  columns by clinicians, comes straight back in.
- ``ratings``: one row per current rating (``history=True``: every rating), with its run and model: the
  format ``import-ratings`` reads, and the one statistics packages want.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Select, String, func, select, type_coerce

from app.core.grounding import describe_summary
from app.store.log import EvalLog
from app.store.models import Model, Note, Rater, Rating, Run
from app.store.queries import RunFilter, grounding_counts

FORMATS = ("csv", "jsonl")
RAW_TEXT = {"started_at", "finished_at", "truncation", "grounding"}
JSON_COLUMNS = {"truncation", "grounding"}
KINDS = ("runs", "ratings")

RUN_FIELDS: tuple[tuple[str, Any], ...] = (
    ("run_id", Run.uuid),
    ("id", Run.id),
    ("status", Run.status),
    ("task", Run.task),
    ("instruction", Run.instruction),
    ("answer", Run.answer),
    ("finish_reason", Run.finish_reason),
    ("error", Run.error),
    ("model_sha256", Model.sha256),
    ("model_file", Model.file_name),
    ("model_name", Model.name),
    ("model_architecture", Model.architecture),
    ("model_quant", Model.quant),
    ("note_sha256", Note.sha256),
    ("note_chars", Note.chars),
    ("max_tokens", Run.max_tokens),
    ("temperature", Run.temperature),
    ("top_p", Run.top_p),
    ("top_k", Run.top_k),
    ("min_p", Run.min_p),
    ("repeat_penalty", Run.repeat_penalty),
    ("seed", Run.seed),
    ("params_hash", Run.params_hash),
    ("prompt_style", Run.prompt_style),
    ("engine", Run.engine),
    ("app_version", Run.app_version),
    ("presets_version", Run.presets_version),
    ("n_ctx", Run.n_ctx),
    ("n_threads", Run.n_threads),
    ("prompt_tokens", Run.prompt_tokens),
    ("reused_tokens", Run.reused_tokens),
    ("completion_tokens", Run.completion_tokens),
    ("ttft_s", Run.ttft_s),
    ("decode_tokens_per_s", Run.decode_tokens_per_s),
    ("total_s", Run.total_s),
    ("started_at", Run.started_at),
    ("finished_at", Run.finished_at),
    ("truncation", Run.truncation),
    ("grounding", Run.grounding),
    ("batch_id", Run.batch_id),
    ("endpoint", Run.endpoint),
    ("served_model", Run.served_model),
    ("reported_model", Run.reported_model),
    ("system_fingerprint", Run.system_fingerprint),
    ("usage_reported", Run.usage_reported),
)
RATING_FIELDS: tuple[tuple[str, Any], ...] = (
    ("run_id", Run.uuid),
    ("task", Run.task),
    ("model_sha256", Model.sha256),
    ("model_file", Model.file_name),
    ("note_sha256", Note.sha256),
    ("rater", Rater.name),
    ("rater_kind", Rater.kind),
    ("score", Rating.score),
    ("hallucination", Rating.hallucination),
    ("comment", Rating.comment),
    ("corrected_answer", Rating.corrected_answer),
    ("is_current", Rating.is_current),
    ("rated_at", Rating.created_at),
    ("withdrawn_at", Rating.withdrawn_at),  # set for a score given with a Compare vote that was undone
)


def _runs_stmt(filters: RunFilter, include_note_text: bool) -> tuple[list[str], Select[Any]]:
    agg = (
        select(
            Rating.run_id,
            func.count().label("ratings_n"),
            func.avg(Rating.score).label("ratings_mean"),
        )
        .where(Rating.is_current.is_(True))
        .group_by(Rating.run_id)
        .subquery()
    )
    names = [n for n, _ in RUN_FIELDS] + ["grounding_summary", "ratings_n", "ratings_mean"]
    # Times and JSON leave SQLite as the text they are stored as (already ISO 8601 UTC / JSON): parsing
    # them into objects only to print them again was most of the export's time.
    cols = [(type_coerce(c, String) if n in RAW_TEXT else c).label(n) for n, c in RUN_FIELDS] + [
        grounding_counts().label("grounding_summary"),  # worded per row by summary_text
        func.coalesce(agg.c.ratings_n, 0).label("ratings_n"),
        agg.c.ratings_mean.label("ratings_mean"),
    ]
    if include_note_text:
        names.append("note_text")
        cols.append(Note.text.label("note_text"))
    stmt = (
        select(*cols)
        .join(Model, Run.model_id == Model.id)
        .join(Note, Run.note_id == Note.id)
        .outerjoin(agg, agg.c.run_id == Run.id)
    )
    return names, filters.apply(stmt).order_by(Run.id)


def _ratings_stmt(filters: RunFilter, history: bool) -> tuple[list[str], Select[Any]]:
    names = [n for n, _ in RATING_FIELDS]
    stmt = (
        select(*[c.label(n) for n, c in RATING_FIELDS])
        .join(Run, Rating.run_id == Run.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .join(Model, Run.model_id == Model.id)
        .join(Note, Run.note_id == Note.id)
    )
    if not history:
        stmt = stmt.where(Rating.is_current.is_(True))
    if filters.rater is not None:
        stmt = stmt.where(Rater.name == filters.rater)
    return names, filters.apply(stmt).order_by(Rating.id)


FREE_TEXT = {
    "instruction",
    "answer",
    "error",
    "note_text",
    "model_file",
    "model_name",
    "rater",
    "comment",
    "corrected_answer",
}
"""Columns whose text comes from users or the model, and so may start like a spreadsheet formula."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _formula_like(value: str) -> bool:
    if not value.startswith(FORMULA_START):
        return False
    # A "-" before a space or digit is a bullet or a negative number, not a formula.
    return not (value[0] == "-" and (len(value) == 1 or value[1] == " " or value[1].isdigit()))


def csv_safe(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (CSV injection): prefix it with an apostrophe.

    A clinician opens these exports in a spreadsheet; an answer or note line such as ``=HYPERLINK(...)``
    must show as text. ``import-ratings`` strips the apostrophe again with ``csv_unsafe``; text that already
    looks escaped gets one more apostrophe, so the round trip is exact for every string.
    """
    if isinstance(value, str) and (_formula_like(value) or csv_unsafe(value) != value):
        return "'" + value
    return value


def csv_unsafe(value: str) -> str:
    if value.startswith("'") and csv_safe(value[1:]) != value[1:]:
        return value[1:]
    return value


def summary_text(counts_json: str | None) -> str:
    """The one-line grounding summary from the counts SQLite took out of a stored report."""
    counts = {k: v for k, v in json.loads(counts_json or "{}").items() if v is not None}
    return describe_summary(counts or None)


def _cell(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _statement(log: EvalLog, kind: str, filters: RunFilter | None, include_note_text: bool, history: bool) -> Any:
    if kind not in KINDS:
        raise ValueError(f"export kind must be one of {', '.join(KINDS)}, not {kind!r}")
    filters = filters or RunFilter()
    if kind == "runs":
        return _runs_stmt(filters, include_note_text)
    return _ratings_stmt(filters, history)


def iter_rows(
    log: EvalLog,
    kind: str = "runs",
    filters: RunFilter | None = None,
    include_note_text: bool = True,
    history: bool = False,
) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """Column names and a lazy iterator of row dicts (values as exported: text for times and JSON)."""
    names, stmt = _statement(log, kind, filters, include_note_text, history)

    def rows() -> Iterator[dict[str, Any]]:
        for part in _partitions(log, stmt):
            for r in part:
                row = dict(zip(names, r, strict=True))
                if "grounding_summary" in row:
                    row["grounding_summary"] = summary_text(row["grounding_summary"])
                yield row

    return names, rows()


def _partitions(log: EvalLog, stmt: Any) -> Iterator[Any]:
    with log.read_session() as s:
        yield from s.execute(stmt.execution_options(yield_per=2000)).partitions()


def export(
    log: EvalLog,
    out: TextIO,
    fmt: str = "csv",
    kind: str = "runs",
    filters: RunFilter | None = None,
    include_note_text: bool = True,
    history: bool = False,
) -> int:
    """Write the selected rows to ``out``; return how many."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    names, stmt = _statement(log, kind, filters, include_note_text, history)
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        text_cols = [i for i, k in enumerate(names) if k in FREE_TEXT]
        summary_col = names.index("grounding_summary") if kind == "runs" else None
        for part in _partitions(log, stmt):
            # None becomes an empty cell; every other value is already text or a number.
            rows = [[_cell(v) for v in r] for r in part] if kind == "ratings" else [list(r) for r in part]
            for row in rows:
                for i in text_cols:
                    row[i] = csv_safe(row[i])
                if summary_col is not None:
                    row[summary_col] = summary_text(row[summary_col])
            w.writerows(rows)
            n += len(part)
        return n
    json_cols = [i for i, k in enumerate(names) if k in JSON_COLUMNS] if kind == "runs" else []
    for part in _partitions(log, stmt):
        for r in part:
            rec = dict(zip(names, (_cell(v) if kind == "ratings" else v for v in r), strict=True))
            for i in json_cols:
                if r[i] is not None:
                    rec[names[i]] = json.loads(r[i])
            if kind == "runs":
                rec["grounding_summary"] = summary_text(rec["grounding_summary"])
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        n += len(part)
    return n
