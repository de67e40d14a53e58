"""The remote backend against a scripted loopback server: the bytes sent, streaming, retries, errors, secrecy.

The server is a real HTTP/1.1 server (``http.server`` on 127.0.0.1, a free port) that records every request
and answers from a script: an SSE stream, a stream cut before ``[DONE]``, 429 with Retry-After, 500, 401,
a 400 saying the prompt is too long. No model: these run in well under a second each.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.core.errors import ContextOverflowError, EndpointError, UsageError
from app.core.openai_policy import EndpointSettings, check_url, public_url
from app.core.remote import RemoteEngine
from app.core.remote_protocol import completion_body, render_prompt
from app.core.types import AskRequest, FinishReason, SamplingParams
from app.service import AskService
from resources import get_style

NOTE = "Patient admitted with pneumonia.\nStarted ceftriaxone 1 g daily. Creatinine 1.9 mg/dL.  "
QUESTION = "  What was the creatinine?"
PIECES = [" 1", ".9", " mg/dL"]

Step = str | tuple[str, Any]
"""``ok``, ``cut`` (stream closed before [DONE]), ``json`` (no stream), ``garbage``, (status, extra), or
(``body``, a JSON reply sent as is) / (``sse``, the events' JSON objects, then ``[DONE]``); ``forever`` (text
pieces, never ``[DONE]``), ``trickle`` (a keep-alive comment every 0.2 s, never an answer)."""


class Server:
    """Scripted completions server; ``script[i]`` answers the i-th POST (the last step repeats)."""

    def __init__(
        self,
        script: list[Step],
        models: list[str] | None = None,
        usage: bool = True,
        delay_s: float = 0.0,
        keepalive: bool = False,
    ) -> None:
        self.keepalive = keepalive
        self.script, self.models, self.usage = script, models if models is not None else ["m"], usage
        self.delay_s, self.in_flight, self.max_in_flight = delay_s, 0, 0
        self._lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.stopping = threading.Event()
        """Set on close: endless replies end."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json", **hdr: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in hdr.items():
                    self.send_header(k.replace("_", "-"), v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                data = {"object": "list", "data": [{"id": m, "max_model_len": 4096} for m in outer.models]}
                self._send(200, json.dumps(data).encode())

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with outer._lock:
                    outer.bodies.append(json.loads(raw))
                    outer.headers.append(dict(self.headers.items()))
                    outer.times.append(time.monotonic())
                    i = len(outer.bodies) - 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay_s)
                    self._answer(i)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _answer(self, i: int) -> None:
                step = outer.script[min(i, len(outer.script) - 1)]
                kind, extra = (step, None) if isinstance(step, str) else step
                if kind == "ok" and outer.keepalive:  # HTTP/1.1 chunked, the connection stays open
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for p in PIECES:
                        data = f"data: {json.dumps({'model': 'm', 'choices': [{'text': p}]})}\n\n".encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    done = b"data: [DONE]\n\n"
                    self.wfile.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
                    self.wfile.flush()
                    return
                if kind in ("ok", "cut", "garbage"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for p in PIECES if kind == "ok" else PIECES[:1]:
                        chunk = {"model": "m-reported", "system_fingerprint": "fp_test", "choices": [{"text": p}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    if kind == "garbage":
                        self.wfile.write(b"data: {not json\n\n")
                    if kind == "ok":
                        end = {"model": "m-reported", "choices": [{"text": "", "finish_reason": "stop"}]}
                        self.wfile.write(f"data: {json.dumps(end)}\n\n".encode())
                        if outer.usage:
                            use = {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 3}}
                            self.wfile.write(f"data: {json.dumps(use)}\n\n".encode())
                        self.wfile.write(b"data: [DONE]\n\n")
                    self.close_connection = True
                    return
                if kind in ("forever", "trickle"):  # never [DONE]: text pieces as fast as taken, or a comment a beat
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    piece = f"data: {json.dumps({'choices': [{'text': ' word'}]})}\n\n".encode()
                    try:
                        while not outer.stopping.is_set():
                            self.wfile.write(piece if kind == "forever" else b": keep-alive\n\n")
                            self.wfile.flush()
                            if kind == "trickle":
                                outer.stopping.wait(0.2)
                    except OSError:  # the client went away
                        pass
                    self.close_connection = True
                    return
                if kind == "body":
                    self._send(200, json.dumps(extra).encode())
                    return
                if kind == "sse":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for event in [*extra, "[DONE]"]:
                        data = event if isinstance(event, str) else json.dumps(event)
                        self.wfile.write(f"data: {data}\n\n".encode())
                    self.close_connection = True
                    return
                if kind == "json":
                    body = {"model": "m-reported", "choices": [{"text": "".join(PIECES), "finish_reason": "length"}]}
                    self._send(200, json.dumps(body).encode())
                    return
                status = int(kind)
                self._send(status, json.dumps({"error": {"message": extra or f"status {status}"}}).encode(),
                           **({"Retry_After": "1"} if status == 429 else {}))  # fmt: skip

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(script: list[Step], **kw: Any) -> Server:
        s = Server(script, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def engine(server: Server, **kw: Any) -> RemoteEngine:
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    kw.setdefault("prompt_style", "asclepius")
    return RemoteEngine(EndpointSettings(server.url, "m", **kw))


def request(**sampling: Any) -> AskRequest:
    return AskRequest(NOTE, "qa", QUESTION, SamplingParams(**sampling))


def test_sends_the_locally_rendered_prompt_byte_for_byte_as_a_completion(serve, monkeypatch) -> None:
    srv = serve(["ok"])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-123")
    pieces: list[str] = []
    res = engine(srv).ask(request(max_tokens=77, seed=5), on_token=pieces.append)
    body = srv.bodies[0]
    style = get_style("asclepius")
    # What the local engine tokenizes: the style's segments with user text stripped, nothing else.
    expected = style.head + NOTE.strip() + style.middle + QUESTION.strip() + style.tail
    assert body["prompt"] == expected == render_prompt(style, NOTE, QUESTION)
    assert body["prompt"].endswith("[Instruction End] \n")  # the published prompt's trailing space survives
    assert "messages" not in body and body["model"] == "m" and body["stream"] is True
    # Every sampling parameter explicit: a server's own defaults (top-k 40, repeat penalty 1.1...) never apply.
    sp = SamplingParams(max_tokens=77, seed=5)
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "top_k", "min_p", "seed")} == {
        "max_tokens": 77, "temperature": sp.temperature, "top_p": sp.top_p, "top_k": 0, "min_p": 0.0, "seed": 5,
    }  # fmt: skip
    assert body["repeat_penalty"] == body["repetition_penalty"] == 1.0
    assert srv.headers[0]["Authorization"] == "Bearer sk-secret-123"
    # Streamed: the pieces as the server sent them; provenance from the reply.
    assert pieces == PIECES and res.answer == "".join(PIECES)
    assert (res.finish_reason, res.reported_model, res.system_fingerprint) == (
        FinishReason.STOP,
        "m-reported",
        "fp_test",
    )
    assert (res.prompt_tokens, res.completion_tokens, res.usage_reported) == (40, 3, True)
    assert res.endpoint == srv.url and res.served_model == "m" and res.n_ctx == 4096
    assert "sk-secret" not in json.dumps(res.to_dict())


def test_a_keep_alive_connection_serves_request_after_request_without_retries(serve) -> None:
    srv = serve(["ok"], keepalive=True)
    eng = engine(srv)
    for _ in range(3):
        assert eng.ask(request()).answer == "".join(PIECES)
    assert len(srv.bodies) == 3 and eng.retries == 0  # the stream's end was read: no reconnect-and-retry


def test_style_stop_strings_are_sent(serve) -> None:
    srv = serve(["ok"])
    engine(srv, prompt_style="plain-qa").ask(request())
    assert srv.bodies[0]["stop"] == list(get_style("plain-qa").stop)
    assert srv.bodies[0]["prompt"].startswith("Discharge summary:\n")


def test_no_usage_reported_counts_the_stream(serve) -> None:
    srv = serve(["ok"], usage=False)
    res = engine(srv).ask(request())
    assert (res.prompt_tokens, res.completion_tokens, res.usage_reported) == (0, 3, False)


def test_a_server_that_ignores_stream_still_works(serve) -> None:
    res = engine(serve(["json"])).ask(request())
    assert res.answer == "".join(PIECES) and res.finish_reason is FinishReason.LENGTH


def test_429_retry_after_is_honoured_then_succeeds(serve) -> None:
    srv = serve([("429", "slow down"), "ok"])
    res = engine(srv).ask(request())
    assert res.answer == "".join(PIECES) and len(srv.bodies) == 2
    assert srv.times[1] - srv.times[0] >= 0.95  # Retry-After: 1, not the 0.05 s backoff


@pytest.mark.parametrize("fault", ["500", "cut", "garbage"])
def test_transient_failures_are_retried(serve, fault) -> None:
    srv = serve([fault, fault, "ok"])
    res = engine(srv).ask(request())
    assert res.answer == "".join(PIECES) and len(srv.bodies) == 3


def test_a_cut_stream_after_text_was_streamed_is_not_repeated(serve) -> None:
    srv = serve(["cut", "ok"])
    pieces: list[str] = []
    with pytest.raises(EndpointError, match="broke off"):
        engine(srv).ask(request(), on_token=pieces.append)
    assert pieces == PIECES[:1] and len(srv.bodies) == 1


def test_a_server_failing_every_attempt_raises_endpoint_error(serve) -> None:
    srv = serve(["503"])
    with pytest.raises(EndpointError, match="failed 3 times") as ei:
        engine(srv, max_attempts=3).ask(request())
    assert ei.value.exit_code == 8 and len(srv.bodies) == 3


def test_401_stops_at_once_and_400_too_long_is_a_context_overflow(serve) -> None:
    srv = serve([("401", "bad key")])
    with pytest.raises(EndpointError, match="HTTP 401"):
        engine(srv).ask(request())
    assert len(srv.bodies) == 1
    srv2 = serve([("400", "This model's maximum context length is 4096 tokens")])
    with pytest.raises(ContextOverflowError, match="maximum context length"):
        engine(srv2).ask(request())


def test_unreachable_server_and_unknown_model_are_reported_before_any_request(serve) -> None:
    srv = serve(["ok"], models=["other"])
    with pytest.raises(UsageError, match="serves: other"):
        engine(srv)
    srv.close()
    with pytest.raises(EndpointError, match="cannot reach"):
        engine(srv, max_attempts=2)


def test_urls_are_recorded_without_credentials_and_refused_with_them() -> None:
    assert public_url("https://u:p@h.example:8443/v1/?x=1#f") == "https://h.example:8443/v1"
    for bad in ("ftp://h/v1", "http://u:p@h/v1", "http://h/v1?key=1", "h:8000/v1"):
        with pytest.raises(UsageError):
            check_url(bad)
    with pytest.raises(UsageError, match="concurrency"):
        EndpointSettings("http://h/v1", "m", concurrency=0)


def test_truncation_needs_a_tokenizer_and_is_refused(serve) -> None:
    with pytest.raises(UsageError, match="truncate"):
        engine(serve(["ok"])).ask(replace(request(), truncate=True))


def test_the_ask_service_logs_a_remote_run_with_its_provenance(serve, tmp_path) -> None:
    from app.core.config import GenerationDefaults
    from app.store import EvalLog

    srv = serve(["ok"])
    eng = engine(srv)
    with EvalLog.open(tmp_path / "log.db") as log:
        svc = AskService.for_engine(eng, log, GenerationDefaults())
        out = svc.ask(svc.request(NOTE, "qa", QUESTION))
        run = log.get_run(out.run_id)  # type: ignore[arg-type]
        assert run is not None and run.answer == "1.9 mg/dL"  # leading whitespace stripped by the service
        # "1.9 mg/dL" is found in the note: the same grounding check as a local run, stored with the run.
        assert out.grounding.claims and out.grounding.clean
        assert run.grounding == json.loads(json.dumps(out.grounding.summary()))
        assert (run.endpoint, run.served_model, run.reported_model, run.system_fingerprint) == (
            srv.url, "m", "m-reported", "fp_test",
        )  # fmt: skip
        # The server going away: the run is recorded as failed, naming the server, and the error raised.
        srv.close()
        with pytest.raises(EndpointError):
            svc.ask(svc.request(NOTE, "qa", "Which antibiotic?"))
        failed = [r for r in log.list_runs() if r.finish_reason == "error"]
        assert len(failed) == 1 and "failed" in (failed[0].error or "") and failed[0].endpoint == srv.url


def test_completion_body_has_no_chat_fields() -> None:
    b = completion_body("m", "p", SamplingParams(top_k=40, repeat_penalty=1.1), (), stream=False)
    assert b["top_k"] == 40 and b["repetition_penalty"] == 1.1 and "stop" not in b and "stream_options" not in b


def test_batch_and_the_judge_record_an_endpoint_the_same_way() -> None:
    from training.endpoint.settings import ChatSettings

    assert public_url("https://u:p@h.example:8443/v1/?x=1#f") == "https://h.example:8443/v1"
    for url in ("http://127.0.0.1:8000/v1", "http://[::1]:80/v1/"):
        assert EndpointSettings(url, "m").public_url == ChatSettings(url, "m").public_url == public_url(url)
    for settings in (EndpointSettings, ChatSettings):  # a key in the URL would be printed: both refuse it
        with pytest.raises(UsageError, match="user or password"):
            settings("https://u:p@h.example:8443/v1", "m")


def _batch_items(path, n: int) -> None:  # type: ignore[no-untyped-def]
    import csv

    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        for i in range(n):
            w.writerow([f"i{i}", NOTE if i % 2 else NOTE + " Afebrile.", "qa", f"Question {i}?"])


def _run_remote_batch(tmp_path, srv: Server, items, *extra: str) -> int:  # type: ignore[no-untyped-def]
    from app.cli.batch.options import BatchOptions
    from app.cli.batch.runner import run_batch
    from app.cli.main import build_parser
    from tests.fakes import FakeContext, FakeEngine

    argv = ["batch", str(items), "--endpoint", srv.url, "--endpoint-model", "m", *extra]
    args = build_parser().parse_args(argv)
    opts = BatchOptions.from_args(args)
    settings = replace(opts.endpoint, backoff_base_s=0.01, backoff_max_s=0.02)
    ctx = FakeContext(tmp_path, FakeEngine())
    with RemoteEngine(settings) as remote, ctx.open_log() as log:
        return run_batch(opts, ctx, log, threading.Event(), remote)


def test_batch_endpoint_keeps_concurrency_bounded_and_resumes(serve, tmp_path, capsys) -> None:
    srv = serve(["ok"], delay_s=0.3)
    items = tmp_path / "items.csv"
    _batch_items(items, 8)
    assert _run_remote_batch(tmp_path, srv, items, "--concurrency", "3") == 0
    assert srv.max_in_flight == 3 and len(srv.bodies) == 8  # bounded, and across the two notes
    assert _run_remote_batch(tmp_path, srv, items, "--concurrency", "3") == 0
    assert len(srv.bodies) == 8 and "8 skipped (already done)" in capsys.readouterr().err


def test_batch_endpoint_stops_when_the_server_fails_and_the_rerun_completes_it(serve, tmp_path, capsys) -> None:
    from app.store import EvalLog

    srv = serve(["ok", "ok", "ok", "503"])
    items = tmp_path / "items.csv"
    _batch_items(items, 8)
    with pytest.raises(EndpointError, match="failed 1 times"):
        _run_remote_batch(tmp_path, srv, items, "--concurrency", "1", "--endpoint-attempts", "1")
    err = capsys.readouterr().err
    assert "3 run" in err and "run the same command again" in err
    srv.script = ["ok"]  # the server is back
    assert _run_remote_batch(tmp_path, srv, items, "--concurrency", "2") == 0
    assert "3 skipped (already done)" in capsys.readouterr().err
    db = next((tmp_path / "data").rglob("*.db"))
    with EvalLog.open(db) as log:
        runs = log.list_runs(limit=1000)
    answered = [r for r in runs if r.finish_reason == "stop"]
    assert sorted(r.instruction for r in answered) == sorted(f"Question {i}?" for i in range(8))  # once each
    failed = [r for r in runs if r.finish_reason == "error"]
    assert len(failed) == 1 and failed[0].endpoint == srv.url  # the one that met the failing server, kept


def test_the_network_guard_never_shows_credentials_of_a_url() -> None:
    from app.core import netguard

    for url in ("http://alice:S3CRET@h:99999/v1", "ftp://alice:S3CRET@h/v1?key=S3CRET"):
        with pytest.raises(ValueError) as ei:
            netguard.Endpoint.parse(url)
        assert "S3CRET" not in str(ei.value) and "alice" not in str(ei.value)
    guard = netguard.NetGuard(block=True)
    guard.allowed = netguard.Endpoint.parse("http://alice:S3CRET@127.0.0.1:8123/v1?key=S3CRET")

    class Sock:
        family = socket.AF_INET

    with pytest.raises(PermissionError) as ei:
        guard._hook("socket.connect", (Sock(), ("10.0.0.1", 80)))
    assert "may reach http://127.0.0.1:8123/v1 only" in str(ei.value) and "S3CRET" not in str(ei.value)


@pytest.mark.parametrize(
    "reply",
    [
        ("body", {"model": "m", "choices": None}),
        ("body", {"model": "m"}),
        ("sse", [{"model": "m", "choices": None}, {"choices": None, "usage": {"completion_tokens": 0}}]),
    ],
    ids=["choices-null", "no-choices", "stream-choices-null"],
)
def test_a_reply_without_choices_is_a_failed_attempt_never_an_empty_answer(serve, reply) -> None:
    srv = serve([reply, "ok"])
    res = engine(srv).ask(request())
    assert res.answer == "".join(PIECES) and len(srv.bodies) == 2  # retried, then answered
    srv2 = serve([reply])
    with pytest.raises(EndpointError, match="no choices"):
        engine(srv2, max_attempts=2).ask(request())
    assert len(srv2.bodies) == 2


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "forty", "completion_tokens": 3},
        {"prompt_tokens": 40, "completion_tokens": 2.5},
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 40, "completion_tokens": 3, "prompt_tokens_details": "cached"},
        {"prompt_tokens": 40, "completion_tokens": True},
        "lots",
    ],
)
def test_a_usage_report_that_is_not_counts_is_treated_as_absent(serve, usage) -> None:
    events = [{"model": "m", "choices": [{"text": p}]} for p in PIECES]
    srv = serve([("sse", [*events, {"choices": [], "usage": usage}])])
    res = engine(srv).ask(request())
    assert res.answer == "".join(PIECES) and len(srv.bodies) == 1
    assert (res.prompt_tokens, res.completion_tokens, res.usage_reported) == (0, 3, False)


def test_a_stream_that_never_ends_stops_at_the_answer_limit(serve) -> None:
    srv = serve(["forever"])
    pieces: list[str] = []
    t0 = time.monotonic()
    res = engine(srv, timeout_s=5).ask(request(max_tokens=20), on_token=pieces.append)
    assert time.monotonic() - t0 < 30
    assert res.finish_reason is FinishReason.LENGTH and len(pieces) == 20 and res.answer == " word" * 20
    assert len(srv.bodies) == 1 and res.completion_tokens == 20


def test_a_stream_that_trickles_forever_ends_at_the_deadline(serve, tmp_path, capsys) -> None:
    srv = serve(["trickle"])
    t0 = time.monotonic()
    with pytest.raises(EndpointError, match="no complete reply within 2 s"):
        engine(srv, timeout_s=2, max_attempts=2).ask(request())
    assert time.monotonic() - t0 < 30 and len(srv.bodies) == 2  # each attempt ended at its deadline, retried
    items = tmp_path / "items.csv"
    _batch_items(items, 2)
    t0 = time.monotonic()
    with pytest.raises(EndpointError, match="no complete reply within 5 s"):
        _run_remote_batch(tmp_path, srv, items, "--endpoint-timeout", "5", "--endpoint-attempts", "1")
    assert time.monotonic() - t0 < 30
    assert "run the same command again" in capsys.readouterr().err
