"""What every command needs, built once and passed in (no module-level singletons)."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import AppConfig, Paths, load_config
from app.core.engine import LlamaCppEngine
from app.core.errors import UsageError
from app.core.registry import Registry
from app.core.types import ModelInfo


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
        return cls(paths, config, Registry(paths, config.default_model))

    def model(self, ref: str | None) -> ModelInfo:
        return self.registry.resolve(ref)

    def engine(self, model: ModelInfo) -> LlamaCppEngine:
        return LlamaCppEngine(model, self.config.engine)
