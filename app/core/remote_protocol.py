"""The wire side of the remote backend: settings, URLs, the completions body, SSE and error parsing.

Everything here is pure (no connection is made): ``app.core.remote.RemoteEngine`` sends and receives, this
module says what to send and how to read what comes back. Standard library only.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.core.errors import UsageError
from app.core.types import SamplingParams
from resources import PromptStyle, get_style

ENGINE_NAME = "openai-compatible /v1/completions"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
"""The same default as ``asclepius data`` and ``asclepius judge``."""
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
MAX_ERROR_BODY = 2000
"""Bytes of an error reply kept for the message (a server's error text, never our prompt)."""


def public_url(url: str) -> str:
    """The URL without userinfo, query or fragment (and no trailing slash): what may be printed and stored."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = p.port
    except ValueError:
        port = None
    return urlunsplit((p.scheme, host + (f":{port}" if port else ""), p.path.rstrip("/"), "", ""))


def check_url(url: str) -> str:
    """A usable endpoint base URL, or UsageError saying why (credentials belong in the key variable)."""
    p = urlsplit(url.strip())
    if p.scheme not in ("http", "https") or not p.hostname:
        raise UsageError(f"--endpoint must be an http(s) URL such as http://host:8000/v1, not {public_url(url)!r}")
    if p.username or p.password:
        raise UsageError("--endpoint must not carry a user or password; put the key in the --api-key-env variable")
    if p.query or p.fragment:
        raise UsageError("--endpoint must be a base URL without a query or fragment (e.g. http://host:8000/v1)")
    try:
        p.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"--endpoint has a bad port: {public_url(url)!r}") from None
    return url.strip().rstrip("/")


def render_prompt(style: PromptStyle, note: str, instruction: str) -> str:
    """The prompt text exactly as the local engine tokenizes it (outer whitespace of user text dropped)."""
    return style.render(note.strip(), instruction.strip())


def estimate_tokens(text: str) -> int:
    """One token per 3 UTF-8 bytes: errs on the "does not fit" side (English BPE is ~4 characters a token)."""
    return math.ceil(len(text.encode("utf-8")) / 3)


@dataclass(frozen=True)
class EndpointSettings:
    """Where to send the prompts and how hard to push. Validated up front (UsageError lists every problem)."""

    base_url: str
    served_model: str
    """The model name the server serves (vLLM: ``--served-model-name``; llama.cpp: ``--model_alias``)."""
    prompt_style: str = "asclepius"
    """How prompts are rendered: the served model's prompt style (``asclepius`` for Asclepius models)."""
    api_key_env: str = DEFAULT_KEY_ENV
    """Name of the environment variable holding the key (never the key itself)."""
    concurrency: int = 4
    """Requests in flight at once (a batch's bound)."""
    timeout_s: float = 600.0
    """Per attempt, for connecting and for each read (a stalled stream times out)."""
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 300.0
    context_length: int | None = None
    """The served model's context; None: what the server reports (vLLM's ``max_model_len``), else unknown."""

    def __post_init__(self) -> None:
        problems = []
        try:
            check_url(self.base_url)
        except UsageError as e:
            problems.append(str(e))
        if not self.served_model.strip():
            problems.append("--endpoint-model must name the model the server serves")
        try:
            get_style(self.prompt_style)
        except KeyError as e:
            problems.append(str(e.args[0]))
        if not self.api_key_env.strip() or "=" in self.api_key_env or " " in self.api_key_env:
            problems.append("--api-key-env names an environment variable (not the key itself)")
        if not 1 <= self.concurrency <= 64:
            problems.append(f"--concurrency must be 1..64, not {self.concurrency}")
        if not self.timeout_s > 0:
            problems.append("--endpoint-timeout must be positive")
        if not 1 <= self.max_attempts <= 100:
            problems.append("--endpoint-attempts must be 1..100")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            problems.append("backoff: 0 <= base <= max")
        if self.context_length is not None and self.context_length < 1:
            problems.append("the context length must be positive")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def public_url(self) -> str:
        return public_url(self.base_url)

    def identity(self) -> str:
        """The remote model's id in the log (the ``sha256`` a local model has): endpoint + served name."""
        return hashlib.sha256(f"remote\0{self.public_url}\0{self.served_model}".encode()).hexdigest()


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


def retry_after_s(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), or None."""
    ms = headers.get("retry-after-ms") if headers is not None else None
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after") if headers is not None else None
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def sse_events(resp: http.client.HTTPResponse) -> Iterator[Any]:
    """The JSON payloads of a server-sent-event stream, up to ``data: [DONE]`` (a ``None`` marks it)."""
    data: list[str] = []
    while True:
        raw = resp.readline(1 << 24)
        if not raw:
            return  # closed: the caller sees no [DONE]
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
            continue
        if line or not data:
            continue  # a comment, an event name, an id, or a blank line between events
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            yield {"choices": [], "__done__": True}
            return
        yield json.loads(payload)


def error_message(text: str) -> str:
    try:
        data = json.loads(text)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") if isinstance(err, dict) else err
        text = str(msg if msg else data)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")
