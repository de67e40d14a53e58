"""``ChatSettings``: the endpoint settings of ``asclepius data`` and ``asclepius judge``.

The fields every endpoint client shares, their checks and the waiting policy are ``EndpointSettings``
(app.core.openai_policy); this class adds what only bulk generation over chat completions and background
responses has (rate limits, streaming, background mode) and the defaults that suit it. The CLI takes its
flag defaults from here (training.data.cli), so each number lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from app.core.errors import UsageError
from app.core.openai_policy import EndpointSettings

NO_KEY = "no-key"
"""Sent when the key variable is unset: local servers (llama.cpp, vLLM) need no key, and the client needs one."""
LOST_IN_A_ROW_FATAL = 8
"""Background mode: this many responses of this run in a row gone (404) when fetched stop the stage: the
server does not keep them, and every request would be generated ``max_attempts`` times for nothing."""


class EndpointFatalError(UsageError):
    """The endpoint refuses every request (authentication, permission, unknown model or URL)."""


@dataclass(frozen=True)
class ChatSettings(EndpointSettings):
    """Where ``data`` and ``judge`` send requests and how hard they push (the key itself is never stored)."""

    concurrency: int = 8
    """Requests in flight at once. Twice a batch's: hosted APIs and vLLM serve many requests together, and a
    stage of thousands of independent requests is bound by round trips, not by one server's slots."""
    requests_per_minute: float | None = None
    """None: no request-rate limit (the endpoint's 429s still slow us down)."""
    tokens_per_minute: float | None = None
    """Prompt + completion tokens per minute (prompt estimated before sending, corrected after)."""
    max_attempts: int = 6
    """Attempts per request in one run; a request still failing is recorded as failed (retried next run). One
    more than a batch's: an unattended run of hours meets more passing outages than a person waiting."""
    backoff_max_s: float = 60.0
    """The longest backoff between two attempts: twice a batch's, since hosted APIs' rate-limit windows are
    a minute long and nobody is waiting on one answer."""
    stream: bool = False
    """Ask for a streamed reply (server-sent events); accepted only when the stream ends with ``[DONE]``."""
    stream_usage: bool = True
    """With ``stream``: ask for a usage chunk (``stream_options.include_usage``). A server that rejects the
    option gets the request again without it; one that ignores it has its usage counted from the stream."""
    background: bool = False
    """Send each request as an OpenAI Responses API *background* response and fetch the reply by its id
    (training.endpoint.background): a run killed at any moment resumes by fetching what it had submitted."""
    keep_responses: bool = False
    """Background mode: leave each stored response on the server once its reply is on disk (by default it is
    deleted then, best effort, so the endpoint keeps no copy longer than needed)."""

    FLAGS: ClassVar[Mapping[str, str]] = {
        "base_url": "--base-url",
        "served_model": "--model",
        "timeout_s": "--timeout",
        "requests_per_minute": "--rpm",
        "tokens_per_minute": "--tpm",
    }
    MAX_CONCURRENCY: ClassVar[int] = 4096
    """Hosted APIs take thousands of requests at once; the bound only catches a typo."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.background and self.stream:
            problems.append("--background and --stream do not go together (a background reply is fetched whole)")
        for name in ("requests_per_minute", "tokens_per_minute"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                problems.append(f"{self.flag(name)} must be positive")
        return problems
