"""``data`` and ``judge`` against a misbehaving server (issue #21): every wait ends within its deadline, an
answer stops at its token limit, and a stage whose requests failed exits non-zero with its summary.

The commands run as ``asclepius`` subprocesses (the audit hook a command installs stays in its process) with a
wall-clock bound far above the deadline they are given: a hang fails the test, a slow machine does not.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from app.core.errors import EndpointError
from tests.training.fake_server import FaultServer
from tests.training.test_data_faults import _cli as data_cli
from tests.training.test_data_faults import case_no, write_cases

BOUND_S = 30.0
"""The whole command's bound for a 5 s deadline: the deadline, a retry's backoff and interpreter start-up."""


def _cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = data_cli(list(args))
    return r, time.monotonic() - t0


def _notes(srv: FaultServer, cases: Path, out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    return _cli("data", "notes", str(cases), "--id-column", "patient_id", "--base-url", srv.base_url, "--model", "m",
                "--out", str(out), "--no-progress", "--max-attempts", "1", *extra)  # fmt: skip


def _answers(path: Path) -> Path:
    row = {"note": "Pt on aspirin 81 mg.", "question": "Which drug?",
           "answers": [{"model": "a", "answer": "aspirin"}, {"model": "b", "answer": "none"}]}  # fmt: skip
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def test_a_stage_with_failed_requests_exits_non_zero_after_its_summary(tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "cases.csv", 3)
    broken = {1}
    with FaultServer(plan=lambda prompt, n: "500" if case_no(prompt) in broken else "ok") as srv:
        some, _ = _notes(srv, cases, tmp_path / "some")
        assert some.returncode == EndpointError.exit_code, some.stderr
        assert "notes: 2 done, 1 failed of 3" in some.stdout and "1 of 3 requests failed (recorded)" in some.stderr
        assert "Traceback" not in some.stderr
        broken.clear()  # the server is well again: the rerun retries the failed one and succeeds
        again, _ = _notes(srv, cases, tmp_path / "some")
        assert again.returncode == 0, again.stderr
        assert sum(srv.seen.values()) == 4
    with FaultServer(plan=lambda prompt, n: "500") as srv:
        every, _ = _notes(srv, cases, tmp_path / "every")
    assert every.returncode == EndpointError.exit_code, every.stderr
    assert "all 3 requests failed (recorded); run the same command again" in every.stderr
    # ... and says what failed: the error of each kind of failure, with its count (all of them in the report)
    assert "  3 failed with: HTTP 500" in every.stderr, every.stderr
    report = json.loads((tmp_path / "every" / "notes.report.json").read_text())
    assert list(report["failures"].values()) == [3] and next(iter(report["failures"])).startswith("HTTP 500")


def test_a_stopped_stage_still_counts_its_token_usage(tmp_path: Path) -> None:
    """A stage stopped part-way (here the endpoint refuses the key after two replies) wrote no report: the
    tokens it had spent were counted nowhere."""
    cases = write_cases(tmp_path / "cases.csv", 4)
    with FaultServer(plan=lambda prompt, n: "401" if case_no(prompt) >= 2 else "ok") as srv:
        r, _ = _notes(srv, cases, tmp_path / "out", "--concurrency", "1")
    assert r.returncode == 2 and "refused the request" in r.stderr, r.stderr
    assert "notes (stopped): 2 done" in r.stderr
    report = json.loads((tmp_path / "out" / "notes.report.json").read_text())
    (run,) = report["runs"]
    assert "refused the request (HTTP 401" in run["interrupted"]
    assert run["usage"]["succeeded"] == 2 and run["usage"]["completion_tokens"] > 0
    assert report["usage_total"]["completion_tokens"] == run["usage"]["completion_tokens"]
    assert report["model"] == "m" and report["stage"] == "notes"


def test_the_judge_exits_non_zero_when_every_request_failed(tmp_path: Path) -> None:
    answers = _answers(tmp_path / "answers.jsonl")
    with FaultServer(plan=lambda prompt, n: "500") as srv:
        r, _ = _cli("judge", "--answers", str(answers), "--base-url", srv.base_url, "--model", "j", "--out",
                    str(tmp_path / "out"), "--no-progress", "--max-attempts", "1")  # fmt: skip
    assert r.returncode == EndpointError.exit_code, r.stderr
    assert "1 requests failed (retried next run)" in r.stdout and "all 1 requests failed" in r.stderr


def test_a_stream_that_trickles_forever_ends_at_the_deadline(tmp_path: Path) -> None:
    answers = _answers(tmp_path / "answers.jsonl")
    with FaultServer(plan=lambda prompt, n: "stream_trickle") as srv:
        r, took = _cli("judge", "--answers", str(answers), "--base-url", srv.base_url, "--model", "j", "--out",
                       str(tmp_path / "out"), "--no-progress", "--stream", "--timeout", "5",
                       "--max-attempts", "2")  # fmt: skip
    assert took < BOUND_S, f"took {took:.0f} s"
    assert r.returncode == EndpointError.exit_code, r.stderr
    assert "2 HTTP requests (1 retries" in r.stdout and "2 timeouts" in r.stdout


def test_a_body_that_trickles_forever_ends_at_the_deadline(tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "cases.csv", 1)
    with FaultServer(plan=lambda prompt, n: "trickle") as srv:
        r, took = _notes(srv, cases, tmp_path / "out", "--timeout", "5")
    assert took < BOUND_S, f"took {took:.0f} s"
    assert r.returncode == EndpointError.exit_code and "1 timeouts" in r.stdout, r.stdout + r.stderr


def test_a_stream_past_its_max_tokens_is_cut_there(tmp_path: Path) -> None:
    cases = write_cases(tmp_path / "cases.csv", 1)
    out = tmp_path / "out"
    with FaultServer(plan=lambda prompt, n: "stream_forever") as srv:
        r, took = _notes(srv, cases, out, "--stream", "--timeout", "5", "--max-tokens", "16")
    assert took < BOUND_S, f"took {took:.0f} s"
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "notes.report.json").read_text(encoding="utf-8"))
    assert report["counts"]["cut_at_max_tokens"] == 1 and report["counts"]["notes"] == 1
    (row,) = [json.loads(line) for line in (out / "notes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row["note"] == " ".join(["word"] * 16) and row["finish_reason"] == "length"
