"""Read side of the log: filters and plain, frozen views a front end can hold without a session.

Views are dataclasses, not ORM objects, so the desktop app can keep them in a list model after the
session that read them is gone (a detached ORM object raises on the first lazy attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select

from app.core.types import SamplingParams
from app.store.models import Comparison, Model, Note, Rater, Rating, Run
from app.store.rules import RATEABLE_FINISH, answered_or_running


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list, count or export. Every field left as None matches everything."""

    task: str | None = None
    """Task name exactly as in ``resources.TASK_NAMES``."""
    model: str | None = None
    """A model's sha256 (or a prefix of 6+ hex digits) or its file name."""
    rater: str | None = None
    """Only runs this rater has a current rating for."""
    since: datetime | None = None
    """Runs started at or after this (aware) time."""
    until: datetime | None = None
    """Runs started before this (aware) time."""
    status: str | None = None
    note_sha256: str | None = None
    batch_id: int | None = None
    finished_only: bool = False
    """Only finished runs that produced an answer (finish reason stop or length)."""

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"RunFilter.{name} must be timezone-aware, not {value!r}")

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        conds: list[Any] = []
        if self.task is not None:
            conds.append(Run.task == self.task)
        if self.model is not None:
            m = self.model.strip()
            model_ids = select(Model.id).where(
                or_(Model.file_name == m, Model.sha256 == m.lower(), Model.sha256.startswith(m.lower()))
                if len(m) >= 6
                else Model.file_name == m
            )
            conds.append(Run.model_id.in_(model_ids))
        if self.rater is not None:
            conds.append(
                exists().where(
                    Rating.run_id == Run.id,
                    Rating.is_current.is_(True),
                    Rating.rater_id == select(Rater.id).where(Rater.name == self.rater).scalar_subquery(),
                )
            )
        if self.since is not None:
            conds.append(Run.started_at >= self.since)
        if self.until is not None:
            conds.append(Run.started_at < self.until)
        if self.status is not None:
            conds.append(Run.status == self.status)
        if self.note_sha256 is not None:
            conds.append(Run.note_id == select(Note.id).where(Note.sha256 == self.note_sha256).scalar_subquery())
        if self.batch_id is not None:
            conds.append(Run.batch_id == self.batch_id)
        if self.finished_only:
            conds.append(and_(Run.status == "finished", Run.finish_reason.in_(RATEABLE_FINISH)))
        return stmt.where(*conds) if conds else stmt


@dataclass(frozen=True)
class RunView:
    id: int
    uuid: str
    status: str
    task: str
    instruction: str
    answer: str | None
    finish_reason: str | None
    error: str | None
    model_sha256: str
    model_file: str
    model_name: str
    model_quant: str
    note_sha256: str
    note_chars: int
    started_at: datetime
    finished_at: datetime | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    decode_tokens_per_s: float | None
    total_s: float | None
    params_hash: str
    batch_id: int | None
    sampling: dict[str, Any] = field(default_factory=dict)
    grounding: dict[str, Any] | None = None
    truncation: dict[str, Any] | None = None
    note_text: str | None = None
    """Only filled by ``get_run`` (a list of runs never carries note text)."""
    endpoint: str | None = None
    """Remote runs only (revision 0003): the server, the name asked for, what the server said answered."""
    served_model: str | None = None
    reported_model: str | None = None
    system_fingerprint: str | None = None
    usage_reported: bool | None = None
    """False: the server sent no token usage (prompt tokens unknown, recorded as 0; completion counted)."""
    note_label: str | None = None
    """The name a user gave the run's note (revision 0008), or None."""
    note_first_line: str | None = None
    """The note's first non-blank line (History pages only; None when the log keeps only the note's hash)."""

    @property
    def note_title(self) -> str:
        """How a list names the note: its name, else its first line, else its short sha256 (hash-only log)."""
        return note_title(self.note_label, self.note_first_line, self.note_sha256)

    @property
    def note_caption(self) -> str:
        return note_caption(self.note_label, self.note_first_line, self.note_sha256)


@dataclass(frozen=True)
class RatingView:
    id: int
    run_id: int
    rater: str
    rater_kind: str
    score: int
    hallucination: bool
    comment: str | None
    corrected_answer: str | None
    is_current: bool
    created_at: datetime
    withdrawn_at: datetime | None = None
    """When the Compare vote it was given with was undone (it stays as history, never current again)."""


@dataclass(frozen=True)
class RaterView:
    id: int
    name: str
    kind: str
    ratings: int
    """Current ratings given."""


@dataclass(frozen=True)
class ModelView:
    id: int
    sha256: str
    file_name: str
    name: str
    architecture: str
    quant: str
    context_length: int
    is_demo: bool
    runs: int


@dataclass(frozen=True)
class ComparisonView:
    id: int
    run_a_id: int
    run_b_id: int
    a_side: str
    rater: str
    choice: str
    comment: str | None
    created_at: datetime
    blind: bool = True
    """False: cast after the rater had seen which model wrote which answer (not counted in win rates)."""
    withdrawn_at: datetime | None = None
    """When the vote was undone (kept, not counted)."""
    same_model: bool = False
    """An A/A comparison: both runs are of the same model file (same sha256), so the vote measures position
    bias, not a model; win rates leave it out."""


RUN_COLUMNS = (
    Run.id,
    Run.uuid,
    Run.status,
    Run.task,
    Run.instruction,
    Run.answer,
    Run.finish_reason,
    Run.error,
    Model.sha256.label("model_sha256"),
    Model.file_name.label("model_file"),
    Model.name.label("model_name"),
    Model.quant.label("model_quant"),
    Note.sha256.label("note_sha256"),
    Note.chars.label("note_chars"),
    Note.label.label("note_label"),
    Run.started_at,
    Run.finished_at,
    Run.prompt_tokens,
    Run.completion_tokens,
    Run.ttft_s,
    Run.decode_tokens_per_s,
    Run.total_s,
    Run.params_hash,
    Run.batch_id,
    Run.max_tokens,
    Run.temperature,
    Run.top_p,
    Run.top_k,
    Run.min_p,
    Run.repeat_penalty,
    Run.seed,
    Run.grounding,
    Run.truncation,
    Run.endpoint,
    Run.served_model,
    Run.reported_model,
    Run.system_fingerprint,
    Run.usage_reported,
)
SAMPLING_KEYS = tuple(f.name for f in fields(SamplingParams))
"""One column per sampling parameter, named as in SamplingParams (a new parameter must get a column)."""


def runs_select(with_note_text: bool = False) -> Select[Any]:
    cols = (*RUN_COLUMNS, Note.text.label("note_text")) if with_note_text else RUN_COLUMNS
    return select(*cols).join(Model, Run.model_id == Model.id).join(Note, Run.note_id == Note.id)


def run_view(row: Any) -> RunView:
    m = row._mapping
    sampling = {k: m[k] for k in SAMPLING_KEYS}
    base = {k: m[k] for k in RunView.__dataclass_fields__ if k in m and k != "sampling"}
    return RunView(**base, sampling=sampling)


HistoryRow = tuple[RunView, float | None, int]
"""A History line: the run, its mean current score (None when unrated) and its number of current ratings
(with ``RunQuery.viewer``: that rater's own score and 1, or None and 0)."""


@dataclass(frozen=True)
class RunQuery:
    """What the History screen lists: ``RunFilter`` plus a text search and "rated or not"."""

    filters: RunFilter = field(default_factory=RunFilter)
    search: str = ""
    """Case-insensitive substring of the instruction or the answer."""
    rated: bool | None = None
    """True: runs with a current rating; False: runs without; None: both (with ``viewer``: the viewer's)."""
    viewer: str | None = None
    """The rater looking (the History screen's): scores and "rated" are that rater's own, so a rater never
    sees how many others rated a run nor their mean before rating it. None: every rater's (a coordinator's
    export or statistics)."""
    hide_failed: bool = False
    """Leave out failed attempts: runs that ended without an answer to rate (stopped, failed, interrupted).
    Runs still going are kept."""

    def _current(self) -> tuple[Any, ...]:
        """The current ratings a row counts: the viewer's only, when there is one."""
        current = (Rating.run_id == Run.id, Rating.is_current.is_(True))
        if self.viewer is None:
            return current
        return (*current, Rating.rater_id == select(Rater.id).where(Rater.name == self.viewer).scalar_subquery())

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        stmt = self.filters.apply(stmt)
        if self.search.strip():
            pat = "%" + self.search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(or_(Run.instruction.ilike(pat, escape="\\"), Run.answer.ilike(pat, escape="\\")))
        if self.rated is not None:
            has = exists().where(*self._current())
            stmt = stmt.where(has if self.rated else ~has)
        if self.hide_failed:
            stmt = stmt.where(answered_or_running())
        return stmt

    def page_select(self, offset: int, limit: int) -> Select[Any]:
        """Runs newest first, each with ``mean_score`` and ``n_ratings`` over current ratings (the viewer's)."""
        current = self._current()
        mean = select(func.avg(Rating.score)).where(*current).scalar_subquery()
        n = select(func.count()).where(*current).scalar_subquery()
        cols = (mean.label("mean_score"), n.label("n_ratings"), note_first_line().label("note_first_line"))
        stmt = self.apply(runs_select().add_columns(*cols))
        return stmt.order_by(Run.started_at.desc(), Run.id.desc()).offset(offset).limit(limit)

    def count_select(self) -> Select[Any]:
        return self.apply(select(func.count()).select_from(Run))

    def page(self, log: Any, offset: int, limit: int) -> list[HistoryRow]:
        """``log.history_page(self, offset, limit)`` (kept for callers holding a query)."""
        return log.history_page(self, offset, limit)

    def count(self, log: Any) -> int:
        return log.count_history(self)


NOTE_LINE_CHARS = 80
"""A note's first line is cut to this many characters in a list."""
_BLANKS = " \t\r\n"


def note_first_line() -> Any:
    """The note's first non-blank line as a SQL column (NULL for a hash-only note): SQLite cuts it, so a
    History page never reads whole notes."""
    head = func.ltrim(func.substr(Note.text, 1, 4 * NOTE_LINE_CHARS), _BLANKS)
    line = func.substr(head, 1, func.instr(head + "\n", "\n") - 1)
    return func.substr(func.rtrim(line, _BLANKS), 1, NOTE_LINE_CHARS)


def note_title(label: str | None, first_line: str | None, sha256: str) -> str:
    """The one way a note is named in a list: the user's name, its first line, or its short hash."""
    return (label or "").strip() or (first_line or "").strip() or f"note {sha256[:10]}"


def note_caption(label: str | None, first_line: str | None, sha256: str) -> str:
    """:func:`note_title` with the short hash after it (two notes may share a first line), said once."""
    title = note_title(label, first_line, sha256)
    return title if title == f"note {sha256[:10]}" else f"{title} · {sha256[:6]}"


@dataclass(frozen=True)
class NoteView:
    """A note as the History filter lists it (never its text)."""

    sha256: str
    label: str | None
    """The name a user gave it, or None."""
    first_line: str | None
    """Its first non-blank line (None in a hash-only log)."""
    runs: int
    """Runs of this note in the log."""
    last_run: datetime | None
    """When the latest of them started (notes are listed most recent first)."""

    @property
    def title(self) -> str:
        return note_title(self.label, self.first_line, self.sha256)

    @property
    def caption(self) -> str:
        return note_caption(self.label, self.first_line, self.sha256)


def notes_select() -> Select[Any]:
    """Notes that have runs, most recently used first."""
    last = func.max(Run.started_at)
    return (
        select(
            Note.sha256,
            Note.label,
            note_first_line().label("first_line"),
            func.count(Run.id).label("runs"),
            last.label("last_run"),
        )
        .join(Run, Run.note_id == Note.id)
        .group_by(Note.id)
        .order_by(last.desc(), Note.id.desc())
    )


def history_row(row: Any) -> HistoryRow:
    return run_view(row), row.mean_score, row.n_ratings


@dataclass(frozen=True)
class FinishedAnswer:
    """The answer a resumable batch wrote for one resume key (what ``batch --output`` exports)."""

    resume_key: str
    """The batch item's key (``app.store.runs.resume_key``)."""
    uuid: str
    """The answering run's uuid."""
    answer: str | None
    finish_reason: str | None
    """``stop`` or ``length``: only a run that produced an answer finishes an item."""
    completion_tokens: int | None
    model_file: str
    """The file name of the model that answered."""
    grounding_counts: str | None = None
    """The counts of its grounding report as JSON text (``grounding_counts``; ``export.summary_text`` words it)."""


SUMMARY_KEYS = (
    "schema", "claims", "supported", "partly", "not_found", "unchecked", "items", "items_found", "unusual_senses",
    "omissions", "checked",
)  # fmt: skip
"""What ``describe_summary`` reads of a stored report, taken out by SQLite (``json_extract``): parsing every
claim of every run in Python would cost most of an export's or a batch output's time."""


def grounding_counts() -> Any:
    """A column of the run's grounding counts as a small JSON object (``SUMMARY_KEYS``; null where absent)."""
    return func.json_object(*[x for k in SUMMARY_KEYS for x in (k, func.json_extract(Run.grounding, f"$.{k}"))])


def answered_by_key_select(keys: list[str]) -> Select[Any]:
    """Finished, answered runs with these resume keys, oldest first (so the latest wins in a dict)."""
    return (
        select(
            Run.resume_key,
            Run.uuid,
            Run.answer,
            Run.finish_reason,
            Run.completion_tokens,
            Model.file_name.label("model_file"),
            grounding_counts().label("grounding_counts"),
        )
        .join(Model, Run.model_id == Model.id)
        .where(Run.resume_key.in_(keys), Run.status == "finished", Run.finish_reason.in_(RATEABLE_FINISH))
        .order_by(Run.id)
    )


def rating_select() -> Select[Any]:
    return select(
        Rating.id,
        Rating.run_id,
        Rater.name.label("rater"),
        Rater.kind.label("rater_kind"),
        Rating.score,
        Rating.hallucination,
        Rating.comment,
        Rating.corrected_answer,
        Rating.is_current,
        Rating.created_at,
        Rating.withdrawn_at,
    ).join(Rater, Rating.rater_id == Rater.id)


def rating_view(row: Any) -> RatingView:
    return RatingView(**dict(row._mapping))


def raters_select() -> Select[Any]:
    counts = (
        select(Rating.rater_id, func.count().label("n"))
        .where(Rating.is_current.is_(True))
        .group_by(Rating.rater_id)
        .subquery()
    )
    return (
        select(Rater.id, Rater.name, Rater.kind, func.coalesce(counts.c.n, 0).label("ratings"))
        .outerjoin(counts, counts.c.rater_id == Rater.id)
        .order_by(Rater.name)
    )


def models_select() -> Select[Any]:
    counts = select(Run.model_id, func.count().label("n")).group_by(Run.model_id).subquery()
    return (
        select(
            Model.id,
            Model.sha256,
            Model.file_name,
            Model.name,
            Model.architecture,
            Model.quant,
            Model.context_length,
            Model.is_demo,
            func.coalesce(counts.c.n, 0).label("runs"),
        )
        .outerjoin(counts, counts.c.model_id == Model.id)
        .order_by(Model.name, Model.quant)
    )


def _model_of(run_id: Any) -> Any:
    return select(Run.model_id).where(Run.id == run_id).scalar_subquery()


def same_model_clause() -> Any:
    """True for a comparison whose two runs are of one model file (an A/A comparison)."""
    return _model_of(Comparison.run_a_id) == _model_of(Comparison.run_b_id)


def comparisons_select() -> Select[Any]:
    return select(
        Comparison.id,
        Comparison.run_a_id,
        Comparison.run_b_id,
        Comparison.a_side,
        Rater.name.label("rater"),
        Comparison.choice,
        Comparison.comment,
        Comparison.created_at,
        Comparison.blind,
        Comparison.withdrawn_at,
        same_model_clause().label("same_model"),
    ).join(Rater, Comparison.rater_id == Rater.id)
