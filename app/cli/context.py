"""What every command needs, built once and passed in (no module-level singletons)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.backend import InferenceEngine
from app.core.config import AppConfig, Paths, database_path, load_config
from app.core.errors import UsageError
from app.core.models import Registry
from app.core.types import ModelInfo

if TYPE_CHECKING:
    from app.service import AskService
    from app.store import EvalLog


@dataclass
class CliContext:
    paths: Paths
    config: AppConfig
    registry: Registry

    @classmethod
    def create(cls, threads: int | None = None) -> CliContext:
        paths = Paths.default()
        try:
            config = load_config(paths)
            if threads is not None:
                config = config.with_engine(n_threads=threads)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        registry = Registry(paths, config.default_model)
        if registry.notice:  # models.json was damaged: it was kept aside, say so once
            print(f"-- notice: {registry.notice}", file=sys.stderr)
        return cls(paths, config, registry)

    def model(self, ref: str | None) -> ModelInfo:
        """``ref``, or the configured default; a default whose file is gone falls back to the demo model with
        a notice on stderr (the saved default is kept for when the file is back)."""
        return self.registry.resolve(ref, on_fallback=lambda msg: print(f"-- notice: {msg}", file=sys.stderr))

    def engine(self, model: ModelInfo, *, logged: bool = True) -> InferenceEngine:
        """The local engine for ``model``; ``logged=False`` (``ask --no-log``) keeps no note state on disk."""
        from app.core.engine import LlamaCppEngine  # loads llama.cpp: only when a command needs a model
        from app.core.kvstate import state_dir

        kept = state_dir(self.paths.data_dir, self.config, logged=logged)
        return LlamaCppEngine(model, self.config.engine, state_dir=kept)

    def open_log(self, path: str | Path | None = None) -> EvalLog:
        """The evaluation log (the configured one unless ``path`` is given); StoreError if unusable."""
        from app.store import EvalLog

        where = database_path(self.paths, self.config, path)
        return EvalLog.open(where, store_note_text=self.config.store_note_text)

    def service(self, engine: InferenceEngine | None, log: EvalLog | None) -> AskService:
        """The ask service over ``engine`` with the user's settings (``engine`` None: requests only)."""
        from app.service import AskService, SenseSource

        senses = SenseSource(self.config.abbreviation_senses)
        if engine is None:

            def no_engine(_model: ModelInfo | None) -> InferenceEngine:
                raise UsageError("no model is loaded")

            return AskService(no_engine, log, self.config.generation, senses=senses)
        return AskService.for_engine(engine, log, self.config.generation, senses=senses)
