"""Background responses, the client side: submit a request, keep its id, poll until it is finished.

``Endpoint.complete`` hands a request here when ``ChatSettings.background`` is set; the wire format and the
polling schedule are training.endpoint.responses. A failed, cancelled, unreadable, timed-out or lost
response is submitted again (a retry); a failing *poll* is not (the response is still there): it is polled
again, and when polling keeps failing the request is recorded as failed *with* its id, so the next run
fetches it instead of sending it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.core.openai_policy import StatusVerdict, classify_status, estimate_tokens
from training.endpoint import responses
from training.endpoint.chat import ChatRequest, Completion, short
from training.endpoint.responses import BackgroundOutcome
from training.endpoint.settings import LOST_IN_A_ROW_FATAL, EndpointFatalError
from training.endpoint.streaming import MalformedReply

if TYPE_CHECKING:
    from training.endpoint.client import Endpoint


class BackgroundRequests:
    """The background half of an open ``Endpoint`` (its client, usage, limiter and retry policy)."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.cfg = ep.cfg
        self._lost_in_a_row = 0
        """Responses of this run in a row the server no longer had when fetched (see LOST_IN_A_ROW_FATAL)."""

    async def complete(
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
        u = self.ep.usage
        body = responses.body(self.cfg.served_model, req.prompt, req.max_tokens, req.temperature, req.id)
        estimate = estimate_tokens(req.prompt) + req.max_tokens
        resumed = rid is not None
        error = "no attempt made"
        attempt = 0
        while True:
            if rid is None:
                if attempt >= self.cfg.max_attempts:
                    return Completion(False, None, None, 0, 0, attempt, error)
                attempt += 1
                await self.ep.start_attempt(attempt, estimate, on_send)
                on_send = None
                try:
                    submit = self.ep.client.post("/responses", body=body, cast_to=object)
                    rid = responses.response_id(await self.ep.bounded(submit))
                except Exception as e:
                    error, wait, retryable = self.ep.failed_attempt(e)
                    if not retryable:
                        return Completion(False, None, None, 0, 0, attempt, error)
                    if attempt < self.cfg.max_attempts:
                        await asyncio.sleep(self.ep.backoff(attempt) if wait is None else wait)
                    continue
                u.submitted += 1
                if on_submitted is not None:
                    on_submitted(rid)
            got = await self._await(rid)
            if isinstance(got, str):  # a poll-level failure: keep the id for the next run
                return Completion(False, None, None, 0, 0, max(attempt, 1), got, response_id=rid)
            if not got.ok:
                self._count_failure(got, resumed)
                error = got.error or "the response failed"
                if resumed:  # an earlier run's response, gone or failed: sending it again is a re-send
                    u.resent_after_interruption += 1
                rid, resumed = None, False
                if 0 < attempt < self.cfg.max_attempts:
                    await asyncio.sleep(self.ep.backoff(attempt))
                continue
            self._lost_in_a_row = 0
            pt, ct, reported = got.prompt_tokens, got.completion_tokens, got.usage_reported
            if not reported:
                pt, ct = estimate_tokens(req.prompt), estimate_tokens(got.text or "")
            if not resumed:  # an earlier run's response took nothing from this run's token bucket
                self.ep.limiter.correct(estimate, pt + ct)
            u.prompt_tokens += pt
            u.completion_tokens += ct
            u.usage_counted += not reported
            u.recovered_after_interruption += resumed
            return Completion(
                True, got.text, got.finish_reason, pt, ct, max(attempt, 1), usage_reported=reported,
                reported_model=got.reported_model, response_id=rid,
            )  # fmt: skip

    def _count_failure(self, got: BackgroundOutcome, resumed: bool) -> None:
        """Count a response that finished without a reply; raises EndpointFatalError when the server keeps
        losing this run's responses (it does not store them)."""
        u = self.ep.usage
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

    async def forget(self, rid: str) -> None:
        """Delete a stored response from the server (``DELETE /responses/{id}``), best effort: a failure is
        counted, never raised (the reply is already on disk; the response only stays stored there)."""
        try:
            await self.ep.bounded(self.ep.client.delete(f"/responses/{rid}", cast_to=object))
        except Exception:
            self.ep.usage.delete_failed += 1
        else:
            self.ep.usage.responses_deleted += 1

    async def _await(self, rid: str) -> BackgroundOutcome | str:
        """Poll ``GET /responses/{rid}`` until it is finished: its Outcome (not ok, with ``failure``
        ``lost`` when the server does not have it (404/410 or another 4xx about the id), ``malformed`` when it
        is finished but unreadable, ``timeout`` when still pending after ``timeout_s``: then it is cancelled,
        best effort); an error string when polling failed ``max_attempts`` times in a row (5xx, 429,
        connection, a body that is not a JSON object), the response being, as far as we know, still there."""
        oa, u = self.ep.openai, self.ep.usage
        deadline = time.monotonic() + self.cfg.timeout_s
        failures = 0
        for delay in responses.poll_delays():
            await asyncio.sleep(delay)
            u.polls += 1
            wait: float | None = None
            try:
                obj = await self.ep.bounded(self.ep.client.get(f"/responses/{rid}", cast_to=object))
            except oa.APIStatusError as e:
                status = e.status_code
                if status in (401, 403):
                    raise EndpointFatalError(
                        f"{self.cfg.public_url} refused to return response {rid} (HTTP {status}); check the "
                        f"key in ${self.cfg.api_key_env}"
                    ) from None
                if 400 <= status < 500 and classify_status(status) is not StatusVerdict.RETRY:
                    gone = f"the server no longer has response {rid} (HTTP {status} when fetched)"
                    return BackgroundOutcome.failed("lost", gone)
                wait = self.cfg.server_wait_s(e.response.headers)[0]
                error = f"HTTP {status}: {short(e)}"
            except (oa.APIConnectionError, oa.APIResponseValidationError, ValueError) as e:
                error = short(e)
            except TimeoutError:  # the GET's own deadline (a reply that trickles): poll again
                error = f"no complete reply within {self.cfg.timeout_s:g} s"
            else:
                if isinstance(obj, dict):
                    try:
                        if responses.status(obj) not in responses.PENDING:
                            return responses.outcome(obj)
                    except MalformedReply as e:  # finished (or broken) for good: fetching again changes nothing
                        return BackgroundOutcome.failed("malformed", f"malformed reply: {e}")
                    failures, error = 0, ""
                else:
                    error = "the reply is not a response object"
            if error:
                failures += 1
                u.poll_errors += 1
                if failures >= self.cfg.max_attempts:
                    return f"fetching response {rid}: {error}"
                await asyncio.sleep(wait if wait is not None else self.ep.backoff(failures))
            if time.monotonic() > deadline:
                with contextlib.suppress(Exception):  # best effort: it is abandoned either way
                    await self.ep.bounded(self.ep.client.post(f"/responses/{rid}/cancel", body={}, cast_to=object))
                late = f"response {rid} not finished after {self.cfg.timeout_s:g} s"
                return BackgroundOutcome.failed("timeout", late)
        raise AssertionError("poll_delays never ends")
