"""The interface every inference backend offers: what the ask service (and nothing else) calls.

Backends match :class:`InferenceEngine` structurally, with no import of llama_cpp:

* ``LlamaCppEngine`` (app/core/engine.py): one local GGUF model; it also decodes several answers about one
  note together (``ask_many``) and tokenizes prompts for the screens' progress meter;
* ``RemoteEngine`` (app/core/remote.py): an OpenAI-compatible server, safe to call from several threads;
* ``FakeEngine`` (tests/fakes.py): scripted, for fast tests of the service and the front ends.

What a backend offers beyond ``ask``/``budget``/``close`` it *declares* in ``capabilities``
(:class:`EngineCapabilities`); callers read the declaration instead of probing for methods, and the
optional methods each capability promises are spelled out by :class:`ManyAskingEngine` and
:class:`PromptTokenizingEngine`. The service (app/service) is the only caller of ``ask`` and ``ask_many``;
front ends never ask an engine themselves.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.core.budget import Budget
from app.core.errors import UsageError
from app.core.preread import Preread, PrereadProgress
from app.core.types import AskRequest, ModelInfo, RunResult
from resources import PromptStyle, get_style

TokenCallback = Callable[[str], None]
"""Receives each new piece of answer text, in order."""


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What a backend offers beyond the protocol's ``ask``, ``budget`` and ``close``, declared by the backend."""

    ask_many: bool = False
    """It has ``ask_many`` (:class:`ManyAskingEngine`): several answers about one note decoded together, the
    note evaluated once. The ask service uses it for two or more requests, else asks them in turn."""
    prompt_tokens: bool = False
    """It has ``style_for``, ``tokenize_prompt`` and ``evaluated_tokens`` (:class:`PromptTokenizingEngine`):
    the screens show how much of the prompt is processed. A server or a fake has no tokenizer here."""
    preread: bool = False
    """It has ``preread`` (:class:`PrereadingEngine`): the note's prefix evaluated before the question arrives,
    cancellable, so the next question about that note starts from it (the Ask screen reads a pasted note)."""
    concurrency: int | None = None
    """Requests it takes in flight at once from several threads (a remote server); None: its runs are
    serialised (a local model), so a batch groups the work by note instead of sending it in parallel."""


@runtime_checkable
class InferenceEngine(Protocol):
    """One loaded model that answers single-turn questions about a note."""

    model: ModelInfo
    n_ctx: int
    """The context window allocated (prompt + answer must fit in it)."""

    @property
    def capabilities(self) -> EngineCapabilities:
        """What this backend offers beyond this protocol (a class attribute is enough)."""
        ...

    def ask(
        self,
        request: AskRequest,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult: ...

    def budget(self, note: str, instruction: str, max_tokens: int, prompt_style: str | None = None) -> Budget: ...

    def close(self) -> None: ...


class ManyAskingEngine(InferenceEngine, Protocol):
    """A backend declaring ``capabilities.ask_many``."""

    def ask_many(
        self,
        requests: Sequence[AskRequest],
        on_token: Callable[[int, str], None] | None = None,
        cancel: threading.Event | None = None,
        *,
        cancels: Sequence[threading.Event] | None = None,
        parallel: int | None = None,
        on_start: Callable[[int], None] | None = None,
        on_finish: Callable[[int, RunResult], None] | None = None,
    ) -> list[RunResult | None]:
        """Answer requests about one note, up to ``parallel`` at once (None: the backend's choice); each is
        checked first (raising as ``ask`` does). ``on_start(i)``/``on_finish(i, result)`` bracket request
        ``i``; ``cancels[i]`` stops it alone, ``cancel`` all; a request never started gives None."""
        ...


class TokenizedPrompt(Protocol):
    """The token split a prompt-tokenizing engine reports (``app.core.engine.PromptTokens``)."""

    @property
    def prefix(self) -> list[int]:
        """[BOS + head + note]: what several questions about one note share (evaluated once)."""
        ...

    @property
    def all(self) -> list[int]:
        """The whole prompt."""
        ...


class PromptTokenizingEngine(InferenceEngine, Protocol):
    """A backend declaring ``capabilities.prompt_tokens``."""

    @property
    def evaluated_tokens(self) -> int:
        """Tokens whose state is in the context now (polled while a prompt is processed)."""
        ...

    def style_for(self, prompt_style: str | None) -> PromptStyle: ...

    def tokenize_prompt(self, style: PromptStyle, note: str, instruction: str) -> TokenizedPrompt: ...


class PrereadingEngine(InferenceEngine, Protocol):
    """A backend declaring ``capabilities.preread``."""

    def preread(
        self,
        note: str,
        prompt_style: str | None = None,
        *,
        on_progress: PrereadProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> Preread:
        """Evaluate ``note``'s prompt prefix now, reporting ``(done, total)`` tokens, until done or cancelled;
        returns how far it got."""
        ...


class AnyEvent(threading.Event):
    """Set when it is set itself or any of the given events is (a request's own cancel, or everyone's).

    Backends only call ``is_set()`` on a cancel event, so this composes a per-request Stop with Stop all.
    """

    def __init__(self, *events: threading.Event) -> None:
        super().__init__()
        self._events = events

    def is_set(self) -> bool:
        return super().is_set() or any(e.is_set() for e in self._events)


def style_for(prompt_style: str | None, default: str) -> PromptStyle:
    """The prompt style a request asks for (None: the backend's ``default``); an unknown id is a UsageError
    (exit 2), the same for every backend."""
    try:
        return get_style(prompt_style or default)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
