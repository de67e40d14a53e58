"""Reading a streamed chat completion (server-sent events) strictly: all of it, or an error.

``training.endpoint.client.Endpoint`` asks for ``stream=True`` when ``--stream`` is given. The ``openai``
package's own stream reader ends quietly when the connection closes before ``data: [DONE]``, so a cut stream
would look like a short reply; this reader takes the raw response from the same client and accepts a
completion only once the server has sent ``[DONE]``. A connection cut mid-stream, a clean end without
``[DONE]``, a chunk that is not JSON or an ``error`` event raise, and the caller retries the request from the
start: the text gathered so far is dropped, so partial text never reaches a result record or the next stage.

A server that streams more content pieces than the request's ``max_tokens`` (each piece holds at least one
token) ignores the limit, or streams forever: reading stops there and the reply ends as cut at its limit
(finish reason ``length``), as a local model's would. The whole read is also bounded by the request's
deadline (``Endpoint.bounded``).

Usage comes from the final chunk when the server honours ``stream_options.include_usage`` (OpenAI, vLLM);
otherwise it is counted from the stream (one token per content chunk, as OpenAI-compatible servers send
one token per chunk) with the prompt's tokens estimated, and the completion says so (``usage_reported``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.core.openai_policy import SseDecoder, is_done, past_token_limit


class MalformedReply(ValueError):
    """A 200 reply that is not a chat completion with text (or a stream chunk that is not one)."""


class TruncatedStream(ValueError):
    """The stream ended (connection closed or body finished) before the server's ``data: [DONE]``."""


class StreamErrorEvent(RuntimeError):
    """The server sent an ``error`` object in the middle of the stream (overloaded, internal error)."""


@dataclass
class StreamedReply:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    """Both None when the server sent no usage chunk."""
    content_chunks: int
    model: str | None = None
    """The ``model`` the chunks name (the first one seen), the server's own account of who answered."""
    system_fingerprint: str | None = None


class StreamReader:
    """Feed it the body's lines (``feed``), then ``finish()``; raises on anything but a complete stream."""

    def __init__(self, max_tokens: int | None = None) -> None:
        self.max_tokens = max_tokens
        """The request's limit: content past it ends the reply as cut there (``past_token_limit``)."""
        self._parts: list[str] = []
        self._events = SseDecoder()
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.chunks = 0
        self.done = False
        self.served: dict[str, str] = {}

    def feed(self, line: str) -> bool:
        """One line of the body (without its line ending). Returns True once ``[DONE]`` has arrived."""
        if self.done:
            return True
        payload = self._events.feed(line)
        if payload is not None:
            self._event(payload)
        return self.done

    def end_of_body(self) -> None:
        """The body ended. SSE drops an event with no blank line after it; a bare ``[DONE]`` still counts
        (some servers end with ``data: [DONE]`` and one newline), any other unfinished event is lost."""
        if is_done(self._events.pending()) and not self.done:
            self.done = True

    def _event(self, data: str) -> None:
        if is_done(data):
            self.done = True
            return
        try:
            obj = json.loads(data)
        except ValueError:
            raise MalformedReply(f"a stream chunk is not JSON: {data[:80]!r}") from None
        if not isinstance(obj, dict):
            raise MalformedReply("a stream chunk is not a JSON object")
        if obj.get("error"):
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise StreamErrorEvent(f"error event in the stream: {str(msg)[:200]}")
        choices = obj.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise MalformedReply("a stream chunk's choices is not a list")
        for ch in choices or []:
            if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if content is not None and not isinstance(content, str):
                raise MalformedReply("a stream chunk's content is not text")
            if content:
                if self.max_tokens is not None and past_token_limit(self.chunks + 1, self.max_tokens):
                    self.finish_reason, self.done = "length", True  # the server ignores the limit: stop here
                    return
                self._parts.append(content)
                self.chunks += 1
            if ch.get("finish_reason"):
                self.finish_reason = str(ch["finish_reason"])
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        for key in ("model", "system_fingerprint"):
            value = obj.get(key)
            if isinstance(value, str) and value and key not in self.served:
                self.served[key] = value

    def finish(self) -> StreamedReply:
        """The whole reply; raises TruncatedStream when the server never said ``[DONE]``."""
        if not self.done:
            raise TruncatedStream(
                f"the stream ended before [DONE] after {self.chunks} content chunks (connection closed or body cut)"
            )
        pt = ct = None
        if self.usage is not None:
            try:
                pt, ct = int(self.usage.get("prompt_tokens") or 0), int(self.usage.get("completion_tokens") or 0)
            except (TypeError, ValueError):
                raise MalformedReply("the stream's usage chunk has no token counts") from None
        return StreamedReply(
            "".join(self._parts),
            self.finish_reason,
            pt,
            ct,
            self.chunks,
            self.served.get("model"),
            self.served.get("system_fingerprint"),
        )


def http_module() -> Any:
    """The HTTP library under the installed ``openai`` (its Response class and timeout/transport errors)."""
    try:
        import httpx2 as http
    except ImportError:  # openai releases before the httpx2 switch
        import httpx as http  # type: ignore[no-redef]
    return http


async def read_stream(response: Any, max_tokens: int | None = None) -> StreamedReply:
    """Read a raw streamed response to the end (or to ``[DONE]``, or to ``max_tokens`` pieces) and close it."""
    reader = StreamReader(max_tokens)
    try:
        async for line in response.aiter_lines():
            if reader.feed(line.rstrip("\r")):
                break
        reader.end_of_body()
    finally:
        await response.aclose()
    return reader.finish()
