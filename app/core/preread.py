"""Reading a note before the question arrives: the note prefix evaluated in chunks, cancellable at once.

``LlamaCppEngine.preread`` evaluates ``[BOS + head + note]`` (the prefix every question about the note
shares) while the user is still choosing a task and typing an instruction; the next ``ask`` on that note then
continues from whatever part is evaluated through the ordinary prefix reuse, so the answer is the one a
cold ask gives. This module holds the chunk loop and what it reports; the engine owns the lock, the caches
and the abort callback.

Chunks end on multiples of ``n_batch`` counted from position 0, which is where a cold ask's own batches end:
a preread stopped after any chunk leaves the context exactly as far as a cold ask's prompt processing would
have got, and the ask evaluates the rest in the very batches it would have used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

PrereadProgress = Callable[[int, int], None]
"""Receives ``(tokens evaluated, tokens in the note prefix)`` after each chunk, never decreasing."""


@dataclass(frozen=True, slots=True)
class Preread:
    """How far a preread got."""

    done: int
    """Tokens of the note prefix whose state is in the context now."""
    total: int
    """Tokens of the note prefix (``[BOS + head + note]``, capped at the context)."""
    source: str
    """Where the first ``done`` tokens came from before any evaluation: ``live`` (already in the context),
    ``cache`` or ``disk`` (a kept note state, as ``LlamaCppEngine.last_prefix_source`` says), or ``eval``."""

    @property
    def complete(self) -> bool:
        return self.done >= self.total


class Waiters:
    """Counts the runs waiting for an engine's lock, so a preread holding it gives way to them at once."""

    def __init__(self) -> None:
        self._n = 0
        self._mutex = threading.Lock()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        with self._mutex:
            self._n += 1
        try:
            yield
        finally:
            with self._mutex:
                self._n -= 1

    def any(self) -> bool:
        return self._n > 0

    @contextmanager
    def turn(self, lock: threading.Lock) -> Iterator[None]:
        """Hold ``lock`` for a run (or close); a preread holding it stops at once and lets this one in."""
        with self.waiting():
            lock.acquire()
        try:
            yield
        finally:
            lock.release()


class GiveWay(threading.Event):
    """A preread's stop signal: its own cancel, or any run waiting for the engine.

    Read by the abort callback between llama.cpp's graph nodes, so an answer (about this note or another)
    never waits for a preread longer than one node's computation.
    """

    def __init__(self, cancel: threading.Event, waiters: Waiters) -> None:
        super().__init__()
        self._cancel = cancel
        self._waiters = waiters

    def is_set(self) -> bool:
        return super().is_set() or self._cancel.is_set() or self._waiters.any()


class Evaluator(Protocol):
    """What the chunk loop needs of ``llama_cpp.Llama``: ``eval`` advances ``n_tokens`` after each batch."""

    n_tokens: int

    def eval(self, tokens: Sequence[int]) -> None: ...


def chunk_ends(start: int, total: int, n_batch: int) -> list[int]:
    """Where each chunk from ``start`` to ``total`` ends: on multiples of ``n_batch`` (a cold ask's batches)."""
    ends = list(range((start // n_batch + 1) * n_batch, total, n_batch))
    return [*ends, total] if start < total else []


def evaluate_chunks(
    llm: Evaluator,
    tokens: Sequence[int],
    n_batch: int,
    cancel: threading.Event,
    on_progress: PrereadProgress | None = None,
) -> int:
    """Evaluate ``tokens[llm.n_tokens:]`` chunk by chunk until done or cancelled; returns ``llm.n_tokens``.

    The caller has made the context hold exactly ``tokens[:llm.n_tokens]`` and armed the abort callback, so
    a cancel stops llama.cpp inside a chunk (it raises RuntimeError; the chunks before it stay evaluated).
    Any other llama.cpp failure is raised.
    """
    total = len(tokens)
    for end in chunk_ends(llm.n_tokens, total, n_batch):
        if cancel.is_set():
            break
        try:
            llm.eval(tokens[llm.n_tokens : end])
        except RuntimeError:
            if cancel.is_set():
                break
            raise
        if on_progress is not None:
            on_progress(llm.n_tokens, total)
    return llm.n_tokens
