"""The evaluation log's public API: one object per open database, handed to whoever needs it.

Front ends do not drive a run themselves: ``app.service.AskService`` does, with one exception policy::

    log = EvalLog.open(database_path(paths, config), store_note_text=config.store_note_text)
    outcome = AskService.for_engine(engine, log, config.generation).ask(request)
    # inside: run_id = log.start_run(request, model)   row inserted as "started"
    #         engine.ask(...)                          raised -> log.fail_run(run_id, message, reason)
    #         log.finish_run(run_id, result)           finished, with full provenance and grounding
    log.close()

Note text is patient data: it is stored only when ``store_note_text`` is true, is never written to a
log message or an error, and is left out of exports on request.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import StoreError, UsageError
from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult, note_sha256
from app.store import db
from app.store.claims import check_unclaimed
from app.store.models import (
    CHOICES,
    RATER_KINDS,
    SIDES,
    Batch,
    Comparison,
    Model,
    Note,
    PendingComparisonRun,
    Rater,
    Rating,
    Run,
    utcnow,
)
from app.store.queries import (
    ComparisonView,
    FinishedAnswer,
    HistoryRow,
    ModelView,
    RaterView,
    RatingView,
    RunFilter,
    RunQuery,
    RunView,
    answered_by_key_select,
    comparisons_select,
    history_row,
    models_select,
    raters_select,
    rating_select,
    rating_view,
    run_view,
    runs_select,
)

_MAX_PARAMS = 500
"""Keys per IN (...) query: SQLite caps the bound parameters of one statement (999 in older builds)."""

RunRef = int | str
"""A run's integer id or its uuid."""


def params_hash(request: AskRequest) -> str:
    """Every request setting that shapes the answer, hashed; with the model sha it says "same setup"."""
    payload = {**asdict(request.sampling), "prompt_style": request.prompt_style, "truncate": request.truncate}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def resume_key(model_sha256: str, params: str, note_sha: str, task: str, instruction: str, item: str) -> str:
    """What a resumed batch matches on: a finished run with this key is not run again."""
    payload = json.dumps([model_sha256, params, note_sha, task, instruction, item])
    return hashlib.sha256(payload.encode()).hexdigest()


def _clip(value: str | None, n: int) -> str | None:
    """A server-given string cut to its column's width (SQLite would keep more; other readers may not)."""
    return None if value is None else str(value)[:n]


class EvalLog:
    """An open evaluation log. Thread-safe for the usual pattern (one session per call)."""

    def __init__(self, path: Path, engine: Engine, store_note_text: bool = True) -> None:
        self.path = path
        self.engine = engine
        self.store_note_text = store_note_text
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(db.writer(engine), expire_on_commit=False)
        self._model_ids: dict[str, int] = {}
        self._note_ids: dict[str, int] = {}
        self._pid = os.getpid()
        self._host = socket.gethostname()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        store_note_text: bool = True,
        timeout_s: float = db.DEFAULT_TIMEOUT_S,
        check_integrity: bool = True,
    ) -> EvalLog:
        """Open (creating and migrating as needed) the log at ``path``; StoreError if it cannot be used."""
        p = Path(path).expanduser().absolute()
        engine = db.open_engine(p, db.OpenOptions(timeout_s=timeout_s, check_integrity=check_integrity))
        return cls(p, engine, store_note_text)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EvalLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------

    def _model_id(self, s: Session, info: ModelInfo) -> int:
        cached = self._model_ids.get(info.sha256)
        if cached is not None:
            return cached
        mid = s.scalar(select(Model.id).where(Model.sha256 == info.sha256))
        if mid is None:
            m = Model(
                sha256=info.sha256,
                file_name=info.file_name,
                name=info.name,
                architecture=info.architecture,
                quant=info.file_type,
                parameter_count=info.parameter_count,
                context_length=info.context_length,
                size_bytes=info.size_bytes,
                prompt_style=info.prompt_style,
                is_demo=info.is_demo,
                provenance=dict(info.provenance),
            )
            s.add(m)
            s.flush()
            mid = m.id
        self._model_ids[info.sha256] = mid
        return mid

    def _note_id(self, s: Session, text: str) -> int:
        sha = note_sha256(text)
        cached = self._note_ids.get(sha)
        if cached is not None:
            return cached
        row = s.execute(select(Note.id, Note.text).where(Note.sha256 == sha)).first()
        if row is None:
            n = Note(sha256=sha, chars=len(text), text=text if self.store_note_text else None)
            s.add(n)
            s.flush()
            nid = n.id
        else:
            nid = row.id
            if row.text is None and self.store_note_text:
                s.execute(update(Note).where(Note.id == nid).values(text=text))
        self._note_ids[sha] = nid
        return nid

    def start_run(
        self,
        request: AskRequest,
        model: ModelInfo,
        *,
        batch_id: int | None = None,
        resume: str | None = None,
    ) -> int:
        """Insert the run as ``started`` (before the engine runs) and return its id."""
        sp = request.sampling
        with db.translated(self.path), self._write.begin() as s:
            if resume is not None:  # a batch item: claim it or raise ItemClaimed (app/store/claims.py)
                check_unclaimed(s, resume, self._host, self._pid)
            try:
                run = Run(
                    uuid=request.run_uuid,
                    status="started",
                    note_id=self._note_id(s, request.note),
                    model_id=self._model_id(s, model),
                    task=request.task,
                    instruction=request.instruction,
                    max_tokens=sp.max_tokens,
                    temperature=sp.temperature,
                    top_p=sp.top_p,
                    top_k=sp.top_k,
                    min_p=sp.min_p,
                    repeat_penalty=sp.repeat_penalty,
                    seed=sp.seed,
                    requested_prompt_style=request.prompt_style,
                    truncate_allowed=request.truncate,
                    params_hash=params_hash(request),
                    pid=self._pid,
                    host=self._host,
                    started_at=utcnow(),
                    batch_id=batch_id,
                    resume_key=resume,
                    endpoint=_clip(model.provenance.get("endpoint"), 255),
                    served_model=_clip(model.provenance.get("served_model"), 255),
                )
                s.add(run)
                s.flush()
            except BaseException:
                # A rolled-back insert may have taken cached note/model ids with it.
                self._model_ids.clear()
                self._note_ids.clear()
                raise
            return run.id

    def finish_run(self, run_id: int, result: RunResult) -> None:
        """Record the engine's result (any finish reason) on the started run."""
        values: dict[str, Any] = {
            "status": "finished",
            "finished_at": _parse_time(result.finished_at),
            "answer": result.answer,
            "finish_reason": str(result.finish_reason),
            "error": result.error,
            "engine": result.engine,
            "app_version": result.app_version,
            "presets_version": result.presets_version,
            "prompt_style": result.prompt_style,
            "n_ctx": result.n_ctx,
            "n_threads": result.n_threads,
            "prompt_tokens": result.prompt_tokens,
            "reused_tokens": result.reused_tokens,
            "completion_tokens": result.completion_tokens,
            "ttft_s": result.ttft_s,
            "decode_tokens_per_s": result.decode_tokens_per_s,
            "total_s": result.total_s,
            "truncation": asdict(result.truncation) if result.truncation else None,
            "grounding": result.grounding,
        }
        if result.endpoint is not None:  # a remote backend's answer: the server's own account of it
            values.update(
                endpoint=_clip(result.endpoint, 255),
                served_model=_clip(result.served_model, 255),
                reported_model=_clip(result.reported_model, 255),
                system_fingerprint=_clip(result.system_fingerprint, 128),
                usage_reported=result.usage_reported,
            )
        with db.translated(self.path), self._write.begin() as s:
            uuid = s.scalar(select(Run.uuid).where(Run.id == run_id))
            if uuid is None:
                raise StoreError(f"no run with id {run_id} in the log")
            if uuid != result.run_uuid:
                raise StoreError(f"run {run_id} is {uuid}, but the result is for run {result.run_uuid}")
            s.execute(update(Run).where(Run.id == run_id).values(**values))

    def fail_run(self, run_id: int, error: str, reason: FinishReason = FinishReason.ERROR) -> None:
        """The engine raised (or was cancelled before any result): keep the run, with why."""
        with db.translated(self.path), self._write.begin() as s:
            n = s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(status="finished", finished_at=utcnow(), finish_reason=str(reason), error=error)
            ).rowcount
            if n == 0:
                raise StoreError(f"no run with id {run_id} in the log")

    def log_run(self, request: AskRequest, model: ModelInfo, result: RunResult) -> int:
        """Both steps at once, for a run that already happened (an import, a test)."""
        run_id = self.start_run(request, model)
        self.finish_run(run_id, result)
        return run_id

    def finished_keys(self, keys: Iterable[str]) -> set[str]:
        """Which of these resume keys already have a run that produced an answer."""
        return set(self.finished_answers(keys))

    def finished_answers(self, keys: Iterable[str]) -> dict[str, FinishedAnswer]:
        """The latest answered run for each of these resume keys that has one."""
        wanted = list(keys)
        found: dict[str, FinishedAnswer] = {}
        with db.translated(self.path), self._read() as s:
            for i in range(0, len(wanted), _MAX_PARAMS):
                for r in s.execute(answered_by_key_select(wanted[i : i + _MAX_PARAMS])):
                    found[r.resume_key] = FinishedAnswer(**dict(r._mapping))
        return found

    def start_batch(self, input_name: str, input_sha256: str) -> int:
        with db.translated(self.path), self._write.begin() as s:
            b = Batch(input_name=input_name, input_sha256=input_sha256, started_at=utcnow())
            s.add(b)
            s.flush()
            return b.id

    def finish_batch(self, batch_id: int, summary: dict[str, Any]) -> None:
        with db.translated(self.path), self._write.begin() as s:
            s.execute(update(Batch).where(Batch.id == batch_id).values(finished_at=utcnow(), summary=summary))

    # -- ratings and comparisons ------------------------------------------------------------------

    def _run_id(self, s: Session, ref: RunRef) -> int:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            rid = s.scalar(select(Run.id).where(Run.id == int(ref)))
        else:
            rid = s.scalar(select(Run.id).where(Run.uuid == ref))
        if rid is None:
            raise UsageError(f"no run {ref!r} in the log")
        return rid

    def _rater_id(self, s: Session, name: str, kind: str) -> int:
        name = name.strip()
        if not name:
            raise UsageError("a rater needs a name")
        if kind not in RATER_KINDS:
            raise UsageError(f"rater kind must be one of {', '.join(RATER_KINDS)}, not {kind!r}")
        row = s.execute(select(Rater.id, Rater.kind).where(Rater.name == name)).first()
        if row is None:
            r = Rater(name=name, kind=kind, created_at=utcnow())
            s.add(r)
            s.flush()
            return r.id
        if row.kind != kind:
            raise UsageError(f"rater {name!r} is a {row.kind}, not a {kind}")
        return row.id

    def add_rater(self, name: str, kind: str = "human") -> int:
        with db.translated(self.path), self._write.begin() as s:
            return self._rater_id(s, name, kind)

    def add_rating(
        self,
        run: RunRef,
        rater: str,
        score: int,
        *,
        hallucination: bool = False,
        comment: str | None = None,
        corrected_answer: str | None = None,
        rater_kind: str = "human",
        at: datetime | None = None,
    ) -> int:
        """Rate a finished run on the 4-point rubric; an earlier rating by the same rater becomes history."""
        with db.translated(self.path), self._write.begin() as s:
            rating = NewRating(run, rater, score, hallucination, comment, corrected_answer, rater_kind, at)
            return self.add_rating_in(s, rating)

    def add_rating_in(self, s: Session, r: NewRating) -> int:
        """``add_rating`` inside the caller's transaction (an import adds many at once)."""
        if isinstance(r.score, bool) or not isinstance(r.score, int) or not 1 <= r.score <= 4:
            raise UsageError(f"a rating is 1, 2, 3 or 4 on the rubric, not {r.score!r}")
        rid = self._run_id(s, r.run)
        status = s.scalar(select(Run.status).where(Run.id == rid))
        if status != "finished":
            raise UsageError(f"run {r.run!r} is {status}; only finished runs can be rated")
        rater_id = self._rater_id(s, r.rater, r.rater_kind)
        s.execute(
            update(Rating)
            .where(Rating.run_id == rid, Rating.rater_id == rater_id, Rating.is_current.is_(True))
            .values(is_current=False)
        )
        row = Rating(
            run_id=rid,
            rater_id=rater_id,
            score=r.score,
            hallucination=bool(r.hallucination),
            comment=r.comment or None,
            corrected_answer=r.corrected_answer or None,
            is_current=True,
            created_at=r.at or utcnow(),
        )
        s.add(row)
        s.flush()
        return row.id

    def write_session(self) -> Any:
        """A write-locked transaction for bulk work: ``with log.write_session() as s: ...``."""
        return _Translated(self.path, self._write.begin())

    def read_session(self) -> Any:
        return _Translated(self.path, self._read())

    def add_comparison(
        self,
        run_a: RunRef,
        run_b: RunRef,
        rater: str,
        choice: str,
        *,
        a_side: str = "left",
        comment: str | None = None,
        at: datetime | None = None,
    ) -> int:
        """A blinded choice between two finished runs of the same note, task and instruction."""
        if choice not in CHOICES:
            raise UsageError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
        if a_side not in SIDES:
            raise UsageError(f"a_side must be left or right, not {a_side!r}")
        with db.translated(self.path), self._write.begin() as s:
            ida, idb = self._run_id(s, run_a), self._run_id(s, run_b)
            if ida == idb:
                raise UsageError("a comparison needs two different runs")
            rows = {
                r.id: r
                for r in s.execute(
                    select(Run.id, Run.note_id, Run.task, Run.instruction, Run.status).where(Run.id.in_((ida, idb)))
                )
            }
            a, b = rows[ida], rows[idb]
            if (a.note_id, a.task, a.instruction) != (b.note_id, b.task, b.instruction):
                raise UsageError("compared runs must share the note, the task and the instruction")
            if a.status != "finished" or b.status != "finished":
                raise UsageError("only finished runs can be compared")
            c = Comparison(
                run_a_id=ida,
                run_b_id=idb,
                a_side=a_side,
                rater_id=self._rater_id(s, rater, "human"),
                choice=choice,
                comment=comment or None,
                created_at=at or utcnow(),
            )
            s.add(c)
            # The vote ends the blinding of both runs, in the same transaction as the vote itself.
            s.execute(delete(PendingComparisonRun).where(PendingComparisonRun.run_id.in_((ida, idb))))
            s.flush()
            return c.id

    def hold_blind(self, runs: Iterable[RunRef]) -> None:
        """Record runs of a blind comparison awaiting its vote: their model stays hidden, across restarts,
        until :meth:`add_comparison` of them (which ends it); :meth:`undo_vote` records them again."""
        with db.translated(self.path), self._write.begin() as s:
            for ref in runs:
                rid = self._run_id(s, ref)
                if s.get(PendingComparisonRun, rid) is None:
                    s.add(PendingComparisonRun(run_id=rid))

    def release_blind(self, runs: Iterable[RunRef]) -> None:
        """Give up the blind vote on these runs (the user chose to see them): they show their model again."""
        with db.translated(self.path), self._write.begin() as s:
            ids = [self._run_id(s, ref) for ref in runs]
            s.execute(delete(PendingComparisonRun).where(PendingComparisonRun.run_id.in_(ids)))

    def blinded_runs(self) -> set[int]:
        """Ids of the runs whose comparison has not been voted on (see :meth:`hold_blind`)."""
        with db.translated(self.path), self._read() as s:
            return set(s.scalars(select(PendingComparisonRun.run_id)))

    def undo_vote(self, comparison_id: int, rating_ids: Iterable[int] = ()) -> None:
        """Withdraw a comparison and the ratings given with it (the Compare screen's Undo): each rater's
        previous rating of those runs, if any, becomes current again."""
        with db.translated(self.path), self._write.begin() as s:
            c = s.get(Comparison, comparison_id)
            if c is None:
                raise UsageError(f"no comparison {comparison_id}")
            pair = (c.run_a_id, c.run_b_id)
            s.execute(delete(Comparison).where(Comparison.id == comparison_id))
            for rid in pair:  # blind again until the new vote
                if s.get(PendingComparisonRun, rid) is None:
                    s.add(PendingComparisonRun(run_id=rid))
            for rid in rating_ids:
                row = s.get(Rating, rid)
                if row is None:
                    continue
                run_id, rater_id, was_current = row.run_id, row.rater_id, row.is_current
                s.delete(row)
                s.flush()
                if was_current:
                    prev = s.scalar(
                        select(Rating.id)
                        .where(Rating.run_id == run_id, Rating.rater_id == rater_id)
                        .order_by(Rating.created_at.desc(), Rating.id.desc())
                        .limit(1)
                    )
                    if prev is not None:
                        s.execute(update(Rating).where(Rating.id == prev).values(is_current=True))

    # -- queries ----------------------------------------------------------------------------------

    def list_runs(self, filters: RunFilter | None = None, offset: int = 0, limit: int = 100) -> list[RunView]:
        """Runs newest first (paged), without note text."""
        stmt = (filters or RunFilter()).apply(runs_select())
        stmt = stmt.order_by(Run.started_at.desc(), Run.id.desc()).offset(offset).limit(limit)
        with db.translated(self.path), self._read() as s:
            return [run_view(r) for r in s.execute(stmt)]

    def history_page(self, query: RunQuery, offset: int = 0, limit: int = 100) -> list[HistoryRow]:
        """A page of the History list: runs newest first with their mean current score and rating count."""
        with db.translated(self.path), self._read() as s:
            return [history_row(r) for r in s.execute(query.page_select(offset, limit))]

    def count_history(self, query: RunQuery) -> int:
        with db.translated(self.path), self._read() as s:
            return int(s.scalar(query.count_select()) or 0)

    def latest_runs(self, task: str, limit: int = 100) -> list[RunView]:
        return self.list_runs(RunFilter(task=task), 0, limit)

    def count_runs(self, filters: RunFilter | None = None) -> int:
        stmt = (filters or RunFilter()).apply(select(func.count()).select_from(Run))
        with db.translated(self.path), self._read() as s:
            return int(s.scalar(stmt) or 0)

    def get_run(self, run: RunRef) -> RunView | None:
        """One run with its note text (when stored), or None."""
        with db.translated(self.path), self._read() as s:
            try:
                rid = self._run_id(s, run)
            except UsageError:
                return None
            row = s.execute(runs_select(with_note_text=True).where(Run.id == rid)).first()
            return run_view(row) if row else None

    def rating_history(self, run: RunRef, rater: str | None = None) -> list[RatingView]:
        """Every rating of a run, oldest first; ``is_current`` marks each rater's latest."""
        with db.translated(self.path), self._read() as s:
            stmt = rating_select().where(Rating.run_id == self._run_id(s, run))
            if rater is not None:
                stmt = stmt.where(Rater.name == rater)
            return [rating_view(r) for r in s.execute(stmt.order_by(Rating.created_at, Rating.id))]

    def current_ratings(self, run: RunRef) -> list[RatingView]:
        return [r for r in self.rating_history(run) if r.is_current]

    def comparisons(self, run: RunRef | None = None) -> list[ComparisonView]:
        with db.translated(self.path), self._read() as s:
            stmt = comparisons_select()
            if run is not None:
                rid = self._run_id(s, run)
                stmt = stmt.where((Comparison.run_a_id == rid) | (Comparison.run_b_id == rid))
            return [ComparisonView(**dict(r._mapping)) for r in s.execute(stmt.order_by(Comparison.id))]

    def raters(self) -> list[RaterView]:
        with db.translated(self.path), self._read() as s:
            return [RaterView(**dict(r._mapping)) for r in s.execute(raters_select())]

    def models(self) -> list[ModelView]:
        with db.translated(self.path), self._read() as s:
            return [ModelView(**dict(r._mapping)) for r in s.execute(models_select())]

    def tasks(self) -> list[str]:
        with db.translated(self.path), self._read() as s:
            return list(s.scalars(select(Run.task).distinct().order_by(Run.task)))

    def integrity_check(self) -> list[str]:
        with db.translated(self.path), self.engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]


@dataclass(frozen=True)
class NewRating:
    run: RunRef
    rater: str
    score: int
    hallucination: bool = False
    comment: str | None = None
    corrected_answer: str | None = None
    rater_kind: str = "human"
    at: datetime | None = None


class _Translated:
    """A session context whose SQLite errors come out as StoreError."""

    def __init__(self, path: Path, inner: Any) -> None:
        self.path, self.inner = path, inner

    def __enter__(self) -> Session:
        with db.translated(self.path):
            return self.inner.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        with db.translated(self.path):
            return self.inner.__exit__(*exc)


def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise StoreError(f"run time {value!r} has no time zone; the engine must report UTC")
    return t


__all__ = ["EvalLog", "NewRating", "RunRef", "params_hash", "resume_key"]
