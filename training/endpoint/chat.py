"""One chat-completions request as data, its body, the outcome after all its attempts, and reading a reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core.openai_policy import shorten
from training.endpoint.streaming import MalformedReply


@dataclass(frozen=True)
class ChatRequest:
    """One request as data: its id (content-derived, see training.runner.request_id) and its body."""

    id: str
    prompt: str
    max_tokens: int
    temperature: float
    meta: dict[str, Any] = field(default_factory=dict)
    """Carried into the result record (source ids, task...): results are matched by id, never by prompt."""
    seed: int | None = None


def request_body(model: str, req: ChatRequest) -> dict[str, Any]:
    """The chat-completions body: one user message, as the reference sends."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": req.prompt}],
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
    }
    if req.seed is not None:
        body["seed"] = req.seed
    return body


@dataclass(frozen=True)
class Completion:
    """The outcome of one request after all its attempts."""

    ok: bool
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    error: str | None = None
    usage_reported: bool = True
    """False when a stream carried no usage: completion tokens counted from it, prompt tokens estimated."""
    reported_model: str | None = None
    """The model the server says answered (its reply's ``model``), which may differ from the name asked for."""
    system_fingerprint: str | None = None
    """The server's ``system_fingerprint`` (backend configuration), where it sends one."""
    response_id: str | None = None
    """Background mode: the server's id of the response, when it can still be fetched (a failed request keeps
    it when only fetching failed, so the next run fetches instead of sending again)."""


def parse_reply(resp: Any) -> tuple[str, str | None, int, int]:
    """A chat completion's (text, finish reason, prompt tokens, completion tokens); MalformedReply without text."""
    choices = getattr(resp, "choices", None)
    if not choices:
        raise MalformedReply("no choices in the reply")
    msg = getattr(choices[0], "message", None)
    text = getattr(msg, "content", None)
    if not isinstance(text, str):
        raise MalformedReply("the reply's message has no text")
    usage = getattr(resp, "usage", None)
    pt = int(getattr(usage, "prompt_tokens", 0) or 0)
    ct = int(getattr(usage, "completion_tokens", 0) or 0)
    return text, getattr(choices[0], "finish_reason", None), pt, ct


def served_fields(resp: Any) -> dict[str, str | None]:
    """The reply's ``model`` and ``system_fingerprint`` (strings, else None)."""
    out = {}
    for key, attr in (("reported_model", "model"), ("system_fingerprint", "system_fingerprint")):
        value = getattr(resp, attr, None)
        out[key] = value if isinstance(value, str) and value else None
    return out


def short(e: BaseException) -> str:
    """An exception as one short line for a record (the server's words, never our prompt)."""
    return shorten(str(e))
