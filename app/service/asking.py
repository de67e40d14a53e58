"""``AskService``: validate, start the run in the log, ask the engine, ground, finish or fail the run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from app.core.backend import AnyEvent, InferenceEngine, ManyAskingEngine, PrereadingEngine, TokenCallback
from app.core.budget import Budget
from app.core.config import GenerationDefaults
from app.core.errors import AsclepiusError, Cancelled, GenerationError, StoreError, UsageError
from app.core.grounding import GroundingReport, check_answer
from app.core.notes import validate_note
from app.core.preread import Preread, PrereadProgress
from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult
from app.service.sampling import SamplingOverrides, resolve_sampling
from app.service.senses import SenseSource
from resources import get_task

log = logging.getLogger(__name__)

EngineFor = Callable[[ModelInfo | None], InferenceEngine]
"""Gives the engine for a model (``None``: the default one). May load it, so call it off the GUI thread."""

IndexedTokenCallback = Callable[[int, str], None]
"""``(index of the request, piece of its answer)`` for :meth:`AskService.ask_many`."""


class RunSink(Protocol):
    """Where runs are recorded: ``app.store.EvalLog`` (a fake in tests)."""

    def start_run(
        self, request: AskRequest, model: ModelInfo, *, batch_id: int | None = None, resume: str | None = None
    ) -> int: ...

    def finish_run(self, run_id: int, result: RunResult) -> None: ...

    def fail_run(self, run_id: int, error: str, reason: FinishReason = FinishReason.ERROR) -> None: ...


@dataclass(frozen=True)
class AskOutcome:
    """One answered request: the result as logged, the full grounding report, and where it was logged."""

    request: AskRequest
    result: RunResult
    """Answer stripped of leading whitespace; ``grounding`` holds ``grounding_report.summary()``."""
    model: ModelInfo
    grounding: GroundingReport
    """Every checked span with offsets in the answer and in ``note`` (computed once, here)."""
    note: str
    """The note text the model saw: validated, and cut where it was truncated."""
    run_id: int | None
    """The run's row in the log; None when it was not recorded (see ``log_error``)."""
    log_error: str | None = None
    """Why the run is not in the log (no log open, or the log failed after the answer was made)."""

    @property
    def answered(self) -> bool:
        """True when the model produced an answer that ended normally (stop or length)."""
        return self.result.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)


class _LeadingWhitespaceStripper:
    """Streams pieces on, dropping whitespace before the answer's first visible character."""

    def __init__(self, sink: TokenCallback) -> None:
        self.sink = sink
        self.started = False

    def __call__(self, piece: str) -> None:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started = True
        self.sink(piece)


def ground(
    answer: str,
    note: str,
    kept_chars: int | None = None,
    task: str | None = None,
    instruction: str = "",
    senses: SenseSource | None = None,
) -> GroundingReport:
    """The grounding report of ``answer`` against the note the model saw (the one place it is computed).

    Offsets in the note are relative to the validated note (outer whitespace removed, line endings
    normalised); ``kept_chars`` is where the run cut it, if it did. A logged run shown again (History) passes
    its stored note and truncation, so its highlights match the live run's. ``senses`` (the service's, from
    ``AppConfig.abbreviation_senses``) is read only for Abbreviation Expansion answers; when it cannot be
    read the report's ``notes`` says so.
    """
    if not answer.strip():
        return GroundingReport()
    note = validate_note(note)  # a no-op on the service's own requests; older logs stored raw text
    inventory, problem = None, ""
    if senses is not None and task and _slug(task) == "abbrev":
        inventory, problem = senses.get()
    used = note[:kept_chars] if kept_chars is not None else note
    report = check_answer(answer, used, task, instruction, inventory)
    return replace(report, notes=(*report.notes, problem)) if problem else report


def _slug(task: str) -> str:
    try:
        return get_task(task).slug
    except KeyError:
        return ""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class AskService:
    """The one path from a question to a logged, grounded answer, shared by every front end.

    ``engine_for`` picks the backend for a model, ``log`` records runs (None: nothing is recorded, and
    ``log_unavailable`` says why in each outcome), ``generation`` is the user's settings for sampling.
    """

    def __init__(
        self,
        engine_for: EngineFor,
        log: RunSink | None,
        generation: GenerationDefaults,
        *,
        log_unavailable: str = "the evaluation log is not open",
        senses: SenseSource | None = None,
    ) -> None:
        self._engine_for = engine_for
        self.log = log
        self.generation = generation
        self.log_unavailable = log_unavailable
        self.senses = senses
        """Abbreviation sense inventories for grounding (None: none configured)."""

    @classmethod
    def for_engine(
        cls, engine: InferenceEngine, log: RunSink | None, generation: GenerationDefaults, **kw: Any
    ) -> AskService:
        """A service over one loaded engine (the CLI): asking for another model is a usage error."""

        def engine_for(model: ModelInfo | None) -> InferenceEngine:
            if model is not None and model.sha256 != engine.model.sha256:
                raise UsageError(f"{model.file_name} is not the loaded model ({engine.model.file_name})")
            return engine

        return cls(engine_for, log, generation, **kw)

    # -- building requests ------------------------------------------------------------------------
    def request(
        self,
        note: str,
        task: str,
        instruction: str,
        *,
        explicit: SamplingOverrides | None = None,
        prompt_style: str | None = None,
        truncate: bool = False,
    ) -> AskRequest:
        """Check every input now (NoteError, UsageError) and resolve the sampling settings.

        The request carries the validated note (line endings normalised, outer whitespace removed), so the
        log stores and hashes the text the model sees, whatever the front end passed.
        """
        problems: list[str] = []
        try:
            task_name = get_task(task).name
        except KeyError as exc:
            problems.append(str(exc.args[0]))
            task_name = task
        if not isinstance(instruction, str) or not instruction.strip():
            problems.append("the instruction is empty")
        if problems:
            raise UsageError("; ".join(problems))
        clean = validate_note(note)
        sampling = resolve_sampling(task_name, self.generation, explicit)
        return AskRequest(clean, task_name, instruction.strip(), sampling, prompt_style, truncate)

    def ground(
        self, answer: str, note: str, kept_chars: int | None = None, task: str | None = None, instruction: str = ""
    ) -> GroundingReport:
        """:func:`ground` with this service's sense inventories (History re-grounds a logged run here)."""
        return ground(answer, note, kept_chars, task, instruction, self.senses)

    def engine(self, model: ModelInfo | None = None) -> InferenceEngine:
        return self._engine_for(model)

    def budget(self, note: str, task: str, instruction: str, *, model: ModelInfo | None = None) -> Budget:
        """How the prompt for this note, task and instruction fits the model's context (a worker call).

        The answer reserve is the ``max_tokens`` the sampling rule gives this task; NoteError for a bad note.
        """
        engine = self._engine_for(model)
        max_tokens = resolve_sampling(task, self.generation).max_tokens
        return engine.budget(validate_note(note), instruction.strip() or " ", max_tokens)

    def preread(
        self,
        note: str,
        *,
        model: ModelInfo | None = None,
        prompt_style: str | None = None,
        on_progress: PrereadProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> Preread | None:
        """Read ``note`` into the engine before a question arrives (a worker call; NoteError for a bad note).

        None where the backend cannot (a remote server). Nothing is logged: no question exists yet; the next
        ``ask`` on the note continues from what was read, with the answer a cold ask gives.
        """
        engine = self._engine_for(model)
        if not engine.capabilities.preread:
            return None
        reader = cast(PrereadingEngine, engine)
        return reader.preread(validate_note(note), prompt_style, on_progress=on_progress, cancel=cancel)

    # -- asking -----------------------------------------------------------------------------------
    def ask(
        self,
        request: AskRequest,
        *,
        model: ModelInfo | None = None,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
        batch_id: int | None = None,
        resume_key: str | None = None,
    ) -> AskOutcome:
        """Answer one request: start the run, ask, then finish it, or fail it and re-raise.

        Exception policy (the same for every caller):

        * A problem with the inputs or the model, found before generation (NoteError, UsageError,
          ContextOverflowError, ModelError), is raised; the run, if started, is recorded as failed with
          the message first. So is any unexpected exception (a KeyboardInterrupt is recorded as cancelled).
        * A cancel or a backend failure *during* generation comes back in ``result.finish_reason``
          (``cancelled`` / ``error``) and is logged as such; it is not raised (``raise_for_finish`` does
          that for callers that want an exit code).
        * The log failing to *start* a run is raised (StoreError) before anything is generated; the log
          failing to *finish* it never loses the answer: the outcome carries it with ``log_error``.
        """
        engine = self._engine_for(model)
        request = replace(request, note=validate_note(request.note))
        run_id: int | None = None
        if self.log is not None:
            run_id = self.log.start_run(request, engine.model, batch_id=batch_id, resume=resume_key)
        sink = _LeadingWhitespaceStripper(on_token) if on_token is not None else None
        try:
            raw = engine.ask(request, on_token=sink, cancel=cancel)
        except BaseException as exc:
            if run_id is not None:
                self._record_failure(run_id, exc)
            raise
        return self._complete(request, raw, engine.model, run_id)

    def _complete(self, request: AskRequest, raw: RunResult, model: ModelInfo, run_id: int | None) -> AskOutcome:
        """Strip, ground and record one backend result (the log failing here never loses the answer)."""
        answer = raw.answer.lstrip()
        kept = raw.truncation.kept_chars if raw.truncation else None
        used = request.note[:kept] if kept is not None else request.note
        report = self.ground(answer, request.note, kept, request.task, request.instruction)
        result = replace(raw, answer=answer, grounding=report.summary() if answer else None)
        log_error = None if self.log is not None else self.log_unavailable
        if run_id is not None and self.log is not None:
            try:
                self.log.finish_run(run_id, result)
            except StoreError as exc:
                log.error("the answer of run %s could not be recorded: %s", result.run_uuid, exc)
                run_id, log_error = None, str(exc)
        return AskOutcome(request, result, model, report, used, run_id, log_error)

    def _record_failure(self, run_id: int, exc: BaseException) -> None:
        assert self.log is not None
        cancelled = isinstance(exc, Cancelled | KeyboardInterrupt)
        reason = FinishReason.CANCELLED if cancelled else FinishReason.ERROR
        message = _describe(exc) if isinstance(exc, AsclepiusError) else f"{type(exc).__name__}: {_describe(exc)}"
        try:
            self.log.fail_run(run_id, message, reason)
        except StoreError as store_exc:  # the original error is the one to report
            log.error("run %s could not be marked failed: %s", run_id, store_exc)

    def ask_many(
        self,
        requests: Sequence[AskRequest],
        *,
        model: ModelInfo | None = None,
        on_start: Callable[[int, AskRequest], None] | None = None,
        on_token: IndexedTokenCallback | None = None,
        on_done: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
        cancels: Sequence[threading.Event] | None = None,
        parallel: int | None = None,
        batch_id: int | None = None,
        resume_keys: Sequence[str | None] | None = None,
    ) -> list[AskOutcome]:
        """Answer several requests about ONE note on one model (the note is evaluated once).

        A backend declaring ``capabilities.ask_many`` (the local engine) decodes up to ``parallel`` answers
        together (None: its own choice from the context; 1: one at a time), so ``on_start(i, request)`` and
        ``on_token(i, piece)`` may interleave between requests; ``on_done(i)`` follows request ``i``'s last
        piece (``app.service.streams.OrderedStream`` puts them back in order for one stream).
        ``cancels[i]`` stops request ``i``;
        ``cancel`` stops them all. Outcomes come in request order; requests never started (a cancel
        came first) are left out, so the list is a prefix of the requests. An exception is raised as in
        :meth:`ask`, after every run already started was recorded as failed.
        """
        if not requests:
            return []
        if cancels is not None and len(cancels) != len(requests):
            raise UsageError(f"{len(cancels)} cancel events for {len(requests)} requests")
        requests = [replace(r, note=validate_note(r.note)) for r in requests]
        if len({r.note for r in requests}) > 1:
            raise UsageError(f"ask_many answers questions about one note; got {len({r.note for r in requests})}")
        cancel = cancel or threading.Event()
        keys = list(resume_keys) if resume_keys is not None else [None] * len(requests)
        engine = self._engine_for(model)
        # One question takes the single-ask path, so it follows ``ask``'s policy exactly: the run is started
        # first, and a prompt refused before generation (over the context, say) is kept as a failed run.
        if not engine.capabilities.ask_many or len(requests) == 1:
            return self._ask_in_turn(requests, model, on_start, on_token, on_done, cancel, cancels, batch_id, keys)
        run_ids: list[int | None] = [None] * len(requests)
        sinks = [
            _LeadingWhitespaceStripper(lambda piece, i=i: on_token(i, piece)) if on_token is not None else None
            for i in range(len(requests))
        ]

        def started(i: int) -> None:
            if self.log is not None:
                run_ids[i] = self.log.start_run(requests[i], engine.model, batch_id=batch_id, resume=keys[i])
            if on_start is not None:
                on_start(i, requests[i])

        def piece(i: int, text: str) -> None:
            sink = sinks[i]
            if sink is not None:
                sink(text)

        outcomes: dict[int, AskOutcome] = {}

        def finished(i: int, raw: RunResult) -> None:
            # Recorded as each answer ends: a crash later loses none of the answers already made.
            outcomes[i] = self._complete(requests[i], raw, engine.model, run_ids[i])
            if on_done is not None:
                on_done(i)

        try:
            cast(ManyAskingEngine, engine).ask_many(
                requests, piece, cancel, cancels=cancels, parallel=parallel, on_start=started, on_finish=finished
            )
        except BaseException as exc:
            for i, run_id in enumerate(run_ids):
                if run_id is not None and i not in outcomes:
                    self._record_failure(run_id, exc)
            if isinstance(exc, AsclepiusError) and all(r is None for r in run_ids):
                self._record_refusal(engine, requests, exc, batch_id, keys)
            raise
        out = []
        for i in range(len(requests)):
            if i not in outcomes:
                break
            out.append(outcomes[i])
        return out

    def _record_refusal(
        self,
        engine: InferenceEngine,
        requests: Sequence[AskRequest],
        exc: AsclepiusError,
        batch_id: int | None,
        keys: list[str | None],
    ) -> None:
        """A request refused before any answer started (over the context, say) is kept as a failed run, as
        :meth:`ask` keeps it; ``exc.request_index`` then says which one (a batch skips it when it retries
        the others one by one, so it is not recorded twice)."""
        index = None
        for i, r in enumerate(requests):
            try:
                b = engine.budget(r.note, r.instruction, r.sampling.max_tokens, r.prompt_style)
            except AsclepiusError:
                index = i
                break
            if not b.fits and not r.truncate:
                index = i
                break
        if index is None:
            return
        exc.request_index = index  # type: ignore[attr-defined]
        if self.log is None:
            return
        try:
            run_id = self.log.start_run(requests[index], engine.model, batch_id=batch_id, resume=keys[index])
        except Exception as log_exc:  # claimed by another batch, or the log failed: the refusal is still raised
            log.error("the refused request could not be recorded: %s", log_exc)
            return
        self._record_failure(run_id, exc)

    def _ask_in_turn(
        self,
        requests: Sequence[AskRequest],
        model: ModelInfo | None,
        on_start: Callable[[int, AskRequest], None] | None,
        on_token: IndexedTokenCallback | None,
        on_done: Callable[[int], None] | None,
        cancel: threading.Event,
        cancels: Sequence[threading.Event] | None,
        batch_id: int | None,
        keys: list[str | None],
    ) -> list[AskOutcome]:
        """One request after the other (a backend without the ``ask_many`` capability); stops at the cancel of
        all."""
        out: list[AskOutcome] = []
        for i, req in enumerate(requests):
            if cancel.is_set():
                break
            if on_start is not None:
                on_start(i, req)
            sink = (lambda piece, i=i: on_token(i, piece)) if on_token is not None else None
            own = AnyEvent(cancel, cancels[i]) if cancels is not None else cancel
            out.append(self.ask(req, model=model, on_token=sink, cancel=own, batch_id=batch_id, resume_key=keys[i]))
            if on_done is not None:
                on_done(i)
        return out


def raise_for_finish(outcome: AskOutcome) -> AskOutcome:
    """Turn a cancelled or failed generation into its exception (for exit codes); else return it."""
    r = outcome.result
    if r.finish_reason is FinishReason.CANCELLED:
        raise Cancelled("cancelled")
    if r.finish_reason is FinishReason.ERROR:
        raise GenerationError(r.error or "generation failed")
    return outcome
