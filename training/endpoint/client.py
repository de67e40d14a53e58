"""One client for every OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, TGI, llama.cpp).

Built on the ``openai`` package's ``AsyncOpenAI`` (its connection pool, timeouts, typed errors and response
parsing), plus what it lacks for bulk generation:

- bounded concurrency (the caller runs ``concurrency`` workers; see ``training.runner``);
- a requests-per-minute and tokens-per-minute limiter shared by every worker (training.endpoint.limiter);
- backoff on 429 / 5xx / dropped connections / timeouts / malformed bodies that honours ``Retry-After``
  (``retry-after-ms`` too), by the policy every endpoint client shares (app.core.openai_policy). The client's
  own per-request retries are switched off (``max_retries=0``) and this loop does them instead, because a
  429 means the *endpoint* is over its limit: every worker must pause, not only the one that was refused;
  and because each retry has to be counted for the stage's summary;
- usage accounting per stage (training.endpoint.usage);
- optional streaming (``stream=True``): the reply is read as server-sent events and accepted only once the
  server sends ``[DONE]`` (training.endpoint.streaming), so a cut stream is retried, never taken as a short
  reply;
- optional background responses (``background=True``): training.endpoint.background.

The API key is read from the environment variable the user names (``--api-key-env``) and goes only into the
client's ``Authorization`` header: it is never stored on a settings object, printed, logged or written to a
manifest (``public_url`` strips any credentials from the URL that is recorded, and a URL with credentials
is refused up front).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.core.openai_policy import StatusVerdict, classify_status, estimate_tokens
from training.endpoint.background import BackgroundRequests
from training.endpoint.chat import ChatRequest, Completion, parse_reply, request_body, served_fields, short
from training.endpoint.limiter import RateLimiter
from training.endpoint.settings import NO_KEY, ChatSettings, EndpointFatalError
from training.endpoint.streaming import MalformedReply, StreamErrorEvent, TruncatedStream, http_module, read_stream
from training.endpoint.usage import Usage

T = TypeVar("T")


class Endpoint:
    """An open client. Use ``async with Endpoint(cfg, usage) as ep: await ep.complete(req)``."""

    def __init__(self, cfg: ChatSettings, usage: Usage, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.usage = usage
        self.limiter = RateLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self._rng = rng or random.Random()
        self.client: Any = None
        """The ``AsyncOpenAI`` client while open (None before ``__aenter__`` and after ``__aexit__``)."""
        self._background = BackgroundRequests(self)

    async def __aenter__(self) -> Endpoint:
        import openai
        from openai.types.chat import ChatCompletion

        self.openai = openai
        self._completion_type = ChatCompletion
        http = http_module()
        self._timeout_error, self._transport_error, self._response_type = (
            http.TimeoutException,
            http.TransportError,
            http.Response,
        )
        self._stream_usage = self.cfg.stream_usage
        self.client = openai.AsyncOpenAI(
            api_key=os.environ.get(self.cfg.api_key_env) or NO_KEY,
            base_url=self.cfg.base_url,
            timeout=self.cfg.timeout_s,
            max_retries=0,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def bounded(self, call: Awaitable[T]) -> T:
        """``call`` (one HTTP request and its whole reply) within the deadline ``timeout_s``: the client's
        own timeout bounds the connect and each read, not a reply that trickles forever; TimeoutError."""
        async with asyncio.timeout(self.cfg.timeout_s):
            return await call

    def backoff(self, attempt: int) -> float:
        return self.cfg.backoff_s(attempt, self._rng)

    async def _send(
        self, body: dict[str, Any], prompt: str
    ) -> tuple[str, str | None, int, int, bool, dict[str, str | None]]:
        """One HTTP request: (text, finish_reason, prompt tokens, completion tokens, usage reported, the server's
        own account: ``reported_model`` and ``system_fingerprint``)."""
        if not self.cfg.stream:
            # The client's generic POST (its documented way to send a body as-is) skips the per-request
            # transform of typed parameters, about 30% of the client's CPU per request, measured; the
            # reply is still parsed into the package's ChatCompletion type, errors are still typed.
            resp = await self.client.post("/chat/completions", body=body, cast_to=self._completion_type)
            return (*parse_reply(resp), True, served_fields(resp))
        body = {**body, "stream": True}
        if self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        # The raw response (the status is still checked and errors typed by the client): the package's own
        # stream reader would end quietly on a connection closed before [DONE].
        raw = await self.client.post("/chat/completions", body=body, cast_to=self._response_type, stream=True)
        try:
            reply = await read_stream(raw, body.get("max_tokens"))
        except self._timeout_error:
            raise self.openai.APITimeoutError(request=raw.request) from None
        except self._transport_error as e:
            raise TruncatedStream(f"the connection closed mid-stream ({short(e)})") from None
        served = {"reported_model": reply.model, "system_fingerprint": reply.system_fingerprint}
        if reply.prompt_tokens is None or reply.completion_tokens is None:
            return reply.text, reply.finish_reason, estimate_tokens(prompt), reply.content_chunks, False, served
        return reply.text, reply.finish_reason, reply.prompt_tokens, reply.completion_tokens, True, served

    def failed_attempt(self, e: BaseException) -> tuple[str, float | None, bool]:
        """Count one failed HTTP attempt and classify it: (error, wait, retryable). ``wait`` is 0 when the
        server's Retry-After already paused every worker, None for the usual backoff. Raises
        EndpointFatalError on 401/403/404 (every request would fail the same way); re-raises what it does
        not know."""
        oa, u = self.openai, self.usage
        if isinstance(e, oa.APIStatusError):
            return self._status_failure(e)
        if isinstance(e, (oa.APITimeoutError, TimeoutError)):  # a read's timeout, or the whole request's
            u.timeouts += 1
            return f"no complete reply within {self.cfg.timeout_s:g} s", None, True
        if isinstance(e, oa.APIConnectionError):
            u.connection_errors += 1
            return f"connection error: {short(e)}", None, True
        if isinstance(e, TruncatedStream):
            u.truncated_streams += 1
            return f"truncated stream: {short(e)}", None, True
        if isinstance(e, StreamErrorEvent):
            u.server_errors += 1
            return short(e), None, True
        if isinstance(e, (oa.APIResponseValidationError, MalformedReply, ValueError)):
            u.malformed += 1
            return f"malformed reply: {short(e)}", None, True
        raise e

    def _status_failure(self, e: Any) -> tuple[str, float | None, bool]:
        """``failed_attempt`` for a reply with an HTTP error status (an ``openai.APIStatusError``)."""
        cfg, u = self.cfg, self.usage
        status = e.status_code
        error = f"HTTP {status}: {short(e)}"
        verdict = classify_status(status, str(e))
        if verdict is StatusVerdict.FATAL:
            if cfg.background and status == 404:
                raise EndpointFatalError(
                    f"{cfg.public_url} has no Responses API for background requests, or no model "
                    f"{cfg.served_model!r} ({error}); check --model, or run without --background (llama.cpp's "
                    "server, for one, has no /responses)"
                ) from None
            raise EndpointFatalError(
                f"{cfg.public_url} refused the request ({error}); check --base-url, --model and the "
                f"key in ${cfg.api_key_env}"
            ) from None
        if cfg.background and status == 400 and any(w in str(e) for w in ("background", "store")):
            raise EndpointFatalError(
                f"{cfg.public_url} refuses background responses ({error}); the server must store "
                "responses (vLLM: VLLM_ENABLE_RESPONSES_API_STORE=1), or run without --background"
            ) from None
        if verdict is not StatusVerdict.RETRY:  # refused, or too long: this request fails, the rest go on
            u.client_errors += 1
            return error, None, False
        if status == 429:
            u.rate_limited += 1
        else:
            u.server_errors += 1
        ra, capped = cfg.server_wait_s(e.response.headers)
        if ra is None:
            return error, None, True
        u.retry_after_capped += capped
        self.limiter.pause(ra)  # the endpoint asked everyone to wait, not only this request
        return error, 0.0, True

    async def start_attempt(self, attempt: int, estimate: int, on_send: Callable[[], None] | None) -> None:
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
            return await self._background.complete(req, on_send, on_submitted, response_id)
        u = self.usage
        body = request_body(self.cfg.served_model, req)
        estimate = estimate_tokens(req.prompt) + req.max_tokens
        error = "no attempt made"
        attempt = 0
        while attempt < self.cfg.max_attempts:
            attempt += 1
            await self.start_attempt(attempt, estimate, on_send)
            on_send = None
            with_options = self.cfg.stream and self._stream_usage
            try:
                text, finish, pt, ct, reported, served = await self.bounded(self._send(body, req.prompt))
            except Exception as e:
                if (
                    with_options
                    and isinstance(e, self.openai.APIStatusError)
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
                error, wait, retryable = self.failed_attempt(e)
                if not retryable:
                    return Completion(False, None, None, 0, 0, attempt, error)
            else:
                self.limiter.correct(estimate, pt + ct)
                u.prompt_tokens += pt
                u.completion_tokens += ct
                u.usage_counted += not reported
                return Completion(True, text, finish, pt, ct, attempt, usage_reported=reported, **served)
            if attempt < self.cfg.max_attempts:
                await asyncio.sleep(self.backoff(attempt) if wait is None else wait)
        return Completion(False, None, None, 0, 0, self.cfg.max_attempts, error)

    async def forget(self, rid: str) -> None:
        """Background mode: delete a stored response from the server, best effort (see
        ``BackgroundRequests.forget``)."""
        await self._background.forget(rid)
