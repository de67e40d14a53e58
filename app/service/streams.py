"""Interleaved answer pieces put back in request order, for front ends with one text stream."""

from __future__ import annotations

import threading
from collections.abc import Callable


class OrderedStream:
    """Streams request 0's pieces live, buffering later requests' pieces until the earlier ones finish.

    ``piece(i, text)`` and ``done(i)`` may come from a parallel decode in any order; ``sink`` receives
    the text of request 0, then request 1, ... exactly as if they had been answered one at a time.
    ``header(i)``, when given, is written before request ``i``'s first text.
    """

    def __init__(self, n: int, sink: Callable[[str], None], header: Callable[[int], str] | None = None) -> None:
        self._sink = sink
        self._header = header
        self._buf: list[list[str]] = [[] for _ in range(n)]
        self._done = [False] * n
        self._current = 0
        self._opened = -1
        self._lock = threading.Lock()

    def _open(self, i: int) -> None:
        if self._opened < i and self._header is not None:
            self._sink(self._header(i))
        self._opened = max(self._opened, i)

    def piece(self, i: int, text: str) -> None:
        with self._lock:
            if i == self._current:
                self._open(i)
                self._sink(text)
            else:
                self._buf[i].append(text)

    def done(self, i: int) -> None:
        with self._lock:
            self._done[i] = True
            while self._current < len(self._done) and self._done[self._current]:
                self._current += 1
                if self._current < len(self._done):
                    self._flush(self._current)

    def _flush(self, i: int) -> None:
        if self._buf[i] or self._done[i]:
            self._open(i)
        for text in self._buf[i]:
            self._sink(text)
        self._buf[i].clear()
