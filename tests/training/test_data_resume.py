"""A real ``asclepius data notes`` process killed with SIGKILL mid-run, then started again: only the missing
requests are sent, no reply that was received is asked for again, no result is duplicated or lost. The only
requests the server sees twice are those the killed run had marked ``sent`` and got no reply for; the resumed
run counts them as "re-sent after an interruption"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.training.fake_server import FaultServer
from tests.training.test_data_faults import case_no, write_cases

ROOT = Path(__file__).resolve().parents[2]
N = 120
CONCURRENCY = 4


def _last_status(path: Path) -> dict[str, str]:
    last: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            rec = json.loads(line)
            if last.get(rec["id"]) != "ok":
                last[rec["id"]] = rec["status"]
    return last


def _ok_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.endswith("\n"):
            rec = json.loads(line)
            if rec["status"] == "ok":
                out.append(rec)
    return out


def _kill_when(argv: list[str], results: Path, status: str) -> None:
    """Start ``argv``; once a third of the results are in, SIGKILL it at a moment when some id's last line
    is ``status`` (the process is frozen with SIGSTOP to look, and let run a few ms more otherwise)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(_ok_lines(results)) >= N // 3:
            break
        time.sleep(0.02)
    while True:
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGSTOP)
        if any(st == status for st in _last_status(results).values()):
            break
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_sigkill_then_resume_sends_only_what_is_missing(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", N)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FaultServer(delay_s=0.05) as srv:
        argv = [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--id-column", "patient_id",
                "--base-url", srv.base_url, "--model", "m", "--out", str(out), "--concurrency", str(CONCURRENCY),
                "--max-tokens", "16", "--no-progress"]  # fmt: skip
        results = out / "notes.results.jsonl"
        # Kill only at a moment when requests are in flight (marked sent, no reply): what a kill cuts off.
        _kill_when(argv, results, "sent")
        assert srv.wait_idle(60), "the server still holds the killed run's connections"  # all it sent is counted
        seen_at_kill = Counter(srv.seen)
        recorded = {r["meta"]["source_id"] for r in _ok_lines(results)}
        assert N // 3 <= len(recorded) < N
        in_flight_ids = {rid for rid, st in _last_status(results).items() if st == "sent"}
        assert 1 <= len(in_flight_ids) <= CONCURRENCY  # marked sent, no reply: what a kill cuts off

        again = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        seen_final = Counter(srv.seen)

    ok = _ok_lines(results)
    assert len(ok) == N and len({r["id"] for r in ok}) == N
    source = {r["id"]: r["meta"]["source_id"] for r in ok}
    in_flight = {source[rid] for rid in in_flight_ids}
    resent = {case_no(p): seen_final[p] - seen_at_kill[p] for p in seen_final if seen_final[p] > seen_at_kill[p]}
    # No reply that was received is asked for again; everything not recorded is sent exactly once more.
    assert not {f"p{i}" for i in resent} & recorded
    assert {f"p{i}" for i in resent} == {f"p{i}" for i in range(N)} - recorded
    assert set(resent.values()) == {1}
    # The server saw twice only requests the killed run had marked sent and got no reply for.
    twice = {f"p{case_no(p)}" for p, c in seen_final.items() if c > 1}
    assert twice <= in_flight
    assert sum(seen_final.values()) - N == len(twice) <= len(in_flight) <= CONCURRENCY
    assert f"{len(in_flight)} re-sent after an interruption" in again.stdout
    rows = [json.loads(line) for line in (out / "notes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["source_id"] for r in rows) == sorted(f"p{i}" for i in range(N))
    report = json.loads((out / "notes.report.json").read_text(encoding="utf-8"))
    assert len(report["runs"]) == 1  # the killed run never reached its report; the resumed one did
    assert report["runs"][0]["usage"]["requests"] == N - len(recorded)
    assert report["runs"][0]["usage"]["resent_after_interruption"] == len(in_flight)


def test_sigterm_waits_for_requests_in_flight_so_resume_duplicates_nothing(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", N)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FaultServer(delay_s=0.1) as srv:
        argv = [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--base-url", srv.base_url,
                "--model", "m", "--out", str(out), "--concurrency", "8", "--max-tokens", "16",
                "--no-progress"]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        results = out / "notes.results.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(_ok_lines(results)) >= N // 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "waiting for" in err and "every reply recorded" in err
        recorded = len(_ok_lines(results))
        assert N // 3 <= recorded < N
        again = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert sum(srv.seen.values()) == N and set(srv.seen.values()) == {1}  # not one request sent twice
    assert len(_ok_lines(results)) == N


def test_background_sigkill_then_resume_fetches_what_the_server_accepted(tmp_path: Path):
    """With ``--background`` a kill cuts off only requests whose response id had not come back yet: every
    request the server had accepted (last line ``submitted``) is fetched by its id on resume, not sent again,
    and the server generated each of them once."""
    cases = write_cases(tmp_path / "cases.csv", N)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FaultServer(delay_s=0.2) as srv:
        argv = [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--id-column", "patient_id",
                "--base-url", srv.base_url, "--model", "m", "--out", str(out), "--concurrency", str(CONCURRENCY),
                "--max-tokens", "16", "--no-progress", "--background"]  # fmt: skip
        results = out / "notes.results.jsonl"
        _kill_when(argv, results, "submitted")  # when the server holds responses the run has not fetched yet
        last = _last_status(results)
        submitted = {rid for rid, st in last.items() if st == "submitted"}
        no_id = {rid for rid, st in last.items() if st == "sent"}
        assert 1 <= len(submitted) <= CONCURRENCY
        text = results.read_text(encoding="utf-8")
        lines = [json.loads(x) for x in text.splitlines(keepends=True) if x.endswith("\n")]
        response_of = {r["id"]: r["response_id"] for r in lines if r["status"] == "submitted" and r["id"] in submitted}
        recorded = {r["meta"]["source_id"] for r in _ok_lines(results)}
        again = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        seen_final = Counter(srv.seen)
        fetched = dict(srv.polls)

    ok = _ok_lines(results)
    assert len(ok) == N and len({r["id"] for r in ok}) == N
    source = {r["id"]: r["meta"]["source_id"] for r in ok}
    twice = {f"p{case_no(p)}" for p, c in seen_final.items() if c > 1}
    assert not twice & {source[rid] for rid in submitted}  # accepted before the kill: never sent again
    assert twice <= {source[rid] for rid in no_id}  # at most those whose id had not come back
    assert sum(seen_final.values()) == N + len(twice)
    assert not twice & recorded
    resumed = {r["id"]: r for r in ok if r["id"] in submitted}
    assert len(resumed) == len(submitted)
    assert all(r["response_id"] == response_of[i] and fetched.get(r["response_id"]) for i, r in resumed.items())
    assert f"{len(submitted)} replies fetched for an earlier run's requests" in again.stdout
    report = json.loads((out / "notes.report.json").read_text(encoding="utf-8"))
    assert report["runs"][0]["usage"]["recovered_after_interruption"] == len(submitted)
    assert report["runs"][0]["usage"]["resent_after_interruption"] == len(no_id)
