"""Background responses, the wire side: submit a request, keep its server-side id, fetch the reply by that id.

With ``--background`` a request goes to the OpenAI Responses API as a *background* response
(``POST /responses`` with ``background: true, store: true``): the server answers at once with the response's
id and status ``queued``, keeps generating whether or not the client is still there, and keeps the result,
which ``GET /responses/{id}`` returns. The runner writes the id to the result log (``submitted``) the moment it
arrives, so a run killed at any moment (SIGKILL included) resumes by *fetching* the replies of every request
an earlier run submitted instead of asking for them again. What a kill can still duplicate is only a request
whose ``POST`` had left and whose id had not come back yet: a window of one round trip, where a
chat-completions request is exposed for its whole generation.

Servers: OpenAI (and Azure OpenAI's v1 API), vLLM with ``VLLM_ENABLE_RESPONSES_API_STORE=1``, LiteLLM and other
gateways that implement stored background responses. llama.cpp's server has no ``/responses``: the first
request then stops the stage with an error that says so. The Responses API has no ``seed``; the request's seed
is not sent in this mode.

This module holds the wire format and the polling schedule; training.endpoint.background sends and polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.endpoint.streaming import MalformedReply

PENDING = frozenset({"queued", "in_progress"})
"""Statuses of a response that is still being generated."""
POLL_FIRST_S = 0.05
POLL_GROWTH = 1.5
"""Polls of one response are spaced geometrically (50 ms, 75 ms, 112 ms ...), so the time spent waiting past
the moment the reply was ready is at most half the time it took, and a long generation is asked about only
a logarithmic number of times."""
POLL_MAX_S = 5.0
"""The longest gap between two polls of one response."""


def body(model: str, prompt: str, max_tokens: int, temperature: float, request_id: str) -> dict[str, Any]:
    """The ``POST /responses`` body: one user message, as the chat body sends, run in the background."""
    return {
        "model": model,
        "input": [{"role": "user", "content": prompt}],
        "max_output_tokens": max_tokens,
        "temperature": temperature,
        "background": True,
        "store": True,  # a background response must be stored to be fetched
        "metadata": {"request_id": request_id},  # the content-derived id, visible in the provider's dashboard
    }


def poll_delays(first: float = POLL_FIRST_S, growth: float = POLL_GROWTH, cap: float = POLL_MAX_S) -> Any:
    """Seconds to wait before each poll of one response, forever (the caller stops at its timeout)."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * growth)


def response_id(obj: Any) -> str:
    """The id of the response a ``POST /responses`` created (raises MalformedReply without one)."""
    rid = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(rid, str) or not rid or "/" in rid or len(rid) > 256:
        raise MalformedReply("the reply to POST /responses carries no response id")
    return rid


@dataclass(frozen=True)
class BackgroundOutcome:
    """A response that is no longer pending."""

    ok: bool
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    reported_model: str | None
    error: str | None = None
    failure: str | None = None
    """Why it is not ok: ``failed`` (the server says failed or cancelled), ``lost`` (the server does not have
    it), ``malformed`` (finished but unreadable), ``timeout`` (still pending at the client's timeout)."""

    @classmethod
    def failed(cls, failure: str, error: str, model: str | None = None) -> BackgroundOutcome:
        return cls(False, None, None, 0, 0, True, model, error, failure)


def status(obj: Any) -> str:
    st = obj.get("status") if isinstance(obj, dict) else None
    if not isinstance(st, str):
        raise MalformedReply("the response object has no status")
    return st


def outcome(obj: dict[str, Any]) -> BackgroundOutcome:
    """Read a finished response: ``completed`` (finish ``stop``), ``incomplete`` (the reason, e.g.
    ``max_output_tokens`` -> ``length``, with the text so far, as a chat reply cut at ``max_tokens``), or
    ``failed`` / ``cancelled`` (not ok, with the server's error)."""
    st = status(obj)
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    if st in ("failed", "cancelled"):
        err = obj.get("error") if isinstance(obj.get("error"), dict) else {}
        detail = err.get("message") or err.get("code") or "no detail"
        return BackgroundOutcome.failed("failed", f"the response {st}: {detail}", model)
    if st not in ("completed", "incomplete"):
        raise MalformedReply(f"unknown response status {st!r}")
    parts = []
    for item in obj.get("output") or []:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue  # reasoning items, tool calls: not the answer's text
        for part in item.get("content") or []:
            if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
    if not parts and st == "completed":
        raise MalformedReply("the completed response has no output text")
    if st == "completed":
        finish = "stop"
    else:
        details = obj.get("incomplete_details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
        finish = "length" if reason == "max_output_tokens" else (reason if isinstance(reason, str) else "incomplete")
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    if usage is None:
        return BackgroundOutcome(True, "".join(parts), finish, 0, 0, False, model)
    return BackgroundOutcome(
        True, "".join(parts), finish, _count(usage, "input_tokens"), _count(usage, "output_tokens"), True, model
    )


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedReply(f"usage.{key} is not a token count: {value!r}")
    return value
