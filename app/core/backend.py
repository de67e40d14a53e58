"""The interface every inference backend offers: what the ask service (and nothing else) calls.

``LlamaCppEngine`` (app/core/engine.py) is the local backend. Other backends plug in by matching this
protocol structurally, with no import of llama_cpp: a fake engine in the tests, and later a remote
OpenAI-compatible backend or a multi-sequence parallel engine. The service (app/service) is the only
caller; front ends never call ``ask`` on an engine themselves.

Contract of :meth:`InferenceEngine.ask`:

* Problems found before any evaluation are raised as ``AsclepiusError`` subclasses: ``NoteError``,
  ``UsageError`` (unknown task or prompt style, empty instruction), ``ContextOverflowError`` (the prompt
  does not fit and ``request.truncate`` is false), ``ModelError`` (the engine was closed).
* Once generation starts, a user cancel or a backend failure is *reported* in the result
  (``FinishReason.CANCELLED`` / ``FinishReason.ERROR`` with ``error``), never raised.
* Text pieces go to ``on_token`` as they are generated; their concatenation equals ``result.answer``.
* The result's ``grounding`` is left ``None``: the service computes the grounding report once, for
  every backend alike, and strips the answer's leading whitespace (the reference does the same).
* ``cancel`` is checked during prompt processing too, where the backend can.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from app.core.budget import Budget
from app.core.types import AskRequest, ModelInfo, RunResult

TokenCallback = Callable[[str], None]
"""Receives each new piece of answer text, in order."""


@runtime_checkable
class InferenceEngine(Protocol):
    """One loaded model that answers single-turn questions about a note."""

    model: ModelInfo
    n_ctx: int
    """The context window allocated (prompt + answer must fit in it)."""

    def ask(
        self,
        request: AskRequest,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult: ...

    def budget(self, note: str, instruction: str, max_tokens: int, prompt_style: str | None = None) -> Budget: ...

    def close(self) -> None: ...


class AnyEvent(threading.Event):
    """Set when it is set itself or any of the given events is (a request's own cancel, or everyone's).

    Backends only call ``is_set()`` on a cancel event, so this composes a per-request Stop with Stop all.
    """

    def __init__(self, *events: threading.Event) -> None:
        super().__init__()
        self._events = events

    def is_set(self) -> bool:
        return super().is_set() or any(e.is_set() for e in self._events)
