"""A small real HTTP/1.1 server on 127.0.0.1 speaking the chat-completions API, with injected faults.

Used by the fault tests and by tests/bench/bench_data_client.py. It runs its own asyncio loop in a
thread, binds a free loopback port, and records every request it receives (by prompt) so tests can count
duplicates. ``plan(prompt, seen)`` picks what the n-th arrival of a prompt gets:

``ok``, ``429`` (Retry-After), ``500``, ``drop`` (close without a reply), ``timeout`` (reply after the
client gave up), ``malformed`` (200 with a body that is not JSON), ``truncated`` (Content-Length larger
than the body sent, then close), ``empty`` (200 with no choices), ``400`` (a client error), ``401`` (a refused
key: the client stops the stage).

A request with ``"stream": true`` gets server-sent events (chunked, one word per chunk, ``data: [DONE]``
last; a usage chunk when ``stream_options.include_usage`` is set and ``stream_usage``), and these faults:
``stream_cut`` (half the chunks, then the connection closes mid-body), ``stream_no_done`` (half the chunks,
then the body ends cleanly without ``[DONE]``), ``stream_malformed`` (a chunk that is not JSON mid-stream),
``stream_error`` (an ``error`` event mid-stream), ``stream_forever`` (content chunks without end, never
``[DONE]``, whatever ``max_tokens`` asked) and ``stream_trickle`` (a keep-alive comment every 0.2 s, never
an answer). ``trickle`` (no stream) starts a 200 reply and sends one byte of its body every 0.2 s, forever.
``reject_stream_options`` answers 400 to any request that
carries ``stream_options`` (as servers that do not know the field do).

It also serves OpenAI's Responses API in background mode, as OpenAI and vLLM do: ``POST /v1/responses`` with
``background: true`` answers at once with a ``queued`` response (its id), the response is generated in the
server's own task (``delay_s``, whether or not the client is still connected) and kept;
``GET /v1/responses/{id}`` returns it, 404 for an id it does not have; ``POST /v1/responses/{id}/cancel``
cancels it; ``DELETE /v1/responses/{id}`` forgets it. A POST counts in ``seen`` like a chat request (so
duplicates are counted the same way) and gets the same ``plan`` faults, plus ``bg_failed`` (status
``failed``), ``bg_lost`` (accepted, then 404 when fetched), ``bg_incomplete`` (``max_output_tokens``, half
the text), ``bg_refusal`` (completed with a refusal and no text) and ``bg_hang`` (in progress for
``hang_s``). ``poll_plan(prompt, n)`` picks what the n-th GET of a response gets: ``ok``, ``500``, ``429``,
``drop`` or ``malformed``. ``responses_enabled=False`` answers 404 to every ``/responses`` path (as
llama.cpp's server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

Plan = Callable[[str, int], str]
Responder = Callable[[str], str]


def _ok_plan(prompt: str, seen: int) -> str:
    return "ok"


def _default_responder(prompt: str) -> str:
    return "reply " + hashlib.sha256(prompt.encode()).hexdigest()[:12]


FINGERPRINT = "fp_fault_server"
"""The ``system_fingerprint`` of every successful reply (what real servers send to name their configuration)."""


class FaultServer:
    def __init__(
        self,
        plan: Plan = _ok_plan,
        responder: Responder = _default_responder,
        delay_s: float = 0.0,
        retry_after: str = "1",
        hang_s: float = 30.0,
        stream_usage: bool = True,
        reject_stream_options: bool = False,
        poll_plan: Plan = _ok_plan,
        responses_enabled: bool = True,
    ) -> None:
        self.poll_plan, self.responses_enabled = poll_plan, responses_enabled
        self.responses: dict[str, dict[str, Any]] = {}
        """Background responses by id (what GET returns)."""
        self.polls: Counter[str] = Counter()
        """GETs per response id."""
        self.prompt_of: dict[str, str] = {}
        """The prompt of every response id handed out."""
        self.cancelled: set[str] = set()
        self.deleted: set[str] = set()
        self.refused = 0
        """Requests to ``/responses`` answered 404 because ``responses_enabled`` is False."""
        self._ids = itertools.count(1)
        self._jobs: set[asyncio.Task[None]] = set()
        self.plan, self.responder, self.delay_s = plan, responder, delay_s
        self.retry_after, self.hang_s = retry_after, hang_s
        self.stream_usage, self.reject_stream_options = stream_usage, reject_stream_options
        self.streamed: Counter[str] = Counter()
        """Prompts asked for with ``stream: true``."""
        self.seen: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        """Prompts answered 200 OK (a well-formed reply was written)."""
        self.max_in_flight = 0
        self.authorization: Counter[str] = Counter()
        self.arrivals: list[tuple[float, str]] = []
        """(loop time, prompt) of every request, in arrival order."""
        self._in_flight = 0
        self._lock = threading.Lock()
        self._conns: set[asyncio.Task[None]] = set()
        self._closed_one = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fault-server", daemon=True)
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no client connection is open (every request that reached the server is handled and
        counted: after a client is killed, its connections close once the server has read them)."""
        with self._closed_one:
            return self._closed_one.wait_for(lambda: not self._conns, timeout_s)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for t in [*self._conns, *self._jobs]:
                t.cancel()
            await asyncio.gather(*self._conns, *self._jobs, return_exceptions=True)

    # -- one connection ----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._conns.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.authorization[headers.get("authorization", "")] += 1
                method, _, rest = lines[0].partition(" ")
                path = rest.partition(" ")[0].split("?")[0].rstrip("/")
                if "/responses" in path:
                    keep = await self._responses(method, path, body, writer)
                else:
                    keep = await self._respond(body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            with self._lock:
                self._conns.discard(task)
                self._closed_one.notify_all()
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        try:
            req = json.loads(body)
            prompt = req["messages"][-1]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            self._send(writer, 400, {"error": {"message": "bad request body"}})
            return True
        n = self._arrive(prompt)
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        fault = self.plan(prompt, n)
        self.faults[fault] += 1
        if req.get("stream"):
            with self._lock:
                self.streamed[prompt] += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return await self._fault(fault, prompt, req, writer)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _fault(self, fault: str, prompt: str, req: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        if req.get("stream") and "stream_options" in req and self.reject_stream_options:
            self._send(writer, 400, {"error": {"message": "Unrecognized request argument supplied: stream_options"}})
            await writer.drain()
            return True
        if req.get("stream") and (fault == "ok" or fault.startswith("stream_")):
            return await self._stream(fault, prompt, req, writer)
        if fault == "ok":
            text = self.responder(prompt)
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": req.get("model", "test"),
                "system_fingerprint": FINGERPRINT,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": len(prompt.split()) + len(text.split()),
                },
            }
            self._send(writer, 200, payload)
            await writer.drain()
            with self._lock:
                self.completed[prompt] += 1
            return True
        if fault == "429":
            self._send(writer, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        elif fault == "500":
            self._send(writer, 500, {"error": {"message": "internal error"}})
        elif fault == "400":
            self._send(writer, 400, {"error": {"message": "context length exceeded"}})
        elif fault == "401":
            self._send(writer, 401, {"error": {"message": "invalid api key"}})
        elif fault == "drop":
            return False
        elif fault == "trickle":
            return await self._endless(writer, "application/json", b" ", 0.2)
        elif fault == "timeout":
            await asyncio.sleep(self.hang_s)
            return False
        elif fault == "malformed":
            self._raw(writer, 200, b'{"choices": [ this is not json', "application/json")
        elif fault == "empty":
            self._send(writer, 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
        elif fault == "truncated":
            data = json.dumps({"id": "x", "choices": [{"message": {"content": "cut"}}]}).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data) + 500}\r\n\r\n"
            writer.write(head.encode() + data[: len(data) // 2])
            await writer.drain()
            return False
        else:
            raise ValueError(f"unknown fault {fault!r}")
        await writer.drain()
        return True

    async def _endless(self, writer: asyncio.StreamWriter, ctype: str, data: bytes, pause_s: float) -> bool:
        """A 200 reply whose chunked body never ends: ``data`` as one chunk every ``pause_s``, until the client
        goes (or the server stops)."""
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        while not self._stop.is_set():
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()  # raises once the client has closed the connection
            await asyncio.sleep(pause_s)
        return False

    async def _stream(self, fault: str, prompt: str, req: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        if fault == "stream_trickle":
            return await self._endless(writer, "text/event-stream", b": keep-alive\n\n", 0.2)
        if fault == "stream_forever":
            piece = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " word"}}]}
            return await self._endless(writer, "text/event-stream", b"data: " + json.dumps(piece).encode() + b"\n\n", 0)
        text = self.responder(prompt)
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": req.get("model"),
            "system_fingerprint": FINGERPRINT,
        }

        def event(obj: Any) -> bytes:
            data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
            return b"data: " + data + b"\n\n"

        events = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})]
        events += [
            event({**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}) for p in pieces
        ]
        events.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if self.stream_usage and (req.get("stream_options") or {}).get("include_usage"):
            pt, ct = len(prompt.split()), len(pieces)
            usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
            events.append(event({**base, "choices": [], "usage": usage}))
        events.append(event("[DONE]"))
        half = max(2, len(events) // 2)
        if fault == "stream_malformed":
            events = [*events[:half], b'data: {"choices": [ not json\n\n', *events[half:]]
        elif fault == "stream_error":
            events = [*events[:half], event({"error": {"message": "overloaded", "type": "server_error"}})]
        elif fault in ("stream_cut", "stream_no_done"):
            events = events[:half]
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head.encode())
        for ev in events:
            writer.write(f"{len(ev):x}\r\n".encode() + ev + b"\r\n")
            await writer.drain()
        if fault == "stream_cut":
            return False  # close with the chunked body unfinished: the client sees the connection cut
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        if fault == "ok":
            with self._lock:
                self.completed[prompt] += 1
        return True

    def _arrive(self, prompt: str) -> int:
        """Count a generation request (chat or background POST); returns which arrival of this prompt it is."""
        with self._lock:
            self.seen[prompt] += 1
            self.arrivals.append((asyncio.get_running_loop().time(), prompt))
            return self.seen[prompt]

    # -- the Responses API, background mode -------------------------------------------------------------
    async def _responses(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        tail = path.split("/responses", 1)[1].strip("/")
        if not self.responses_enabled:
            self.refused += 1
            self._send(writer, 404, {"detail": "Not Found"})
        elif method == "POST" and not tail:
            return await self._create(body, writer)
        elif method == "GET" and tail and "/" not in tail:
            return await self._fetch(tail, writer)
        elif method == "DELETE" and tail and "/" not in tail:
            if self.responses.pop(tail, None) is None:
                self._send(writer, 404, {"error": {"message": f"Response with id '{tail}' not found."}})
            else:
                self.deleted.add(tail)
                self._send(writer, 200, {"id": tail, "object": "response", "deleted": True})
        elif method == "POST" and tail.endswith("/cancel"):
            rid = tail.removesuffix("/cancel")
            obj = self.responses.get(rid)
            if obj is None:
                self._send(writer, 404, {"error": {"message": f"Response with id '{rid}' not found."}})
            else:
                if obj["status"] in ("queued", "in_progress"):
                    obj["status"] = "cancelled"
                    self.cancelled.add(rid)
                self._send(writer, 200, obj)
        else:
            self._send(writer, 404, {"error": {"message": "no such route"}})
        await writer.drain()
        return True

    async def _create(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        try:
            req = json.loads(body)
            inp = req["input"]
            prompt = inp if isinstance(inp, str) else inp[-1]["content"]
            if not isinstance(prompt, str):
                raise TypeError
        except (ValueError, KeyError, IndexError, TypeError):
            self._send(writer, 400, {"error": {"message": "bad request body"}})
            await writer.drain()
            return True
        if not (req.get("background") and req.get("store")):
            self._send(writer, 400, {"error": {"message": "this server runs only stored background responses"}})
            await writer.drain()
            return True
        n = self._arrive(prompt)
        fault = self.plan(prompt, n)
        self.faults[fault] += 1
        if fault not in ("ok", "bg_failed", "bg_lost", "bg_incomplete", "bg_hang", "bg_refusal"):
            return await self._fault(fault, prompt, req, writer)
        rid = f"resp_{next(self._ids):06d}"
        self.prompt_of[rid] = prompt
        obj: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued",
            "background": True,
            "model": req.get("model"),
            "output": [],
            "usage": None,
            "metadata": req.get("metadata") or {},
        }
        if fault != "bg_lost":
            self.responses[rid] = obj
            job = asyncio.get_running_loop().create_task(self._job(obj, prompt, fault))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
        self._send(writer, 200, obj)
        await writer.drain()
        return True

    async def _job(self, obj: dict[str, Any], prompt: str, fault: str) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            obj["status"] = "in_progress"
            await asyncio.sleep(self.hang_s if fault == "bg_hang" else self.delay_s)
            if obj["status"] != "in_progress":  # cancelled meanwhile
                return
            if fault == "bg_failed":
                obj.update(status="failed", error={"code": "server_error", "message": "the model server crashed"})
                return
            if fault == "bg_refusal":  # finished, but with no answer text: a refusal content part only
                refusal = {"type": "refusal", "refusal": "I can't help with that."}
                msg = {"type": "message", "id": "msg_" + obj["id"], "role": "assistant", "content": [refusal]}
                obj.update(status="completed", output=[msg])
                return
            text = self.responder(prompt)
            if fault == "bg_incomplete":
                text = text[: len(text) // 2]
                obj.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
            else:
                obj["status"] = "completed"
            part = {"type": "output_text", "text": text, "annotations": []}
            msg = {"type": "message", "id": "msg_" + obj["id"], "role": "assistant", "content": [part]}
            pt, ct = len(prompt.split()), len(text.split())
            obj.update(output=[msg], usage={"input_tokens": pt, "output_tokens": ct, "total_tokens": pt + ct})
            if fault == "ok":
                with self._lock:
                    self.completed[prompt] += 1
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _fetch(self, rid: str, writer: asyncio.StreamWriter) -> bool:
        with self._lock:
            self.polls[rid] += 1
            n = self.polls[rid]
        fault = self.poll_plan(self.prompt_of.get(rid, ""), n)
        obj = self.responses.get(rid)
        if fault == "drop":
            return False
        if fault == "500":
            self._send(writer, 500, {"error": {"message": "internal error"}})
        elif fault == "429":
            self._send(writer, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        elif fault == "malformed":
            self._raw(writer, 200, b'{"id": "resp_ this is not json', "application/json")
        elif obj is None:
            self._send(writer, 404, {"error": {"message": f"Response with id '{rid}' not found."}})
        else:
            self._send(writer, 200, obj)
        await writer.drain()
        return True

    def _send(
        self, writer: asyncio.StreamWriter, status: int, payload: Any, extra: dict[str, str] | None = None
    ) -> None:
        self._raw(writer, status, json.dumps(payload).encode(), "application/json", extra)

    @staticmethod
    def _raw(
        writer: asyncio.StreamWriter, status: int, data: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        reason = HTTPStatus(status).phrase
        hdrs = {"Content-Type": ctype, "Content-Length": str(len(data)), **(extra or {})}
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        writer.write(head.encode() + data)
