"""One client for every OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, TGI, llama.cpp).

Built on the ``openai`` package's ``AsyncOpenAI`` (its connection pool, timeouts, typed errors and response
parsing), plus what it lacks for bulk generation:

- bounded concurrency (the caller runs ``concurrency`` workers; see ``training.runner``);
- a requests-per-minute and tokens-per-minute limiter shared by every worker (:class:`RateLimiter`);
- backoff on 429 / 5xx / dropped connections / timeouts / malformed bodies that honours ``Retry-After``
  (``retry-after-ms`` too). The client's own per-request retries are switched off (``max_retries=0``) and
  this loop does them instead, because a 429 means the *endpoint* is over its limit: every worker must pause,
  not only the one that was refused; and because each retry has to be counted for the stage's summary;
- usage accounting per stage (:class:`Usage`);
- optional streaming (``stream=True``): the reply is read as server-sent events and accepted only once the
  server sends ``[DONE]`` (training.streaming), so a cut stream is retried, never taken as a short reply.

The API key is read from the environment variable the user names (``--api-key-env``) and goes only into the
client's ``Authorization`` header: it is never stored on a config object, printed, logged or written to a
manifest (:func:`public_url` strips any credentials from the URL that is recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.core.errors import UsageError
from training import background
from training.streaming import MalformedReply, StreamErrorEvent, TruncatedStream, http_module, read_stream

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Transient by HTTP's own definition (and 409, which OpenAI documents as a retryable lock conflict)."""
FATAL_STATUS = frozenset({401, 403, 404})
"""Every request would fail the same way (bad key, no access, wrong URL or model): stop the stage."""
LOST_IN_A_ROW_FATAL = 8
"""Background mode: this many responses of this run in a row gone (404) when fetched stop the stage: the
server does not keep them, and every request would be generated ``max_attempts`` times for nothing."""
NO_KEY = "no-key"
"""Sent when the key variable is unset: local servers (llama.cpp, vLLM) need no key, and the client needs one."""


class EndpointFatalError(UsageError):
    """The endpoint refuses every request (authentication, permission, unknown model or URL)."""


@dataclass(frozen=True)
class EndpointConfig:
    """Where to send requests and how hard to push."""

    base_url: str
    """``http(s)://host[:port]/v1``: the only address these commands connect to."""
    model: str
    """Model name as the endpoint knows it."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the key (the key itself is never stored here)."""
    concurrency: int = 8
    """Requests in flight at once."""
    requests_per_minute: float | None = None
    """None: no request-rate limit (the endpoint's 429s still slow us down)."""
    tokens_per_minute: float | None = None
    """Prompt + completion tokens per minute (prompt estimated before sending, corrected after)."""
    timeout_s: float = 600.0
    """Per attempt. Long generations on a slow server are normal; a hung connection is not."""
    max_attempts: int = 6
    """Attempts per request in one run; a request still failing is recorded as failed (retried next run)."""
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    """Exponential backoff with full jitter: uniform(0, min(max, base * 2**attempt))."""
    retry_after_max_s: float = 300.0
    """A longer Retry-After is capped to this (and the cap is counted in the summary)."""
    stream: bool = False
    """Ask for a streamed reply (server-sent events); accepted only when the stream ends with ``[DONE]``."""
    stream_usage: bool = True
    """With ``stream``: ask for a usage chunk (``stream_options.include_usage``). A server that rejects the
    option gets the request again without it; one that ignores it has its usage counted from the stream."""

    background: bool = False
    """Send each request as an OpenAI Responses API *background* response and fetch the reply by its id
    (training.background): a run killed at any moment resumes by fetching what it had submitted."""
    keep_responses: bool = False
    """Background mode: leave each stored response on the server once its reply is on disk (by default it is
    deleted then, best effort, so the endpoint keeps no copy longer than needed)."""

    def __post_init__(self) -> None:
        problems = []
        if self.background and self.stream:
            problems.append("--background and --stream do not go together (a background reply is fetched whole)")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"--base-url must be an http(s) URL, not {public_url(self.base_url)!r}")
        if not self.model.strip():
            problems.append("--model must name the endpoint's model")
        if not self.api_key_env.strip() or "=" in self.api_key_env:
            problems.append("--api-key-env names an environment variable (not the key itself)")
        if self.concurrency < 1 or self.concurrency > 4096:
            problems.append("--concurrency must be 1 to 4096")
        for name in ("requests_per_minute", "tokens_per_minute"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                problems.append(f"{name} must be positive")
        if not self.timeout_s > 0 or self.max_attempts < 1:
            problems.append("timeout must be positive and max_attempts at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            problems.append("backoff: 0 <= base <= max")
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def public_url(self) -> str:
        return public_url(self.base_url)


def public_url(url: str) -> str:
    """The URL without user:password, query or fragment: what may be printed and recorded."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        netloc = host + (f":{p.port}" if p.port else "")
    except ValueError:
        netloc = host
    return urlunsplit((p.scheme, netloc, p.path.rstrip("/"), "", ""))


def estimate_tokens(text: str) -> int:
    """A conservative token estimate without the endpoint's tokenizer: one token per 3 UTF-8 bytes.

    BPE tokenizers average about 4 characters per token on English clinical text; 3 bytes errs on the
    side of "does not fit", which is the safe side for a context check (and the server's usage report
    corrects the token accounting after each reply).
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


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


@dataclass
class Usage:
    """What one stage cost and what went wrong on the way."""

    requests: int = 0
    """Items attempted in this run."""
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    """HTTP requests sent (first tries + retries)."""
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    connection_errors: int = 0
    timeouts: int = 0
    malformed: int = 0
    client_errors: int = 0
    retry_after_capped: int = 0
    truncated_streams: int = 0
    """Streamed replies that ended before ``[DONE]`` (connection cut or body ended): retried."""
    usage_counted: int = 0
    """Streamed replies without a usage chunk: completion tokens counted from the stream, prompt estimated."""
    resent_after_interruption: int = 0
    """Requests an earlier run sent and got no reply for (it was killed with them in flight): sent again.
    Unavoidable (the reply never arrived) and not duplicates of a received reply, which are never re-sent."""
    submitted: int = 0
    """Background mode: responses the server accepted (``POST /responses`` answered with an id)."""
    recovered_after_interruption: int = 0
    """Background mode: replies fetched by id for responses an earlier run submitted and did not wait for."""
    polls: int = 0
    """Background mode: ``GET /responses/{id}`` requests."""
    poll_errors: int = 0
    """Background mode: polls that failed (5xx, 429, connection, timeout, malformed); polled again, not re-sent."""
    responses_lost: int = 0
    """Background mode: a response the server no longer had (404 when polled): submitted again."""
    responses_deleted: int = 0
    """Background mode: stored responses deleted from the server after their reply was recorded."""
    delete_failed: int = 0
    """Background mode: deletions the server refused or that failed (the response stays stored there)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_tokens": self.total_tokens}

    def line(self) -> str:
        streams = f", {self.truncated_streams} truncated streams" if self.truncated_streams else ""
        resent = (
            f"; {self.resent_after_interruption:,} re-sent after an interruption (an earlier run was stopped "
            "with them in flight, no reply received)"
            if self.resent_after_interruption
            else ""
        )
        counted = f" ({self.usage_counted:,} replies counted from the stream)" if self.usage_counted else ""
        if self.submitted or self.polls or self.recovered_after_interruption:
            resent += (
                f"; background: {self.submitted:,} submitted, {self.polls:,} polls ({self.poll_errors:,} failed), "
                f"{self.recovered_after_interruption:,} replies fetched for an earlier run's requests, "
                f"{self.responses_lost:,} lost by the server and submitted again, {self.responses_deleted:,} "
                f"deleted from the server once recorded ({self.delete_failed:,} deletions failed)"
            )
        return (
            f"{self.succeeded:,} done, {self.failed:,} failed of {self.requests:,}; {self.attempts:,} HTTP requests "
            f"({self.retries:,} retries: {self.rate_limited} rate-limited, {self.server_errors} server errors, "
            f"{self.connection_errors} connection errors, {self.timeouts} timeouts, {self.malformed} malformed"
            f"{streams}){resent}; tokens {self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion"
            f"{counted}; {self.elapsed_s:.1f} s"
        )


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


def retry_after_s(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


class Endpoint:
    """An open client. Use ``async with Endpoint(cfg, usage) as ep: await ep.complete(req)``."""

    def __init__(self, cfg: EndpointConfig, usage: Usage, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.usage = usage
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self._rng = rng or random.Random()
        self._client: Any = None
        self._lost_in_a_row = 0

    async def __aenter__(self) -> Endpoint:
        import openai
        from openai.types.chat import ChatCompletion

        self._openai = openai
        self._completion_type = ChatCompletion
        http = http_module()
        self._timeout_error, self._transport_error, self._response_type = (
            http.TimeoutException,
            http.TransportError,
            http.Response,
        )
        self._stream_usage = self.cfg.stream_usage
        self._client = openai.AsyncOpenAI(
            api_key=os.environ.get(self.cfg.api_key_env) or NO_KEY,
            base_url=self.cfg.base_url,
            timeout=self.cfg.timeout_s,
            max_retries=0,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _backoff(self, attempt: int) -> float:
        return self._rng.uniform(0, min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt))

    async def _send(
        self, body: dict[str, Any], prompt: str
    ) -> tuple[str, str | None, int, int, bool, dict[str, str | None]]:
        """One HTTP request: (text, finish_reason, prompt tokens, completion tokens, usage reported, the server's
        own account: ``reported_model`` and ``system_fingerprint``)."""
        if not self.cfg.stream:
            # The client's generic POST (its documented way to send a body as-is) skips the per-request
            # transform of typed parameters, about 30% of the client's CPU per request, measured; the
            # reply is still parsed into the package's ChatCompletion type, errors are still typed.
            resp = await self._client.post("/chat/completions", body=body, cast_to=self._completion_type)
            return (*_parse(resp), True, _served(resp))
        body = {**body, "stream": True}
        if self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        # The raw response (the status is still checked and errors typed by the client): the package's own
        # stream reader would end quietly on a connection closed before [DONE].
        raw = await self._client.post("/chat/completions", body=body, cast_to=self._response_type, stream=True)
        try:
            reply = await read_stream(raw)
        except self._timeout_error:
            raise self._openai.APITimeoutError(request=raw.request) from None
        except self._transport_error as e:
            raise TruncatedStream(f"the connection closed mid-stream ({_short(e)})") from None
        served = {"reported_model": reply.model, "system_fingerprint": reply.system_fingerprint}
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            return reply.text, reply.finish_reason, estimate_tokens(prompt), reply.content_chunks, False, served
        return reply.text, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens, True, served

    def _failed_attempt(self, e: BaseException) -> tuple[str, float | None, bool]:
        """Count one failed HTTP attempt and classify it: (error, wait, retryable). ``wait`` is 0 when the
        server's Retry-After already paused every worker, None for the usual backoff. Raises
        EndpointFatalError on 401/403/404 (every request would fail the same way); re-raises what it does
        not know."""
        oa, u = self._openai, self.usage
        if isinstance(e, oa.APIStatusError):
            status = e.status_code
            error = f"HTTP {status}: {_short(e)}"
            if status in FATAL_STATUS:
                if self.cfg.background and status == 404:
                    raise EndpointFatalError(
                        f"{self.cfg.public_url} has no Responses API for background requests, or no model "
                        f"{self.cfg.model!r} ({error}); check --model, or run without --background (llama.cpp's "
                        "server, for one, has no /responses)"
                    ) from None
                raise EndpointFatalError(
                    f"{self.cfg.public_url} refused the request ({error}); check --base-url, --model and the "
                    f"key in ${self.cfg.api_key_env}"
                ) from None
            if self.cfg.background and status == 400 and any(w in str(e) for w in ("background", "store")):
                raise EndpointFatalError(
                    f"{self.cfg.public_url} refuses background responses ({error}); the server must store "
                    "responses (vLLM: VLLM_ENABLE_RESPONSES_API_STORE=1), or run without --background"
                ) from None
            if status not in RETRYABLE_STATUS and status < 500:
                u.client_errors += 1
                return error, None, False
            ra = retry_after_s(e.response.headers)
            if status == 429:
                u.rate_limited += 1
            else:
                u.server_errors += 1
            if ra is None:
                return error, None, True
            if ra > self.cfg.retry_after_max_s:
                u.retry_after_capped += 1
                ra = self.cfg.retry_after_max_s
            self.limiter.pause(ra)  # the endpoint asked everyone to wait, not only this request
            return error, 0.0, True
        if isinstance(e, oa.APITimeoutError):
            u.timeouts += 1
            return f"timed out after {self.cfg.timeout_s:g} s", None, True
        if isinstance(e, oa.APIConnectionError):
            u.connection_errors += 1
            return f"connection error: {_short(e)}", None, True
        if isinstance(e, TruncatedStream):
            u.truncated_streams += 1
            return f"truncated stream: {_short(e)}", None, True
        if isinstance(e, StreamErrorEvent):
            u.server_errors += 1
            return _short(e), None, True
        if isinstance(e, (oa.APIResponseValidationError, MalformedReply, ValueError)):
            u.malformed += 1
            return f"malformed reply: {_short(e)}", None, True
        raise e

    async def _start_attempt(self, attempt: int, estimate: int, on_send: Callable[[], None] | None) -> None:
        """Count attempt number ``attempt`` (a retry after the first), wait for the rate limiter, then call
        ``on_send`` (the caller passes it for the first HTTP request only)."""
        if attempt > 1:
            self.usage.retries += 1
        await self.limiter.acquire(estimate)
        if on_send is not None:
            on_send()
        self.usage.attempts += 1

    async def complete(
        self,
        req: ChatRequest,
        on_send: Callable[[], None] | None = None,
        on_submitted: Callable[[str], None] | None = None,
        response_id: str | None = None,
    ) -> Completion:
        """Send ``req`` until it succeeds, fails for good, or runs out of attempts. Never raises for a
        request-level problem (the error is in the Completion); raises EndpointFatalError on 401/403/404.

        ``on_send`` is called once, just before the first HTTP request leaves (after the rate limiter), so
        the caller can record that the request is on its way (training.runner marks it ``sent``).
        Background mode only: ``on_submitted(id)`` is called the moment the server has accepted the request
        and named its response (training.runner writes it down), and ``response_id`` (an earlier run's) makes
        this call fetch that response instead of sending the request."""
        if self.cfg.background:
            return await self._complete_background(req, on_send, on_submitted, response_id)
        u = self.usage
        body = request_body(self.cfg.model, req)
        estimate = estimate_tokens(req.prompt) + req.max_tokens
        error = "no attempt made"
        attempt = 0
        while attempt < self.cfg.max_attempts:
            attempt += 1
            await self._start_attempt(attempt, estimate, on_send)
            on_send = None
            with_options = self.cfg.stream and self._stream_usage
            try:
                text, finish, pt, ct, reported, served = await self._send(body, req.prompt)
            except Exception as e:
                if (
                    with_options
                    and isinstance(e, self._openai.APIStatusError)
                    and e.status_code in (400, 422)
                    and "stream_options" in str(e)
                ):
                    # This server rejects the option: ask without it from now on. The attempt does not count
                    # (the same request goes again at once, without the option).
                    self._stream_usage = False
                    if attempt > 1:
                        u.retries -= 1
                    attempt -= 1
                    continue
                error, wait, retryable = self._failed_attempt(e)
                if not retryable:
                    return Completion(False, None, None, 0, 0, attempt, error)
            else:
                self.limiter.correct(estimate, pt + ct)
                u.prompt_tokens += pt
                u.completion_tokens += ct
                u.usage_counted += not reported
                return Completion(True, text, finish, pt, ct, attempt, usage_reported=reported, **served)
            if attempt < self.cfg.max_attempts:
                await asyncio.sleep(self._backoff(attempt) if wait is None else wait)
        return Completion(False, None, None, 0, 0, self.cfg.max_attempts, error)

    async def _complete_background(
        self,
        req: ChatRequest,
        on_send: Callable[[], None] | None,
        on_submitted: Callable[[str], None] | None,
        rid: str | None,
    ) -> Completion:
        """Background mode: submit (unless ``rid`` names an earlier run's response), then poll until the
        response is finished. A failed, cancelled, unreadable, timed-out or lost response is submitted again
        (a retry; for an earlier run's response, a re-send after an interruption); a failing *poll* is not (the
        response is still there): it is polled again, and when polling keeps failing the request is recorded as
        failed *with* its id, so the next run fetches it."""
        u = self.usage
        body = background.body(self.cfg.model, req.prompt, req.max_tokens, req.temperature, req.id)
        estimate = estimate_tokens(req.prompt) + req.max_tokens
        resumed = rid is not None
        error = "no attempt made"
        attempt = 0
        while True:
            if rid is None:
                if attempt >= self.cfg.max_attempts:
                    return Completion(False, None, None, 0, 0, attempt, error)
                attempt += 1
                await self._start_attempt(attempt, estimate, on_send)
                on_send = None
                try:
                    rid = background.response_id(await self._client.post("/responses", body=body, cast_to=object))
                except Exception as e:
                    error, wait, retryable = self._failed_attempt(e)
                    if not retryable:
                        return Completion(False, None, None, 0, 0, attempt, error)
                    if attempt < self.cfg.max_attempts:
                        await asyncio.sleep(self._backoff(attempt) if wait is None else wait)
                    continue
                u.submitted += 1
                if on_submitted is not None:
                    on_submitted(rid)
            got = await self._await_response(rid)
            if isinstance(got, str):  # a poll-level failure: keep the id for the next run
                return Completion(False, None, None, 0, 0, max(attempt, 1), got, response_id=rid)
            if not got.ok:
                if got.failure == "lost":
                    u.responses_lost += 1
                    if not resumed:  # one of ours, submitted moments ago: a server that keeps nothing?
                        self._lost_in_a_row += 1
                        if self._lost_in_a_row >= LOST_IN_A_ROW_FATAL:
                            raise EndpointFatalError(
                                f"{self.cfg.public_url} did not keep the last {self._lost_in_a_row} responses it "
                                "accepted (404 when fetched moments later): it does not store background responses "
                                "(vLLM: VLLM_ENABLE_RESPONSES_API_STORE=1; several replicas need a shared store); "
                                "run without --background"
                            )
                elif got.failure == "timeout":
                    u.timeouts += 1
                elif got.failure == "malformed":
                    u.malformed += 1
                else:
                    u.server_errors += 1
                error = got.error or "the response failed"
                if resumed:  # an earlier run's response, gone or failed: sending it again is a re-send
                    u.resent_after_interruption += 1
                rid, resumed = None, False
                if 0 < attempt < self.cfg.max_attempts:
                    await asyncio.sleep(self._backoff(attempt))
                continue
            self._lost_in_a_row = 0
            pt, ct, reported = got.prompt_tokens, got.completion_tokens, got.usage_reported
            if not reported:
                pt, ct = estimate_tokens(req.prompt), estimate_tokens(got.text or "")
            if not resumed:  # an earlier run's response took nothing from this run's token bucket
                self.limiter.correct(estimate, pt + ct)
            u.prompt_tokens += pt
            u.completion_tokens += ct
            u.usage_counted += not reported
            u.recovered_after_interruption += resumed
            return Completion(
                True, got.text, got.finish_reason, pt, ct, max(attempt, 1), usage_reported=reported,
                reported_model=got.reported_model, response_id=rid,
            )  # fmt: skip

    async def forget(self, rid: str) -> None:
        """Delete a stored response from the server (``DELETE /responses/{id}``), best effort: a failure is
        counted, never raised (the reply is already on disk; the response only stays stored there)."""
        try:
            await self._client.delete(f"/responses/{rid}", cast_to=object)
        except Exception:
            self.usage.delete_failed += 1
        else:
            self.usage.responses_deleted += 1

    async def _await_response(self, rid: str) -> background.Outcome | str:
        """Poll ``GET /responses/{rid}`` until it is finished: its Outcome (not ok, with ``failure``
        ``lost`` when the server does not have it (404/410 or another 4xx about the id), ``malformed`` when it
        is finished but unreadable, ``timeout`` when still pending after ``timeout_s``: then it is cancelled,
        best effort); an error string when polling failed ``max_attempts`` times in a row (5xx, 429,
        connection, a body that is not a JSON object), the response being, as far as we know, still there."""
        oa, u = self._openai, self.usage
        deadline = time.monotonic() + self.cfg.timeout_s
        failures = 0
        for delay in background.poll_delays():
            await asyncio.sleep(delay)
            u.polls += 1
            wait: float | None = None
            try:
                obj = await self._client.get(f"/responses/{rid}", cast_to=object)
            except oa.APIStatusError as e:
                status = e.status_code
                if status in (401, 403):
                    raise EndpointFatalError(
                        f"{self.cfg.public_url} refused to return response {rid} (HTTP {status}); check the "
                        f"key in ${self.cfg.api_key_env}"
                    ) from None
                if 400 <= status < 500 and status not in RETRYABLE_STATUS:
                    gone = f"the server no longer has response {rid} (HTTP {status} when fetched)"
                    return background.Outcome.failed("lost", gone)
                wait = retry_after_s(e.response.headers)
                error = f"HTTP {status}: {_short(e)}"
            except (oa.APIConnectionError, oa.APIResponseValidationError, ValueError) as e:
                error = _short(e)
            else:
                if isinstance(obj, dict):
                    try:
                        if background.status(obj) not in background.PENDING:
                            return background.outcome(obj)
                    except MalformedReply as e:  # finished (or broken) for good: fetching again changes nothing
                        return background.Outcome.failed("malformed", f"malformed reply: {e}")
                    failures, error = 0, ""
                else:
                    error = "the reply is not a response object"
            if error:
                failures += 1
                u.poll_errors += 1
                if failures >= self.cfg.max_attempts:
                    return f"fetching response {rid}: {error}"
                await asyncio.sleep(
                    min(wait, self.cfg.retry_after_max_s) if wait is not None else self._backoff(failures)
                )
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):  # best effort: it is abandoned either way
                    await self._client.post(f"/responses/{rid}/cancel", body={}, cast_to=object)
                late = f"response {rid} not finished after {self.cfg.timeout_s:g} s"
                return background.Outcome.failed("timeout", late)
        raise AssertionError("poll_delays never ends")


def _parse(resp: Any) -> tuple[str, str | None, int, int]:
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


def _served(resp: Any) -> dict[str, str | None]:
    """The reply's ``model`` and ``system_fingerprint`` (strings, else None)."""
    out = {}
    for key, attr in (("reported_model", "model"), ("system_fingerprint", "system_fingerprint")):
        value = getattr(resp, attr, None)
        out[key] = value if isinstance(value, str) and value else None
    return out


def _short(e: BaseException) -> str:
    s = str(e).replace("\n", " ")
    return s[:300] + ("..." if len(s) > 300 else "")
