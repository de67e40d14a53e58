"""Pure parts of the data pipeline: filters, ids, limiter, Retry-After, config checks, input reading, the log."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.core.openai_policy import public_url, retry_after_s
from training.data.filters import SimilarityPool, lcs_length, reference_filter, rouge_l
from training.data.inputs import read_case_reports
from training.endpoint.chat import ChatRequest, request_body
from training.endpoint.limiter import RateLimiter
from training.endpoint.settings import ChatSettings
from training.runner import ResultLog, request_id


def test_lcs_and_rouge_l():
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4
    assert (
        rouge_l("What medications was the patient discharged on?", "What medications was the patient discharged on?")
        == 1.0
    )
    assert rouge_l("alpha beta", "gamma delta") == 0.0
    assert rouge_l("", "anything") == 0.0
    # LCS "the patient", |a| = 3, |b| = 4: P = 2/4, R = 2/3, F = 4/7
    assert rouge_l("list the patient", "was the patient admitted") == pytest.approx(4 / 7)


def test_similarity_pool_drops_near_duplicates_per_task():
    pool = SimilarityPool(0.7)
    pool.seed("qa", ["What medications was the patient discharged on?"])
    assert pool.admit("qa", "Which medications was the patient discharged on?")[0] is False
    assert pool.admit("qa", "Why was a chest CT ordered?")[0] is True
    assert pool.admit("qa", "Why was the chest CT ordered?")[0] is False  # now against the admitted one
    assert pool.admit("ner", "Why was the chest CT ordered?")[0] is True  # other task, other pool


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ({"note": "n", "question": "q", "answer": "As an AI Language Model I cannot"}, "answer matches 'AI language'"),
        ({"note": "n", "question": "Ask THE MODEL", "answer": "a"}, "question matches 'the model'"),
        ({"note": "a NER model wrote this", "question": "q", "answer": "a"}, "note matches 'NER model'"),
        ({"note": "n", "question": "q", "answer": "Could you clarify?  "}, "answer ends with '?'"),
        ({"note": "n", "question": "Is it?", "answer": "Yes."}, None),
    ],
)
def test_reference_filter(row, why):
    assert reference_filter(row) == why


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        ('"What dose of aspirin was given?"', "What dose of aspirin was given?"),
        ("What medications were prescribed\nat discharge, and at what doses?",
         "What medications were prescribed at discharge, and at what doses?"),
        ("When was the stent placed?\n\nThis question tests temporal extraction.", "When was the stent placed?"),
        ("\n  Which  drug\tcaused the rash?  \n", "Which drug caused the rash?"),
    ],
)  # fmt: skip
def test_a_question_is_one_line_for_the_next_prompts_example_list(reply, question):
    from training.data.stages import clean_question

    assert clean_question(reply) == question and "\n" not in clean_question(reply)


def test_request_ids_derive_from_content_and_stage():
    a = request_id("answers", "answer@1", "inst-1")
    assert a == request_id("answers", "answer@1", "inst-1")
    assert len({a, request_id("answers", "answer@2", "inst-1"), request_id("notes", "answer@1", "inst-1")}) == 3


def test_request_body_is_data():
    req = ChatRequest("id1", "hello", 12, 1.0, {"x": 1}, seed=3)
    assert request_body("m", req) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 12,
        "temperature": 1.0,
        "seed": 3,
    }


def test_endpoint_config_validates_everything_at_once():
    with pytest.raises(UsageError) as e:
        ChatSettings("ftp://x", " ", api_key_env="sk-abc=1", concurrency=0)
    msg = str(e.value)
    assert "--base-url" in msg and "--model" in msg and "--api-key-env" in msg and "--concurrency" in msg


def test_public_url_drops_credentials_and_query():
    assert public_url("https://user:secret@api.example.org:8443/v1/?key=abc#x") == "https://api.example.org:8443/v1"


def test_retry_after_forms():
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_rate_limiter_spaces_requests_and_tokens():
    now = [0.0]
    lim = RateLimiter(rpm=60, tpm=600, clock=lambda: now[0])
    # Full buckets: 60 requests and 600 tokens are available at once.
    assert lim.wait_time(100) == 0
    lim._req, lim._tok = 0.0, 0.0
    assert lim.wait_time(10) == pytest.approx(1.0)  # 1 request per second; 10 tokens also take 1 s at 10/s
    assert lim.wait_time(50) == pytest.approx(5.0)
    now[0] = 5.0
    assert lim.wait_time(50) == 0
    lim.pause(7)
    assert lim.wait_time(1) == pytest.approx(7.0)


def test_rate_limiter_acquire_paces_real_time():
    async def go():
        lim = RateLimiter(rpm=600, tpm=None)  # 10 per second
        lim._req = 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(3):
            await lim.acquire(1)
        return loop.time() - t0

    assert asyncio.run(go()) >= 0.28


def test_case_report_inputs_fail_clearly(tmp_path: Path):
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"no column 'patient'.*--text-column"):
        read_case_reports(csv_file)
    empty = tmp_path / "e.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match="empty"):
        read_case_reports(empty)
    latin = tmp_path / "l.csv"
    latin.write_bytes("patient\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(UsageError, match="not valid UTF-8"):
        read_case_reports(latin)
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(UsageError, match="binary"):
        read_case_reports(binary)
    blanks = tmp_path / "blank.csv"
    blanks.write_text("patient\n\n  \n", encoding="utf-8")
    with pytest.raises(UsageError):
        read_case_reports(blanks)
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "a.txt").write_text("Case A.", encoding="utf-8")
    (folder / "b.txt").write_text("", encoding="utf-8")
    got = read_case_reports(folder)
    assert [r.source_id for r in got.reports] == ["a.txt"] and got.problems == ["b.txt: empty"]


def test_result_log_cuts_a_torn_line_and_resumes(tmp_path: Path):
    path = tmp_path / "s.results.jsonl"
    ok = {"id": "a", "status": "ok", "text": "x", "meta": {}}
    failed = {"id": "b", "status": "failed", "error": "HTTP 500", "meta": {}}
    path.write_text(json.dumps(ok) + "\n" + json.dumps(failed) + "\n" + '{"id": "c", "status": "o', encoding="utf-8")
    log = ResultLog(path)
    assert log.done == {"a"} and log.failed == {"b"} and log.repaired_bytes > 0
    log.append({"id": "b", "status": "ok", "text": "y", "meta": {}})
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and all(json.loads(ln) for ln in lines)
    again = ResultLog(path)
    assert again.done == {"a", "b"} and not again.failed
    assert [r["id"] for r in again.records()] == ["a", "b"] and list(again.records("failed")) == []
    again.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_result_log_tells_requests_cut_off_by_a_kill_from_finished_ones(tmp_path: Path):
    path = tmp_path / "s.results.jsonl"
    log = ResultLog(path, durable=False)
    for rid in ("a", "b", "c", "d"):
        log.mark_sent(rid)
    log.append({"id": "a", "status": "ok", "text": "x", "meta": {}})
    log.append({"id": "b", "status": "failed", "error": "HTTP 500", "meta": {}})
    log.mark_sent("b")  # a failed request sent again, then the process dies: b and c, d were in flight
    log.close()
    again = ResultLog(path)
    assert again.done == {"a"} and again.failed == {"b"} and again.interrupted == {"b", "c", "d"}
    assert [r["id"] for r in again.records()] == ["a"] and [r["id"] for r in again.records("failed")] == ["b"]
    again.append({"id": "c", "status": "ok", "text": "y", "meta": {}})
    assert again.interrupted == {"b", "d"}
    again.close()
    assert ResultLog(path).interrupted == {"b", "d"}


def test_result_log_sync_puts_every_line_on_disk_with_shared_syncs(tmp_path: Path, monkeypatch):
    path = tmp_path / "s.results.jsonl"
    log = ResultLog(path)
    synced_sizes: list[int] = []
    real = os.fdatasync

    def slow_sync(fd: int) -> None:
        size = os.fstat(fd).st_size  # everything written before the sync started is covered by it
        time.sleep(0.02)
        real(fd)
        synced_sizes.append(size)

    monkeypatch.setattr(os, "fdatasync", slow_sync)

    async def one(i: int) -> None:
        await asyncio.sleep(0.001 * (i % 5))
        log.append({"id": f"r{i}", "status": "ok", "text": "t" * 50, "meta": {}})
        end = path.stat().st_size  # this record's last byte (appends are serialised by the event loop)
        await log.sync()
        assert synced_sizes and max(synced_sizes) >= end  # returned only once a sync covered its line

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(40)))

    asyncio.run(main())
    log.close()
    assert 1 <= len(synced_sizes) < 40  # syncs were shared (group commit), not one per record
    assert len(ResultLog(path).done) == 40
