"""A remote backend: the same prompts, sent to an OpenAI-compatible server (vLLM, llama.cpp's server, TGI).

``RemoteEngine`` implements ``InferenceEngine`` (app/core/backend.py), so the one ask service drives it
exactly as it drives the local engine: the service starts the run in the log, grounds the answer and
finishes or fails the run. What differs:

* **The prompt is ours.** It is rendered by the prompt style (``resources.prompts``) and sent to
  ``/v1/completions`` as text, not to ``/chat/completions``, so the server applies no chat template and
  the Asclepius prompt reaches the model byte for byte (the server adds BOS, as the local engine does).
  The style's stop strings go with it. Every sampling parameter is sent explicitly (servers have their
  own defaults: llama-cpp-python's server uses top-k 40, top-p 0.95, min-p 0.05 and repeat penalty 1.1).
* **Streaming.** Answers arrive as server-sent events; pieces go to ``on_token`` as they come. Usage is
  asked for (``stream_options.include_usage``); a server that does not report it gets its completion
  tokens counted from the stream and its prompt tokens recorded as 0 (``usage_reported`` false).
* **Failures.** 429 and 5xx replies, refused or dropped connections, timeouts and streams cut before
  ``[DONE]`` are retried with exponential backoff and full jitter (the policy every endpoint client shares,
  ``app.core.openai_policy``); ``Retry-After`` (or ``retry-after-ms``)
  is honoured and pauses *every* request to the endpoint, not only the refused one. A server still failing
  after ``max_attempts`` raises :class:`EndpointError` (exit 8): the service records that run as failed,
  and a batch stops there and resumes later. 401/403/404 raise at once (no retry can help).
  Each attempt has an overall deadline, ``timeout_s`` for the connect and the whole reply
  (``app.core.exchange_deadline``), and a stream past the request's ``max_tokens`` is cut there (finish
  ``length``); a reply without choices is a failed attempt, and a usage report that is not counts is ignored.
* **Privacy.** The key is read from the environment variable the user names and goes only into the
  ``Authorization`` header; it is never stored on an object, printed or logged. URLs are recorded without
  userinfo, query or fragment (``openai_policy.public_url``). No prompt text is ever written to a log message.
* **Context.** No tokenizer of the served model is available here, so the context check is left to the
  server: a 400 that says the prompt is too long becomes ``ContextOverflowError`` (the run is recorded as
  failed, the batch goes on). ``budget()`` estimates (one token per 3 UTF-8 bytes). Truncating a note
  needs the tokenizer and is refused.

Only the standard library is used (``http.client``): nothing to install, nothing that starts a thread at
import, and every connection goes to the one host and port the user named (the CLI's audit hook allows
that address alone).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from app.core.backend import EngineCapabilities, TokenCallback, style_for
from app.core.budget import Budget
from app.core.errors import ContextOverflowError, EndpointError, ModelError, UsageError
from app.core.exchange_deadline import ExchangeDeadline
from app.core.notes import validate_request
from app.core.openai_policy import (
    EndpointSettings,
    StatusVerdict,
    classify_status,
    error_message,
    estimate_tokens,
    past_token_limit,
)
from app.core.remote_protocol import (
    ENGINE_NAME,
    MAX_ERROR_BODY,
    UsageCounts,
    completion_body,
    render_prompt,
    sse_events,
    usage_counts,
)
from app.core.types import AnswerClock, AskRequest, FinishReason, ModelInfo, RunResult
from resources import PromptStyle, get_style

__all__ = ["RemoteEngine"]

log = logging.getLogger(__name__)


class _Retry(Exception):
    """One attempt failed in a way another attempt may fix."""

    def __init__(self, why: str, wait_s: float | None = None) -> None:
        super().__init__(why)
        self.wait_s = wait_s


@dataclass
class _Reply:
    text: list[str] = field(default_factory=list)
    finish: str | None = None
    reported_model: str | None = None
    fingerprint: str | None = None
    usage: UsageCounts | None = None
    """The server's usage report; None when it sent none, or none readable (``usage_counts``)."""
    choices: int = 0
    """Choice objects received: a reply without any (``choices`` null or missing) is no answer."""
    chunks: int = 0
    t_first: float | None = None
    done: bool = False
    max_tokens: int = 1 << 30
    """The request's own limit: a stream past it is cut there (``past_token_limit``)."""
    cut: bool = False
    """The server went past ``max_tokens``: reading stopped, the answer ends as cut at its limit."""


class RemoteEngine:
    """An OpenAI-compatible completions server as an ``InferenceEngine``. Thread-safe: each thread keeps
    its own connection, so a batch can have ``settings.concurrency`` requests in flight."""

    def __init__(self, settings: EndpointSettings, *, probe: bool = True, rng: random.Random | None = None) -> None:
        self.settings = settings
        p = urlsplit(settings.base_url)
        self._https = p.scheme == "https"
        self._host = p.hostname or ""
        self._port = p.port or (443 if self._https else 80)
        self._path = p.path.rstrip("/")
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._rng = rng or random.Random()
        self._closed = False
        self.retries = 0
        """Attempts that failed and were tried again (all requests together)."""
        self.served: list[str] = []
        """Model ids the server listed (``GET /models``)."""
        n_ctx = settings.context_length
        if probe:
            n_ctx = self._probe() if n_ctx is None else n_ctx
        self.n_ctx = n_ctx or 0
        """The served model's context (0: the server did not say; the server then checks each prompt)."""
        self.style = get_style(settings.prompt_style)
        self.model = ModelInfo(
            path=settings.public_url,
            file_name=settings.served_model,
            sha256=settings.identity(),
            size_bytes=0,
            architecture="remote",
            name=settings.served_model,
            context_length=self.n_ctx,
            file_type="remote",
            parameter_count=None,
            prompt_style=settings.prompt_style,
            provenance={"endpoint": settings.public_url, "served_model": settings.served_model},
        )

    @property
    def capabilities(self) -> EngineCapabilities:
        """Up to ``settings.concurrency`` requests in flight (one connection per thread); no tokenizer here."""
        return EngineCapabilities(concurrency=self.settings.concurrency)

    # -- connections -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        key = os.environ.get(self.settings.api_key_env)
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.settings.timeout_s)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _probe(self) -> int | None:
        """GET /models: the server answers, serves the named model; its context if it says (vLLM does)."""
        url = self.settings.public_url
        last = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            conn = self._conn()
            try:
                with ExchangeDeadline(self.settings.timeout_s) as deadline:
                    conn.request("GET", f"{self._path}/models", headers=self._headers())
                    deadline.watch(conn)
                    resp = conn.getresponse()
                    raw = resp.read(1 << 20)
            except (OSError, http.client.HTTPException) as e:
                self._drop_conn()
                last = (
                    f"no answer within {self.settings.timeout_s:g} s"
                    if deadline.expired
                    else f"{type(e).__name__}: {e}"
                )
            else:
                if resp.status in (401, 403):
                    raise EndpointError(
                        f"{url} refused the key (HTTP {resp.status}); check ${self.settings.api_key_env}"
                    )
                if resp.status == 200:
                    return self._read_models(raw)
                if resp.status == 404:  # a server without /models: the first completion will tell
                    return None
                last = f"HTTP {resp.status}"
                if classify_status(resp.status) is not StatusVerdict.RETRY:
                    raise EndpointError(
                        f"{url}/models answered HTTP {resp.status}; is this an OpenAI-compatible /v1 URL?"
                    )
            if attempt < self.settings.max_attempts:
                time.sleep(self.settings.backoff_s(attempt, self._rng))
        raise EndpointError(
            f"cannot reach the inference server at {url} ({last}) after {self.settings.max_attempts} tries"
        )

    def _read_models(self, raw: bytes) -> int | None:
        try:
            data = json.loads(raw)
            cards = [c for c in data.get("data", []) if isinstance(c, dict)]
        except (ValueError, AttributeError):
            raise EndpointError(f"{self.settings.public_url}/models did not answer with a model list") from None
        self.served = [str(c.get("id")) for c in cards]
        name = self.settings.served_model
        if self.served and name not in self.served:
            raise UsageError(f"the server does not serve {name!r}; it serves: {', '.join(self.served[:10])}")
        card = next((c for c in cards if c.get("id") == name), {})
        n = card.get("max_model_len") or (card.get("meta") or {}).get("n_ctx_train")
        return int(n) if isinstance(n, int) and n > 0 else None

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol ------------------------------------------------------------------------------
    def style_for(self, prompt_style: str | None) -> PromptStyle:
        return style_for(prompt_style, self.settings.prompt_style)

    def budget(self, note: str, instruction: str, max_tokens: int, prompt_style: str | None = None) -> Budget:
        """An estimate (no tokenizer of the served model here): one token per 3 bytes."""
        style = self.style_for(prompt_style)
        template = estimate_tokens(style.head + style.middle + style.tail)
        n_ctx = self.n_ctx or 1 << 30
        return Budget(n_ctx, template, estimate_tokens(note.strip()), estimate_tokens(instruction.strip()), max_tokens)

    def prompt_for(self, request: AskRequest) -> str:
        """The exact text sent for ``request`` (checks it first, like ``ask``)."""
        note, instruction, _task, style = self._check(request)
        return render_prompt(style, note, instruction)

    def _check(self, request: AskRequest) -> tuple[str, str, str, PromptStyle]:
        note, instruction, task = validate_request(request)
        if request.truncate:
            raise UsageError("a remote endpoint cannot truncate a note (that needs the model's tokenizer)")
        return note, instruction, task, self.style_for(request.prompt_style)

    def ask(
        self,
        request: AskRequest,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Send the rendered prompt, stream the answer to ``on_token``; see the module doc for failures."""
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        note, instruction, task, style = self._check(request)
        if self._closed:
            raise ModelError("the endpoint connection was closed")
        cancel = cancel or threading.Event()
        prompt = render_prompt(style, note, instruction)
        body = json.dumps(
            completion_body(self.settings.served_model, prompt, request.sampling, style.stop, stream=True)
        ).encode("utf-8")
        reply, error, finish = self._send(body, request.sampling.max_tokens, on_token, cancel)
        t_end = time.perf_counter()
        return self._result(request, task, instruction, style, prompt, reply, finish, error, t0, t_end, started_at)

    # -- one request with retries ------------------------------------------------------------------
    def _sleep(self, seconds: float, cancel: threading.Event) -> bool:
        """Wait, waking for a cancel; False when cancelled."""
        return not cancel.wait(max(0.0, seconds))

    def _send(
        self, body: bytes, max_tokens: int, on_token: TokenCallback | None, cancel: threading.Event
    ) -> tuple[_Reply, str | None, FinishReason | None]:
        cfg = self.settings
        last = "no attempt made"
        for attempt in range(1, cfg.max_attempts + 1):
            with self._lock:
                pause = self._paused_until - time.monotonic()
            if pause > 0 and not self._sleep(pause, cancel):
                return _Reply(), None, FinishReason.CANCELLED
            if cancel.is_set():
                return _Reply(), None, FinishReason.CANCELLED
            reply = _Reply(max_tokens=max_tokens)
            try:
                self._attempt(body, reply, on_token, cancel)
            except _Retry as r:
                last = str(r)
                if reply.chunks and on_token is not None:
                    # Text already streamed cannot be taken back: a retry would repeat it.
                    raise EndpointError(
                        f"the inference server at {cfg.public_url} broke off an answer ({last}); "
                        "the run is recorded as failed"
                    ) from None
                with self._lock:
                    self.retries += 1
                log.info("endpoint attempt %d of %d failed: %s", attempt, cfg.max_attempts, last)
                if attempt < cfg.max_attempts:
                    wait = cfg.backoff_s(attempt, self._rng) if r.wait_s is None else r.wait_s
                    if not self._sleep(wait, cancel):
                        return _Reply(), None, FinishReason.CANCELLED
                continue
            if cancel.is_set() and not reply.done:
                return reply, None, FinishReason.CANCELLED
            return reply, None, None
        raise EndpointError(
            f"the inference server at {cfg.public_url} failed {cfg.max_attempts} times (last: {last}); the answers "
            "already made are in the log: run the same command again to go on"
        )

    def _attempt(self, body: bytes, reply: _Reply, on_token: TokenCallback | None, cancel: threading.Event) -> None:
        """One POST and its whole reply, within the deadline (``settings.timeout_s``)."""
        conn = self._conn()
        with ExchangeDeadline(self.settings.timeout_s) as deadline:
            try:
                self._exchange(conn, deadline, body, reply, on_token, cancel)
            except _Retry:
                if deadline.expired:  # the shut socket's own error says less than this
                    raise _Retry(f"no complete reply within {self.settings.timeout_s:g} s") from None
                raise

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        deadline: ExchangeDeadline,
        body: bytes,
        reply: _Reply,
        on_token: TokenCallback | None,
        cancel: threading.Event,
    ) -> None:
        cfg = self.settings
        try:
            conn.request("POST", f"{self._path}/completions", body=body, headers=self._headers())
            deadline.watch(conn)
            resp = conn.getresponse()
        except TimeoutError as e:
            self._drop_conn()
            raise _Retry(f"timed out after {cfg.timeout_s:g} s") from e
        except (OSError, http.client.HTTPException) as e:
            self._drop_conn()
            raise _Retry(f"connection failed: {type(e).__name__}: {e}") from e
        if resp.status != 200:
            self._status(resp)
        try:
            ctype = resp.getheader("content-type", "")
            if "text/event-stream" in ctype:
                for event in sse_events(resp):
                    self._chunk(event, reply, on_token)
                    if cancel.is_set() or reply.cut:
                        self._drop_conn()  # the server sees the client go and stops generating
                        return
                if not reply.done:
                    raise _Retry(f"the stream ended before [DONE] after {reply.chunks} chunks")
                resp.read()  # the rest of the body (the chunked terminator): the connection can serve the next
            else:  # a server that ignores "stream": one JSON body
                self._chunk(json.loads(resp.read()), reply, on_token)
                reply.done = True
            if not reply.choices:  # `choices: null` or none at all is no answer, not an empty one
                raise _Retry("the server's reply has no choices")
        except _Retry:
            self._drop_conn()
            raise
        except TimeoutError as e:
            self._drop_conn()
            raise _Retry(f"the stream stalled for {cfg.timeout_s:g} s") from e
        except (OSError, http.client.HTTPException, ValueError) as e:
            self._drop_conn()
            raise _Retry(f"the stream broke: {type(e).__name__}: {e}") from e
        if resp.getheader("connection", "").lower() == "close":
            self._drop_conn()

    def _status(self, resp: http.client.HTTPResponse) -> None:
        """A non-200 reply: raise the right error (retry, context overflow, usage, fatal)."""
        cfg = self.settings
        try:
            text = resp.read(MAX_ERROR_BODY).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            text = ""
        self._drop_conn()
        message = error_message(text)
        status = resp.status
        verdict = classify_status(status, message)
        if verdict is StatusVerdict.RETRY:
            ra, _capped = cfg.server_wait_s(resp.headers)
            if ra is not None:
                with self._lock:  # the endpoint asked everyone to wait, not only this request
                    self._paused_until = max(self._paused_until, time.monotonic() + ra)
            raise _Retry(f"HTTP {status}: {message}", wait_s=0.0 if ra is not None else None)
        if verdict is StatusVerdict.FATAL:
            raise EndpointError(
                f"{cfg.public_url} refused the request (HTTP {status}: {message}); check --endpoint, "
                f"--endpoint-model and the key in ${cfg.api_key_env}"
            )
        if verdict is StatusVerdict.TOO_LONG:
            raise ContextOverflowError(f"the server refused the prompt as too long: {message}")
        raise UsageError(f"the server refused the request (HTTP {status}: {message})")

    def _chunk(self, data: Any, reply: _Reply, on_token: TokenCallback | None) -> None:
        if not isinstance(data, dict):
            raise ValueError("a reply chunk is not a JSON object")
        if data.get("__done__"):
            reply.done = True
            return
        if "error" in data and not data.get("choices"):
            raise _Retry(f"the server reported an error mid-stream: {error_message(json.dumps(data))}")
        reply.reported_model = data.get("model") or reply.reported_model
        reply.fingerprint = data.get("system_fingerprint") or reply.fingerprint
        if data.get("usage") is not None:
            reply.usage = usage_counts(data["usage"]) or reply.usage
        choices = data.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise ValueError("a reply's choices is not a list")
        for choice in choices or []:
            if not isinstance(choice, dict):
                raise ValueError("a choice is not a JSON object")
            reply.choices += 1
            piece = choice.get("text")
            if piece is None and isinstance(choice.get("message"), dict):
                piece = choice["message"].get("content")
            if piece:
                if not isinstance(piece, str):
                    raise ValueError("a choice's text is not a string")
                if past_token_limit(reply.chunks + 1, reply.max_tokens):  # the server ignores the limit
                    reply.cut, reply.finish = True, "length"
                    return
                if reply.t_first is None:
                    reply.t_first = time.perf_counter()
                reply.chunks += 1
                reply.text.append(piece)
                if on_token is not None:
                    on_token(piece)
            if choice.get("finish_reason"):
                reply.finish = str(choice["finish_reason"])

    def _result(
        self, request: AskRequest, task: str, instruction: str, style: PromptStyle, prompt: str, reply: _Reply,
        finish: FinishReason | None, error: str | None, t0: float, t_end: float, started_at: datetime,
    ) -> RunResult:  # fmt: skip
        if finish is None:
            finish = FinishReason.LENGTH if reply.finish == "length" else FinishReason.STOP
        usage = reply.usage or UsageCounts(0, 0, 0)
        n_out = usage.completion_tokens or reply.chunks
        return RunResult.of_answer(
            request,
            self.model,
            task=task,
            instruction=instruction,
            answer="".join(reply.text),
            finish_reason=finish,
            prompt_style=style.key,
            clock=AnswerClock(started_at, t0, reply.t_first, t_end, n_out),
            engine=ENGINE_NAME,
            n_ctx=self.n_ctx,
            n_threads=0,
            prompt_tokens=usage.prompt_tokens,
            reused_tokens=usage.cached_tokens,
            error=error,
            endpoint=self.settings.public_url,
            served_model=self.settings.served_model,
            reported_model=reply.reported_model,
            system_fingerprint=reply.fingerprint,
            usage_reported=reply.usage is not None,
        )
