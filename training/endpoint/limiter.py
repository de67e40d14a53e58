"""Pacing shared by every worker of a stage: requests and tokens per minute, and the endpoint-wide pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets for requests and tokens per minute, plus an endpoint-wide pause (Retry-After)."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        now = clock()
        self._req = rpm or 0.0
        self._tok = tpm or 0.0
        self._last = now
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        dt = max(0.0, now - self._last)
        self._last = now
        if self.rpm:
            self._req = min(self.rpm, self._req + dt * self.rpm / 60.0)
        if self.tpm:
            self._tok = min(self.tpm, self._tok + dt * self.tpm / 60.0)

    def wait_time(self, tokens: int) -> float:
        """Seconds until a request of ``tokens`` may go (0 = now). Refills but consumes nothing."""
        now = self.clock()
        self._refill(now)
        wait = max(0.0, self.paused_until - now)
        if self.rpm and self._req < 1:
            wait = max(wait, (1 - self._req) * 60.0 / self.rpm)
        if self.tpm:
            need = min(tokens, self.tpm)  # a request larger than a minute's budget waits for a full bucket
            if self._tok < need:
                wait = max(wait, (need - self._tok) * 60.0 / self.tpm)
        return wait

    async def acquire(self, tokens: int) -> None:
        async with self._lock:  # FIFO: one waiter at a time takes from the buckets
            while (wait := self.wait_time(tokens)) > 0:
                await asyncio.sleep(wait)
            if self.rpm:
                self._req -= 1
            if self.tpm:
                self._tok -= min(tokens, self.tpm)

    def correct(self, estimated: int, actual: int) -> None:
        """After a reply: charge the difference between the real token count and the estimate."""
        if self.tpm:
            self._tok -= actual - min(estimated, self.tpm)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)
