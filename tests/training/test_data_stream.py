"""Streamed completions (``--stream``) against the loopback fault server: a stream cut mid-way, a body that
ends without ``[DONE]``, a malformed chunk and an error event are retried from the start; an item that never
gets a whole stream is recorded as failed (no text) and retried on the next run; no partial text reaches a
result record or the next stage. Usage from the server's usage chunk, else counted from the stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.fake_server import FINGERPRINT, FaultServer
from tests.training.test_data_faults import case_no, cfg, notes_rows, write_cases
from training.data import stages
from training.data.stage_runner import StageOptions
from training.endpoint.streaming import MalformedReply, StreamErrorEvent, StreamReader, TruncatedStream
from training.runner import read_jsonl

STREAM_FAULTS = ("stream_cut", "stream_no_done", "stream_malformed", "stream_error", "500", "drop")


def _feed(body: str) -> StreamReader:
    r = StreamReader()
    for line in body.split("\n"):
        if r.feed(line):
            break
    return r


def test_stream_reader_takes_a_whole_stream_only():
    chunk = lambda s: json.dumps({"choices": [{"index": 0, "delta": {"content": s}, "finish_reason": None}]})  # noqa: E731
    stop = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    whole = f": keep-alive\n\ndata: {chunk('Fever ')}\n\nevent: x\ndata: {chunk('resolved.')}\n\ndata: {stop}\n\n"
    r = _feed(whole + "data: [DONE]\n\n")
    reply = r.finish()
    assert (reply.text, reply.finish_reason, reply.content_chunks) == ("Fever resolved.", "length", 2)
    assert reply.prompt_tokens is None  # no usage chunk: the caller counts

    cut = _feed(whole)
    cut.end_of_body()
    with pytest.raises(TruncatedStream, match="before \\[DONE\\] after 2 content chunks"):
        cut.finish()
    # an event the body ended in the middle of is lost (SSE), unless it is a bare [DONE]
    half = _feed(f"data: {chunk('a')}\n\ndata: {chunk('b')}")
    half.end_of_body()
    with pytest.raises(TruncatedStream):
        half.finish()
    bare = _feed(f"data: {chunk('a')}\n\ndata: [DONE]")
    bare.end_of_body()
    assert bare.finish().text == "a"
    # an event's data may span lines (SSE joins them with a newline)
    multi = _feed('data: {"choices": [{"index": 0,\ndata: "delta": {"content": "x"}}]}\n\ndata: [DONE]\n\n')
    assert multi.finish().text == "x"
    with pytest.raises(MalformedReply, match="not JSON"):
        _feed('data: {"choices": [ nope\n\n')
    with pytest.raises(MalformedReply, match="content is not text"):
        _feed('data: {"choices": [{"delta": {"content": 7}}]}\n\n')
    with pytest.raises(StreamErrorEvent, match="overloaded"):
        _feed('data: {"error": {"message": "overloaded"}}\n\n')
    usage = _feed('data: {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}\n\ndata: [DONE]\n\n')
    assert (usage.finish().prompt_tokens, usage.finish().completion_tokens) == (11, 3)


def test_stream_faults_are_retried_failed_items_resent_and_no_partial_text_survives(tmp_path: Path):
    n = 2 * len(STREAM_FAULTS) + 2
    broken = {n - 1, n - 2}  # their stream is cut on every attempt of the first run

    def plan(prompt: str, seen: int) -> str:
        i = case_no(prompt)
        if i in broken:
            return "stream_cut" if i % 2 else "stream_no_done"
        return STREAM_FAULTS[i % len(STREAM_FAULTS)] if seen == 1 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", n), id_column="patient_id")
    out = tmp_path / "out"
    with FaultServer(plan) as srv:
        opts = StageOptions(out, cfg(srv, stream=True), max_tokens=64, progress=False)
        res = stages.run_notes(opts, src)
        u = res.usage
        assert u is not None and (u.requests, u.succeeded, u.failed) == (n, n - 2, 2)
        assert set(srv.streamed) == set(srv.seen)  # every request asked for a stream
        # one retry per faulty item; two for each broken one (3 attempts)
        assert u.retries == (n - 2) + 2 * 2 and u.attempts == n + u.retries
        assert u.truncated_streams == 2 + 2 + 2 * 3  # stream_cut and stream_no_done items, plus the broken ones
        assert u.malformed == 2 and u.server_errors == 2 + 2 and u.connection_errors == 2
        assert "truncated streams" in res.summary()
        # usage from the server's usage chunk (stream_options.include_usage): its own counts
        assert u.usage_counted == 0 and u.completion_tokens == 2 * (n - 2)

        rows = notes_rows(out)
        assert sorted(r["source_id"] for r in rows) == sorted(f"p{i}" for i in range(n) if i not in broken)
        by_prompt = {case_no(p): srv.responder(p) for p in srv.seen}
        for r in rows:  # each note is the whole reply, never the part before a cut
            assert r["note"] == by_prompt[int(r["source_id"][1:])]
        records = list(read_jsonl(out / "notes.results.jsonl"))
        failed = [r for r in records if r["status"] == "failed"]
        assert {r["meta"]["source_id"] for r in failed} == {f"p{i}" for i in broken}
        assert all(r["error"].startswith("truncated stream") and "text" not in r for r in failed)
        assert [r["text"] for r in records if r["status"] == "ok"] == [row["note"] for row in rows]

        # The server recovers: the next run sends only the two failed items, and they arrive whole.
        broken.clear()
        res2 = stages.run_notes(opts, src)
        assert res2.usage is not None and (res2.usage.requests, res2.usage.succeeded) == (2, 2)
    rows = notes_rows(out)
    assert len(rows) == n and all(r["note"] == by_prompt[int(r["source_id"][1:])] for r in rows)


def test_stream_usage_is_counted_when_the_server_sends_none_or_rejects_the_option(tmp_path: Path):
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 3))
    for kw in ({"stream_usage": False}, {"reject_stream_options": True}):
        out = tmp_path / next(iter(kw))
        with FaultServer(**kw) as srv:
            # One at a time: the first refusal is the only one. No fault here needs the 1 s deadline of cfg(): a
            # busy CI machine once took longer than that, retried, and the exact attempt count below failed.
            ep = cfg(srv, stream=True, concurrency=1, timeout_s=60.0)
            res = stages.run_notes(StageOptions(out, ep, max_tokens=16, progress=False), src)
            u = res.usage
            assert u is not None and u.succeeded == 3 and u.failed == 0 and u.usage_counted == 3
            # the responder's replies are 2 words = 2 content chunks; the prompt is estimated (3 bytes a token)
            assert u.completion_tokens == 6 and u.prompt_tokens > sum(len(p.split()) for p in srv.seen)
            assert "counted from the stream" in res.summary()
            if kw.get("reject_stream_options"):
                # one refused request, then the option is dropped for the rest of the run; not a failure
                assert u.attempts == 4 and u.retries == 0 and u.client_errors == 0
                assert sum(srv.seen.values()) == 4
        assert len(notes_rows(out)) == 3


@pytest.mark.parametrize("stream", [False, True])
def test_each_result_records_the_servers_model_and_fingerprint(tmp_path: Path, stream: bool):
    """The server's own account of who answered (reply ``model`` and ``system_fingerprint``) is kept per result,
    streamed or not, as ``batch --endpoint`` keeps it per run; the judge's ratings read it from here."""
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 2))
    out = tmp_path / "out"
    with FaultServer() as srv:
        ep = cfg(srv, stream=stream)
        res = stages.run_notes(StageOptions(out, ep, max_tokens=16, progress=False), src)
        assert res.usage is not None and res.usage.succeeded == 2
    ok = [r for r in read_jsonl(out / "notes.results.jsonl") if r["status"] == "ok"]
    assert len(ok) == 2
    assert all(r["reported_model"] == ep.served_model and r["system_fingerprint"] == FINGERPRINT for r in ok)
