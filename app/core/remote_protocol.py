"""The wire side of the remote backend: the completions body and reading its event stream.

Everything here is pure (no connection is made): ``app.core.remote.RemoteEngine`` sends and receives, this
module says what to send and how to read what comes back. What every OpenAI-compatible client shares (URL
checks, statuses, waits, SSE events, token estimates, the settings) is in ``app.core.openai_policy``.
Standard library only.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from app.core.openai_policy import SseDecoder, is_done
from app.core.types import SamplingParams
from resources import PromptStyle

ENGINE_NAME = "openai-compatible /v1/completions"
MAX_ERROR_BODY = 2000
"""Bytes of an error reply kept for the message (a server's error text, never our prompt)."""


def render_prompt(style: PromptStyle, note: str, instruction: str) -> str:
    """The prompt text exactly as the local engine tokenizes it (outer whitespace of user text dropped)."""
    return style.render(note.strip(), instruction.strip())


def completion_body(model: str, prompt: str, sp: SamplingParams, stop: tuple[str, ...], stream: bool) -> dict[str, Any]:
    """The ``/v1/completions`` body: every sampling parameter explicit, whatever the server's defaults.

    ``top_k`` 0 means "off" to us, llama.cpp and vLLM >= 0.8 (older vLLM wanted -1, which llama-cpp-python's
    server refuses); the repeat penalty goes under both names (llama.cpp ``repeat_penalty``, vLLM
    ``repetition_penalty``).
    """
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": sp.max_tokens,
        "temperature": sp.temperature,
        "top_p": sp.top_p,
        "top_k": sp.top_k,
        "min_p": sp.min_p,
        "repeat_penalty": sp.repeat_penalty,
        "repetition_penalty": sp.repeat_penalty,
        "seed": sp.seed,
        "n": 1,
        "stream": stream,
    }
    if stop:
        body["stop"] = list(stop)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


@dataclass(frozen=True)
class UsageCounts:
    """A reply's ``usage``, read strictly: every count a non-negative integer."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    """vLLM's ``prompt_tokens_details.cached_tokens`` (0 when absent)."""


def usage_counts(usage: Any) -> UsageCounts | None:
    """The counts of a ``usage`` object, or None when it is not one a server means (a count that is not a
    non-negative integer, a detail that is not an object): a bad usage is treated as absent (the stream is
    counted instead), never allowed to end a batch."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or {}
    if not isinstance(details, dict):
        return None
    counts = (usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0, details.get("cached_tokens") or 0)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        return None
    return UsageCounts(*counts)


def sse_events(resp: http.client.HTTPResponse) -> Iterator[Any]:
    """The JSON payloads of a server-sent-event stream, up to ``data: [DONE]`` (``{"__done__": True}`` marks it)."""
    events = SseDecoder()
    while True:
        raw = resp.readline(1 << 24)
        if not raw:
            return  # closed: the caller sees no [DONE]
        payload = events.feed(raw.decode("utf-8").rstrip("\r\n"))
        if payload is None:
            continue
        if is_done(payload):
            yield {"choices": [], "__done__": True}
            return
        yield json.loads(payload)
