"""The evaluation log as ``asclepius ask`` uses it: runs addressed by their uuid.

``ask`` knows a run by ``AskRequest.run_uuid`` and has no row id, so this thin adapter keeps the mapping.
Opening happens before the model loads, so an unusable log location is reported before any work.
"""

from __future__ import annotations

from app.core.config import AppConfig, Paths, database_path
from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult
from app.store.log import EvalLog


class RunLog:
    def __init__(self, log: EvalLog) -> None:
        self.log = log
        self._ids: dict[str, int] = {}

    def start_run(self, request: AskRequest, model: ModelInfo) -> int:
        rid = self.log.start_run(request, model)
        self._ids[request.run_uuid] = rid
        return rid

    def finish_run(self, result: RunResult) -> None:
        self.log.finish_run(self._ids.pop(result.run_uuid), result)

    def fail_run(self, run_uuid: str, error: str, reason: FinishReason = FinishReason.ERROR) -> None:
        rid = self._ids.pop(run_uuid, None)
        if rid is not None:
            self.log.fail_run(rid, error, reason)

    def close(self) -> None:
        self.log.close()


def open_run_log(paths: Paths, config: AppConfig) -> RunLog:
    return RunLog(EvalLog.open(database_path(paths, config), store_note_text=config.store_note_text))
