"""The one application object: config, model registry, engines, evaluation log and the task runner.

Windows receive an :class:`AppContext`; nothing reaches for a global. Loading a model and opening the log
run in the background with their state signalled, so the window is interactive at once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.backend import InferenceEngine
from app.core.config import AppConfig, Paths, database_path, default_config, load_config, save_config
from app.core.engine import LlamaCppEngine
from app.core.errors import Cancelled, ModelError
from app.core.kvstate import state_dir
from app.core.models import Registry, human_size
from app.core.types import ModelInfo
from app.qt.workers import Job, Task, TaskRunner, describe_error
from app.service import AskService, SenseSource
from app.store import EvalLog

log = logging.getLogger(__name__)


class State(StrEnum):
    IDLE = "idle"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class AppContext(QObject):
    engine_changed = Signal()
    """The main engine's state or model changed (see ``engine_state``, ``model``)."""
    log_changed = Signal()
    """The evaluation log was opened, reopened or failed (see ``log``, ``log_error``)."""
    runs_changed = Signal()
    """A run, rating or comparison was written: views over the log refresh."""
    models_changed = Signal()
    config_changed = Signal()
    raters_changed = Signal()
    """A rater was added to the log's rater list: the rater choosers re-read it."""
    notice = Signal(str)
    """Something the user must know that is not an error (the default model is missing: the demo is used)."""
    error = Signal(str)
    """A problem no single screen owns (config file, registry): shown in the window."""

    def __init__(
        self, paths: Paths, config: AppConfig | None = None, *, threads: int = 4, engine: InferenceEngine | None = None
    ) -> None:
        """``engine``: a backend already loaded (a test's double, an embedding app's); it is the main engine,
        ready at once, and ``start()`` loads no model. It is closed with the context."""
        super().__init__()
        self.paths = paths
        self.config_error: str | None = None
        if config is None:
            try:
                config = load_config(paths)
            except ValueError as exc:
                # Keep working on defaults (under the policy); the broken file is left alone for the user to fix.
                self.config_error = str(exc)
                config = default_config(paths)
        self.config = config
        self.registry_error: str | None = None
        try:
            self.registry = Registry(paths, config.default_model)
        except ModelError as exc:
            self.registry_error = str(exc)
            self.registry = Registry(
                Paths(paths.data_dir / "recovered", paths.config_dir, paths.shared_models_dir), config.default_model
            )
        self.tasks = TaskRunner(threads, self)
        self.log: EvalLog | None = None
        self.log_error: str | None = None
        self.log_state = State.IDLE
        self.engine: InferenceEngine | None = engine
        self.model: ModelInfo | None = engine.model if engine is not None else None
        self.engine_state = State.READY if engine is not None else State.IDLE
        self.engine_message = "ready" if engine is not None else ""
        self._engine_lock = threading.Lock()
        self._extra: dict[str, LlamaCppEngine] = {}
        self._senses: SenseSource | None = None
        self._closed = False
        self.load_task: Task | None = None
        self.engine_notice = ""
        self.blinded_runs: set[int] = set()
        """Runs of a Compare whose vote is still open: History shows no model name for them. A mirror of
        the log's (``EvalLog.blinded_runs``, read when the log opens), so a restart keeps them hidden."""

    # -- startup ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the log and load the configured model (unless an engine was given), both in the background."""
        self.open_log()
        if self.engine is None:
            self.load_engine()

    @property
    def database_path(self) -> Path:
        return database_path(self.paths, self.config)

    def open_log(self) -> Task:
        path, keep_text = self.database_path, self.config.store_note_text
        self.log_state = State.LOADING

        def work(_job: Job) -> tuple[EvalLog, set[int]]:
            log = EvalLog.open(path, store_note_text=keep_text)
            try:
                return log, log.blinded_runs()
            except BaseException:
                log.close()
                raise

        task = Task(work, "open log")
        task.signals.finished.connect(self._log_opened)
        task.signals.errored.connect(self._log_failed)
        self.log_changed.emit()
        return self.tasks.start(task)

    def _log_opened(self, opened: tuple[EvalLog, set[int]]) -> None:
        new, self.blinded_runs = opened
        old, self.log = self.log, new
        self.log_error, self.log_state = None, State.READY
        if old is not None:
            old.close()
        self.log_changed.emit()
        self.runs_changed.emit()

    def _log_failed(self, exc: BaseException) -> None:
        self.log_error, self.log_state = describe_error(exc), State.FAILED
        self.log_changed.emit()

    def load_engine(self, ref: str | None = None) -> Task:
        """Load ``ref`` (sha256, file or path; None: the configured default, else the demo) in the background."""
        cfg = self.config.engine
        self.engine_state = State.LOADING
        self.engine_message = "loading the model…"
        self.engine_changed.emit()

        registry = self.registry
        kv_dir = self.kv_state_dir()  # read here, on the GUI thread

        def work(job: Job) -> LlamaCppEngine:
            job.message("preparing the model file…")
            # The registry decides the demo fallback (a default that is unset, missing or unregistered); the
            # demo's first start joins ~250 MB of parts, with a percent and Cancel.
            info = registry.resolve(
                ref,
                on_fallback=lambda notice: job.message(f"notice:{notice}"),
                progress=_percent_reporter(job),
                cancel=job.cancel,
            )
            if job.cancel.is_set():
                raise Cancelled("loading the model was cancelled")
            job.message(f"loading {info.display_name}…")
            engine = LlamaCppEngine(info, cfg, state_dir=kv_dir)
            if job.cancel.is_set():
                engine.close()
                raise Cancelled("loading the model was cancelled")
            return engine

        task = Task(work, "load model")
        self.load_task = task
        task.signals.message.connect(self._engine_message)
        task.signals.finished.connect(self._engine_loaded)
        task.signals.errored.connect(self._engine_failed)
        return self.tasks.start(task)

    def _engine_message(self, text: str) -> None:
        if text.startswith("notice:"):
            self.engine_notice = text.removeprefix("notice:")
            self.notice.emit(self.engine_notice)
            return
        self.engine_message = text
        self.engine_changed.emit()

    def cancel_load(self) -> None:
        if self.load_task is not None and not self.load_task.finished_flag.is_set():
            self.load_task.cancel.set()

    def _engine_loaded(self, engine: LlamaCppEngine) -> None:
        if self._closed:
            engine.close()
            return
        with self._engine_lock:
            old, self.engine, self.model = self.engine, engine, engine.model
        self.engine_state, self.engine_message = State.READY, "ready"
        if old is not None:
            # Closing waits for a run still using the old engine: do it off the GUI thread.
            self.tasks.start(Task(lambda job: old.close(), "close old model"))
        self.engine_changed.emit()
        self.models_changed.emit()

    def _engine_failed(self, exc: BaseException) -> None:
        self.engine_state, self.engine_message = State.FAILED, describe_error(exc)
        self.engine_changed.emit()

    # -- engines for other models (compare, re-run) ------------------------------------------------
    def kv_state_dir(self) -> Path | None:
        """Note states kept across restarts (app/core/kvstate.py); None with hash-only note storage."""
        return state_dir(self.paths.data_dir, self.config)

    def engine_for(self, info: ModelInfo) -> LlamaCppEngine:
        """The engine for ``info``, loading it if needed. Call from a worker: loading takes seconds."""
        with self._engine_lock:
            if self.engine is not None and self.engine.model.sha256 == info.sha256:
                return self.engine
            eng = self._extra.get(info.sha256)
            if eng is None:
                # Keep at most one extra model loaded: comparing needs two at once, not more.
                for sha in list(self._extra):
                    self._extra.pop(sha).close()
                eng = LlamaCppEngine(info, self.config.engine, state_dir=self.kv_state_dir())
                self._extra[info.sha256] = eng
            return eng

    def service(self) -> AskService:
        """The ask service over this app's engines, log and settings (build it when asking: they change)."""

        def engine_for(info: ModelInfo | None) -> InferenceEngine:
            if info is None:
                if self.engine is None:
                    raise ModelError(f"the model is not ready: {self.engine_message or 'not loaded'}")
                return self.engine
            return self.engine_for(info)

        why = self.log_error or "the evaluation log is not open yet"
        if self._senses is None or self._senses.folder != self.config.abbreviation_senses:
            self._senses = SenseSource(self.config.abbreviation_senses)  # read once per folder setting
        return AskService(engine_for, self.log, self.config.generation, log_unavailable=why, senses=self._senses)

    # -- config -----------------------------------------------------------------------------------
    def update_config(self, new: AppConfig) -> None:
        """Save the config and apply what changed (engine reload, log reopen) in the background."""
        old, self.config = self.config, new
        save_config(self.paths, new)
        self.config_error = None
        self.registry.default_model = new.default_model
        if new.engine != old.engine or new.default_model != old.default_model:
            with self._engine_lock:
                extra, self._extra = list(self._extra.values()), {}
            for e in extra:
                self.tasks.start(Task(lambda job, e=e: e.close(), "close model"))
            self.load_engine()
        if new.database != old.database:
            self.open_log()
        elif new.store_note_text != old.store_note_text and self.log is not None:
            self.log.store_note_text = new.store_note_text
        self.config_changed.emit()

    def set_default_model(self, sha: str) -> None:
        self.update_config(replace(self.config, default_model=sha))

    def set_rater(self, name: str) -> None:
        """Rate as ``name`` (one of the log's raters; "" for nobody) from now on, kept in the config."""
        if name != self.config.rater:
            self.update_config(replace(self.config, rater=name))

    # -- shutdown ---------------------------------------------------------------------------------
    def close(self) -> None:
        self._closed = True
        self.tasks.shutdown()
        with self._engine_lock:
            engines = [e for e in (self.engine, *self._extra.values()) if e is not None]
            self.engine, self._extra = None, {}
        for e in engines:
            e.close()
        if self.log is not None:
            self.log.close()
            self.log = None


def _percent_reporter(job: Job):
    """Report the demo model's preparation as "N%" of its bytes (one message per percent, not per block)."""
    last = [-1]

    def report(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct != last[0]:
            last[0] = pct
            job.message(f"preparing the demo model: {pct}% of {human_size(total)}")

    return report
