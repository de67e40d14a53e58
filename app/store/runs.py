"""The run lifecycle: a run is inserted as ``started`` before the engine runs and finished (or failed) after
it, so a crash leaves a visible trace; batches group the runs of one ``batch`` input and resume by key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.errors import StoreError
from app.core.grounding.redact import redact_summary
from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult, note_sha256
from app.store.base import LogBase
from app.store.claims import check_unclaimed
from app.store.models import Batch, Model, Note, Run, utcnow
from app.store.queries import FinishedAnswer, answered_by_key_select

_MAX_PARAMS = 500
"""Keys per IN (...) query: SQLite caps the bound parameters of one statement (999 in older builds)."""


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


def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise StoreError(f"run time {value!r} has no time zone; the engine must report UTC")
    return t


def _finished_values(result: RunResult) -> dict[str, Any]:
    """The run columns a finished result sets (any finish reason)."""
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
    return values


class RunsMixin(LogBase):
    """Runs and batches: ``start_run`` -> ``finish_run`` | ``fail_run``; resume keys; batch rows."""

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
        with self.write_session() as s:
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
        """Record the engine's result (any finish reason) on the started run.

        A hash-only log (``store_note_text`` false) stores the grounding report without the note's words
        (``app.core.grounding.redact``): a reason or an omission would otherwise quote the note."""
        values = _finished_values(result)
        if not self.store_note_text:
            values["grounding"] = redact_summary(values["grounding"])
        with self.write_session() as s:
            uuid = s.scalar(select(Run.uuid).where(Run.id == run_id))
            if uuid is None:
                raise StoreError(f"no run with id {run_id} in the log")
            if uuid != result.run_uuid:
                raise StoreError(f"run {run_id} is {uuid}, but the result is for run {result.run_uuid}")
            s.execute(update(Run).where(Run.id == run_id).values(**values))

    def fail_run(self, run_id: int, error: str, reason: FinishReason = FinishReason.ERROR) -> None:
        """The engine raised (or was cancelled before any result): keep the run, with why."""
        with self.write_session() as s:
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
        with self.read_session() as s:
            for i in range(0, len(wanted), _MAX_PARAMS):
                for r in s.execute(answered_by_key_select(wanted[i : i + _MAX_PARAMS])):
                    found[r.resume_key] = FinishedAnswer(**dict(r._mapping))
        return found

    def start_batch(self, input_name: str, input_sha256: str) -> int:
        with self.write_session() as s:
            b = Batch(input_name=input_name, input_sha256=input_sha256, started_at=utcnow())
            s.add(b)
            s.flush()
            return b.id

    def finish_batch(self, batch_id: int, summary: dict[str, Any]) -> None:
        with self.write_session() as s:
            s.execute(update(Batch).where(Batch.id == batch_id).values(finished_at=utcnow(), summary=summary))


__all__ = ["RunsMixin", "params_hash", "resume_key"]
