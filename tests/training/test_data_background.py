"""``--background``: requests sent as OpenAI Responses API background responses and fetched by id, against
the loopback fault server (which generates each response in its own task, as OpenAI and vLLM do). A failing
submit is retried like a chat request; a failing *poll* is polled again, never re-sent; a response that
failed, was lost or hung is submitted again; the id survives a run that could not fetch it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import UsageError
from tests.training.fake_server import FaultServer
from tests.training.test_data_faults import case_no, cfg, notes_rows, write_cases
from training.data import stages
from training.data.stage_runner import StageOptions
from training.endpoint import responses as background
from training.endpoint.settings import EndpointFatalError
from training.endpoint.streaming import MalformedReply
from training.runner import ResultLog, read_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _results(out: Path) -> list[dict]:
    return list(read_jsonl(out / "notes.results.jsonl"))


def test_submit_and_poll_faults_each_get_what_they_need(tmp_path: Path):
    # case -> fault of its first POST; every later POST is fine
    submit = {0: "429", 1: "500", 2: "drop", 3: "malformed", 4: "bg_failed", 5: "bg_lost", 6: "bg_incomplete",
              11: "bg_refusal"}  # fmt: skip
    # cases whose responses fail to be fetched twice (the response itself is fine)
    poll = {7: "500", 8: "drop", 9: "malformed", 10: "429"}
    n = 12

    def plan(prompt: str, seen: int) -> str:
        return submit.get(case_no(prompt), "ok") if seen == 1 else "ok"

    def poll_plan(prompt: str, n_get: int) -> str:
        return poll.get(case_no(prompt), "ok") if n_get <= 2 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", n), id_column="patient_id")
    out = tmp_path / "out"
    with FaultServer(plan, delay_s=0.05, retry_after="0", poll_plan=poll_plan) as srv:
        res = stages.run_notes(StageOptions(out, cfg(srv, background=True), max_tokens=64, progress=False), src)
        seen = {case_no(p): c for p, c in srv.seen.items()}
        prompt = {case_no(p): p for p in srv.seen}
    u = res.usage
    assert u is not None and (u.requests, u.succeeded, u.failed) == (n, n, 0)
    # POSTed twice: the four submit faults, the failed, the lost and the unreadable (refusal) response; once:
    # every other case, the poll-fault cases included (a failed GET is polled again, the request not re-sent)
    assert {c for c, k in seen.items() if k == 2} == {0, 1, 2, 3, 4, 5, 11}
    assert all(seen[c] == 1 for c in range(6, 11))
    # ids handed out: 8 first POSTs (cases 4-11), the 4 retried submits, the failed, lost and refused again
    assert u.submitted == 8 + 4 + 3 and u.attempts == n + 7 and u.retries == 7
    assert u.rate_limited == 1 and u.responses_lost == 1 and u.poll_errors == 2 * len(poll)
    assert u.server_errors == 2  # the 500 on submit and the failed response
    assert u.malformed == 2  # the malformed submit reply and the finished response with no text
    recs = {r["meta"]["source_id"]: r for r in _results(out) if r["status"] == "ok"}
    assert len(recs) == n and all(r["response_id"].startswith("resp_") for r in recs.values())
    assert recs["p6"]["finish_reason"] == "length"  # incomplete (max_output_tokens): the text so far is kept
    assert {r["finish_reason"] for k, r in recs.items() if k != "p6"} == {"stop"}
    assert recs["p0"]["text"] == FaultServer().responder(prompt[0])
    assert len(notes_rows(out)) == n
    assert "15 submitted" in res.summary() and "1 lost by the server and submitted again" in res.summary()


def test_a_response_that_cannot_be_fetched_keeps_its_id_for_the_next_run(tmp_path: Path):
    broken = {"on": True}

    def poll_plan(prompt: str, n_get: int) -> str:
        return "500" if broken["on"] and case_no(prompt) == 1 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 3), id_column="patient_id")
    out = tmp_path / "out"
    with FaultServer(delay_s=0.02, poll_plan=poll_plan) as srv:
        opts = StageOptions(out, cfg(srv, background=True, max_attempts=2), max_tokens=64, progress=False)
        first = stages.run_notes(opts, src).usage
        assert first is not None and (first.succeeded, first.failed) == (2, 1)
        failed = [r for r in _results(out) if r["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["response_id"] and "fetching response" in failed[0]["error"]
        assert ResultLog(out / "notes.results.jsonl").submitted == {failed[0]["id"]: failed[0]["response_id"]}
        # recorded replies are deleted from the server; the one not fetched yet stays there for the next run
        assert len(srv.deleted) == 2 and list(srv.responses) == [failed[0]["response_id"]]
        broken["on"] = False
        second = stages.run_notes(opts, src).usage
        assert second is not None and (second.requests, second.succeeded, second.submitted) == (1, 1, 0)
        assert second.recovered_after_interruption == 1
        assert set(srv.seen.values()) == {1}  # fetched by id, never sent twice
        assert len(srv.deleted) == 3 and not srv.responses
    assert len(notes_rows(out)) == 3


def test_a_response_still_pending_at_the_timeout_is_cancelled_and_submitted_again(tmp_path: Path):
    def plan(prompt: str, seen: int) -> str:
        return "bg_hang" if seen == 1 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 1))
    with FaultServer(plan, delay_s=0.01, hang_s=30) as srv:
        res = stages.run_notes(
            StageOptions(tmp_path / "out", cfg(srv, background=True, timeout_s=0.5), max_tokens=16, progress=False),
            src,
        )
        assert len(srv.cancelled) == 1 and list(srv.seen.values()) == [2]
    assert res.usage is not None and res.usage.timeouts == 1 and res.usage.succeeded == 1


def test_a_server_without_background_responses_stops_the_stage_with_a_clear_error(tmp_path: Path):
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 2))
    with FaultServer(responses_enabled=False) as srv:
        with pytest.raises(EndpointFatalError, match=r"no Responses API.*run without --background"):
            stages.run_notes(StageOptions(tmp_path / "o", cfg(srv, background=True), progress=False), src)
        assert not srv.seen and 1 <= srv.refused <= 2  # the first replies stop the stage: no retries, no fallback
    with pytest.raises(UsageError, match="--background and --stream"):
        cfg(srv, background=True, stream=True)


def test_wire_format_and_finished_responses_are_read_strictly():
    b = background.body("m", "prompt", 32, 0.7, "abc")
    assert b["background"] is True and b["store"] is True and b["max_output_tokens"] == 32
    assert b["input"] == [{"role": "user", "content": "prompt"}] and b["metadata"] == {"request_id": "abc"}
    assert "seed" not in b  # the Responses API has none
    msg = {"type": "message", "content": [{"type": "output_text", "text": "a"}, {"type": "refusal"}]}
    reasoning = {"type": "reasoning", "content": [{"type": "output_text", "text": "thinking"}]}
    done = background.outcome({"status": "completed", "model": "x", "output": [reasoning, msg, msg],
                               "usage": {"input_tokens": 5, "output_tokens": 2}})  # fmt: skip
    assert (done.ok, done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens) == (
        True, "aa", "stop", 5, 2)  # fmt: skip
    no_usage = background.outcome({"status": "completed", "output": [msg]})
    assert no_usage.ok and not no_usage.usage_reported
    cut = {"reason": "content_filter"}
    filtered = background.outcome({"status": "incomplete", "output": [], "incomplete_details": cut})
    assert filtered.ok and filtered.text == "" and filtered.finish_reason == "content_filter"
    failed = background.outcome({"status": "failed", "error": {"code": "server_error", "message": "boom"}})
    assert not failed.ok and "failed: boom" in (failed.error or "")
    for bad in ({"status": "completed", "output": []}, {"status": "weird"}, {"output": []}, []):
        with pytest.raises(MalformedReply):
            background.outcome(bad) if isinstance(bad, dict) else background.status(bad)
    for bad_id in ({}, {"id": ""}, {"id": "../x"}, "resp_1"):
        with pytest.raises(MalformedReply):
            background.response_id(bad_id)
    delays = background.poll_delays()
    first = [next(delays) for _ in range(14)]
    assert first[0] == background.POLL_FIRST_S and first == sorted(first) and first[-1] == background.POLL_MAX_S


def test_cli_background_flag_reaches_the_responses_api(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", 3)
    with FaultServer(delay_s=0.02) as srv:
        r = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--base-url", srv.base_url,
             "--model", "m", "--out", str(tmp_path / "out"), "--background", "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert sum(srv.seen.values()) == 3 and sum(srv.polls.values()) >= 3
        assert len(srv.deleted) == 3 and not srv.responses  # each deleted there once its reply was on disk
        kept = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--base-url", srv.base_url,
             "--model", "m", "--out", str(tmp_path / "kept"), "--background", "--keep-responses", "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
        )  # fmt: skip
        assert kept.returncode == 0, kept.stderr
        assert len(srv.responses) == 3 and len(srv.deleted) == 3  # --keep-responses: left on the server
    assert "background: 3 submitted" in r.stdout and "3 deleted from the server once recorded" in r.stdout
    report = json.loads((tmp_path / "out" / "notes.report.json").read_text())
    assert report["runs"][0]["api"] == "responses (background)" and report["runs"][0]["usage"]["submitted"] == 3


def test_a_resumed_response_the_server_no_longer_has_is_sent_again_and_counted_as_such(tmp_path: Path):
    broken = {"on": True}

    def poll_plan(prompt: str, n_get: int) -> str:
        return "500" if broken["on"] else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 1))
    out = tmp_path / "out"
    with FaultServer(delay_s=0.02, poll_plan=poll_plan) as srv:
        opts = StageOptions(out, cfg(srv, background=True, max_attempts=2), max_tokens=16, progress=False)
        first = stages.run_notes(opts, src).usage
        assert first is not None and first.failed == 1
        srv.responses.clear()  # the server restarted with an in-memory store: the id now means nothing
        broken["on"] = False
        second = stages.run_notes(opts, src).usage
        assert second is not None and second.succeeded == 1 and second.responses_lost == 1
        assert (second.resent_after_interruption, second.recovered_after_interruption) == (1, 0)
        assert list(srv.seen.values()) == [2]
    assert len(notes_rows(out)) == 1


def test_a_server_that_keeps_no_responses_stops_the_stage(tmp_path: Path):
    def plan(prompt: str, seen: int) -> str:
        return "bg_lost"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 20))
    with FaultServer(plan) as srv:
        with pytest.raises(EndpointFatalError, match=r"did not keep the last 8 responses"):
            stages.run_notes(StageOptions(tmp_path / "o", cfg(srv, background=True), progress=False), src)
        assert 8 <= sum(srv.seen.values()) <= 8 + 4  # stopped, not 20 x 3 generations for nothing


def test_malformed_finished_responses_are_rejected_not_crashed_on():
    bad_details = {"status": "incomplete", "output": [], "incomplete_details": "max_output_tokens"}
    assert background.outcome(bad_details).finish_reason == "incomplete"
    msg = {"type": "message", "content": [{"type": "output_text", "text": "a"}]}
    for usage in ({"input_tokens": "12"}, {"output_tokens": -1}, {"input_tokens": True}):
        with pytest.raises(MalformedReply, match="not a token count"):
            background.outcome({"status": "completed", "output": [msg], "usage": usage})
