"""A scripted stand-in for an inference backend: fast control-flow tests of the service, the CLI and Qt.

It follows the ``app.core.backend.InferenceEngine`` contract (checks before evaluation raise; cancel and
failures during generation are reported in the result) with words as tokens, so tests can make a run
overflow, fail mid-stream, stall until cancelled, or stream leading whitespace, without a model file.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from app.cli.context import CliContext
from app.core.backend import EngineCapabilities
from app.core.budget import Budget
from app.core.config import AppConfig, Paths
from app.core.errors import ModelError, UsageError
from app.core.models import Registry
from app.core.notes import validate_note
from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult, Truncation, note_sha256
from resources import PRESETS_VERSION, get_task

TEMPLATE_TOKENS = 10


def fake_model(name: str = "fake", context_length: int = 512) -> ModelInfo:
    return ModelInfo(
        path=f"/nonexistent/{name}.gguf",
        file_name=f"{name}.gguf",
        sha256=hashlib.sha256(name.encode()).hexdigest(),
        size_bytes=1,
        architecture="llama",
        name=name,
        context_length=context_length,
        file_type="Q4_K_M",
        parameter_count=None,
        prompt_style="asclepius",
    )


@dataclass
class Script:
    """What the next runs do."""

    answer: str = " The creatinine was 1.4 mg/dL on admission."
    """Streamed word by word (a leading space is what real models emit first)."""
    error_after: int | None = None
    """Report a backend failure after this many pieces (finish reason ``error``)."""
    raise_before: BaseException | None = None
    """Raise this from ``ask`` before generating (after the usual checks)."""
    stall_after: int | None = None
    """After this many pieces, set ``stalled`` and wait for the cancel event (a slow model)."""


@dataclass
class FakeEngine:
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities()
    """Only ``ask`` (a class attribute, so a subclass that adds ``ask_many`` declares it by overriding it)."""
    model: ModelInfo = field(default_factory=fake_model)
    n_ctx: int = 512
    script: Script = field(default_factory=Script)
    requests: list[AskRequest] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)
    closed: bool = False

    def budget(self, note: str, instruction: str, max_tokens: int, prompt_style: str | None = None) -> Budget:
        return Budget(self.n_ctx, TEMPLATE_TOKENS, len(note.split()), len(instruction.split()), max_tokens)

    def close(self) -> None:
        self.closed = True

    def ask(self, request: AskRequest, on_token=None, cancel: threading.Event | None = None) -> RunResult:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        started = datetime.now(UTC)
        if self.closed:
            raise ModelError("the engine was closed")
        note = validate_note(request.note)
        if not request.instruction.strip():
            raise UsageError("the instruction is empty")
        try:
            task = get_task(request.task).name
        except KeyError as exc:
            raise UsageError(str(exc.args[0])) from None
        self.requests.append(request)
        b = self.budget(note, request.instruction, request.sampling.max_tokens)
        truncation = None
        if not b.fits:
            if not request.truncate:
                raise b.refusal()
            keep = b.truncated_note_tokens()
            cut = " ".join(note.split()[:keep])
            truncation = Truncation(len(note), len(cut), b.note_tokens, keep)
        if self.script.raise_before is not None:
            raise self.script.raise_before
        cancel = cancel or threading.Event()
        pieces = [p for p in _pieces(self.script.answer)][: request.sampling.max_tokens]
        text, finish, error, n = "", FinishReason.STOP, None, 0
        for i, piece in enumerate(pieces):
            if self.script.stall_after is not None and i == self.script.stall_after:
                self.stalled.set()
                cancel.wait(10)
            if cancel.is_set():
                finish = FinishReason.CANCELLED
                break
            if self.script.error_after is not None and i == self.script.error_after:
                finish, error = FinishReason.ERROR, "llama.cpp failed: fake decode error"
                break
            text += piece
            n += 1
            if on_token is not None:
                on_token(piece)
        else:
            if len(_pieces(self.script.answer)) > request.sampling.max_tokens:
                finish = FinishReason.LENGTH
        t1 = time.perf_counter()
        return RunResult(
            run_uuid=request.run_uuid, task=task, instruction=request.instruction.strip(), answer=text,
            finish_reason=finish, model_sha256=self.model.sha256, model_file=self.model.file_name,
            model_quant=self.model.file_type, model_architecture=self.model.architecture, engine="fake 0",
            app_version="0", presets_version=PRESETS_VERSION, prompt_style="asclepius@1",
            sampling=request.sampling, n_ctx=self.n_ctx, n_threads=1, note_sha256=note_sha256(request.note),
            note_chars=len(request.note), prompt_tokens=b.prompt_tokens, reused_tokens=0, completion_tokens=n,
            ttft_s=0.001, decode_tokens_per_s=1000.0, total_s=t1 - t0, started_at=started.isoformat(),
            finished_at=datetime.now(UTC).isoformat(), truncation=truncation, grounding=None, error=error,
        )  # fmt: skip


def _pieces(text: str) -> list[str]:
    """Word-sized pieces that keep their leading whitespace, so they concatenate back to ``text``."""
    out: list[str] = []
    word = ""
    for ch in text:
        if ch.isspace() and word.strip():
            out.append(word)
            word = ""
        word += ch
    if word:
        out.append(word)
    return out


class FakeContext(CliContext):
    """A CLI context whose every model is the fake engine's (re-"loaded" on each ``engine()`` call)."""

    def __init__(self, tmp: Path, engine: FakeEngine, config: AppConfig | None = None) -> None:
        paths = Paths(tmp / "data", tmp / "config")
        super().__init__(paths, config or AppConfig(), Registry(paths))
        self.fake = engine
        self.engine_logged: bool | None = None

    def model(self, ref: str | None) -> ModelInfo:
        return self.fake.model

    def engine(self, model: ModelInfo, *, logged: bool = True) -> FakeEngine:  # type: ignore[override]
        self.fake.closed = False  # "loaded" again; the command must close it when done
        self.engine_logged = logged  # whether the command let the engine keep note states on disk
        return self.fake


class InterleavingEngine(FakeEngine):
    """A backend with ``ask_many`` (as the local parallel engine has one): it answers every request, then
    streams the answers interleaved and finishes them in reverse order, so callers must not rely on order."""

    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(ask_many=True)

    def ask_many(self, requests, on_token=None, cancel=None, *, cancels=None, parallel=None, on_start=None,  # type: ignore[no-untyped-def]
                 on_finish=None):  # fmt: skip
        streams: list[list[str]] = []
        results = []
        for i, req in enumerate(requests):
            if on_start is not None:
                on_start(i)
            pieces: list[str] = []
            results.append(self.ask(req, pieces.append, cancel))
            streams.append(pieces)
        for k in range(max(len(s) for s in streams)):
            for i, pieces in enumerate(streams):
                if k < len(pieces) and on_token is not None:
                    on_token(i, pieces[k])
        for i in reversed(range(len(requests))):
            if on_finish is not None:
                on_finish(i, results[i])
        return results


class CheckFirstEngine(InterleavingEngine):
    """Like the local engine's ``ask_many``: every request is checked before any answer starts (a prompt
    over the context, not to be truncated, refuses the whole call)."""

    def ask_many(self, requests, on_token=None, cancel=None, **kw):  # type: ignore[no-untyped-def]
        for r in requests:
            b = self.budget(r.note, r.instruction, r.sampling.max_tokens)
            if not b.fits and not r.truncate:
                raise b.refusal()
        return super().ask_many(requests, on_token, cancel, **kw)
