"""The pipeline against a fault-injecting HTTP server on loopback: every item done or recorded failed, no
duplicates, retries counted; failed items retried on the next run and never passed to the next stage."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import UsageError
from tests.training.fake_server import FaultServer
from training.data import stages
from training.data.stage_runner import StageOptions
from training.endpoint.settings import ChatSettings
from training.runner import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ("429", "500", "drop", "timeout", "malformed", "truncated", "empty")
CASE = re.compile(r"case #(\d+)")


def write_cases(path: Path, n: int, long_one: int | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "patient"])
        for i in range(n):
            text = f"Case #{i}: a {30 + i}-year-old woman admitted with fever and cough; discharged on day {i % 7 + 2}."
            if i == long_one:
                text += " More history." * 2000
            w.writerow([f"p{i}", text])
    return path


def case_no(prompt: str) -> int:
    m = CASE.search(prompt.lower())
    assert m, "every test prompt names its case"
    return int(m.group(1))


def cfg(server: FaultServer, **kw) -> ChatSettings:
    base = {"concurrency": 4, "timeout_s": 3.0, "max_attempts": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    return ChatSettings(server.base_url, "fake-model", **{**base, **kw})


def notes_rows(out: Path) -> list[dict]:
    return list(read_jsonl(out / "notes.jsonl"))


def test_every_fault_is_retried_or_recorded_and_nothing_is_duplicated(tmp_path: Path):
    n = 2 * len(FAULTS) + 2
    broken = {n - 1, n - 2}  # these fail on every attempt in the first run

    def plan(prompt: str, seen: int) -> str:
        i = case_no(prompt)
        if i in broken:
            return "500"
        return FAULTS[i % len(FAULTS)] if seen == 1 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", n), id_column="patient_id")
    out = tmp_path / "out"
    with FaultServer(plan, retry_after="0", hang_s=3) as srv:
        res = stages.run_notes(StageOptions(out, cfg(srv), max_tokens=64, progress=False), src)
        u = res.usage
        assert u is not None
        assert (u.requests, u.succeeded, u.failed) == (n, n - 2, 2)
        # one retry per fault item, and two retries for each always-failing item (3 attempts)
        assert u.retries == (n - 2) + 2 * 2 and u.attempts == n + u.retries
        assert u.rate_limited == 2 and u.timeouts == 2 and u.malformed >= 4 and u.connection_errors >= 2
        assert u.server_errors == 2 + 2 * 3
        assert "retries" in res.summary() and f"{u.retries} retries" in res.summary()
        rows = notes_rows(out)
        assert sorted(r["source_id"] for r in rows) == sorted(f"p{i}" for i in range(n) if i not in broken)
        assert len({r["id"] for r in rows}) == len(rows)
        report = json.loads((out / "notes.report.json").read_text())
        assert report["counts"]["failed"] == 2 and report["usage_total"]["retries"] == u.retries
        failed = [r for r in read_jsonl(out / "notes.results.jsonl") if r["status"] == "failed"]
        assert {r["meta"]["source_id"] for r in failed} == {f"p{i}" for i in broken}
        assert all(r["error"].startswith("HTTP 500") for r in failed)
        seen_first = dict(srv.seen)

        # The endpoint recovers: the next run sends only the two failed items.
        broken.clear()
        res2 = stages.run_notes(StageOptions(out, cfg(srv), max_tokens=64, progress=False), src)
        assert res2.usage is not None and (res2.usage.requests, res2.usage.succeeded) == (2, 2)
        assert res2.already_done == n - 2
        new = {p: c - seen_first.get(p, 0) for p, c in srv.seen.items() if c != seen_first.get(p, 0)}
        assert sorted(case_no(p) for p in new) == [n - 2, n - 1]
        assert all(c == 1 for c in new.values())
    assert len(notes_rows(out)) == n


def test_retry_after_is_honoured(tmp_path: Path):
    def plan(prompt: str, seen: int) -> str:
        return "429" if seen == 1 else "ok"

    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 1))
    with FaultServer(plan, retry_after="1") as srv:
        res = stages.run_notes(StageOptions(tmp_path / "out", cfg(srv), max_tokens=16, progress=False), src)
        times = [t for t, _ in srv.arrivals]
    assert res.usage is not None and res.usage.rate_limited == 1 and res.usage.succeeded == 1
    assert len(times) == 2 and times[1] - times[0] >= 0.95  # the backoff alone would be under 0.05 s


def test_failed_items_never_reach_the_next_stage(tmp_path: Path):
    out = tmp_path / "out"
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 4))
    questions = iter(
        [
            "When did the fever resolve?",
            "Which antibiotic was chosen, and why?",
            "List every diagnosis in one line each.",
            "Expand the abbreviations used here.",
            "Summarize this stay briefly.",
        ]
    )

    def responder(prompt: str) -> str:
        if "Please output solely a question." in prompt:
            return next(questions)
        if prompt.endswith("Response:"):
            return "An answer."
        return f"Discharge summary for case #{case_no(prompt)}. Fever resolved."

    def plan(prompt: str, seen: int) -> str:
        # case #0's instruction request always fails; everything else is served
        return "500" if "Please output solely a question." in prompt and "case #0" in prompt else "ok"

    with FaultServer(plan, responder) as srv:
        opts = StageOptions(out, cfg(srv), max_tokens=32, progress=False)
        stages.run_notes(opts, src)
        ins = stages.run_instructions(opts)
        assert ins.usage is not None and ins.usage.failed == 1
        rows = list(read_jsonl(out / "instructions.jsonl"))
        assert len(rows) == 3 and all("case #0" not in r["note"] for r in rows)
        ans = stages.run_answers(opts)
        assert ans.planned == 3
        answer_rows = list(read_jsonl(out / "answers.jsonl"))
        assert {r["instruction_id"] for r in answer_rows} == {r["id"] for r in rows}
        assert all(set(r) >= {"id", "note_id", "note", "task", "question", "answer"} for r in answer_rows)


def test_case_report_over_the_context_is_skipped_and_reported(tmp_path: Path):
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 3, long_one=1), id_column="patient_id")
    with FaultServer() as srv:
        res = stages.run_notes(StageOptions(tmp_path / "out", cfg(srv), progress=False), src)
        sent = {case_no(p) for p in srv.seen}
    assert sent == {0, 2}
    assert res.report["counts"]["skipped"] == 1
    assert res.report["skipped"][0].startswith("p1: over the model's context")


def test_dry_run_sends_nothing_and_a_changed_model_is_refused(tmp_path: Path):
    src = stages.NotesInput(write_cases(tmp_path / "cases.csv", 5))
    out = tmp_path / "out"
    with FaultServer() as srv:
        dry = stages.run_notes(StageOptions(out, cfg(srv), max_tokens=100, dry_run=True, progress=False), src)
        assert not srv.seen and not out.exists()
        assert dry.planned == 5 and dry.estimated_tokens > 5 * 100 and "5 to send" in dry.summary()
        stages.run_notes(StageOptions(out, cfg(srv), max_tokens=100, progress=False), src)
        other = ChatSettings(srv.base_url, "another-model")
        with pytest.raises(UsageError, match="model 'fake-model' -> 'another-model'"):
            stages.run_notes(StageOptions(out, other, progress=False), src)


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args], capture_output=True, text=True, env=e, cwd=ROOT, timeout=120
    )


def _notes_argv(cases: Path, base_url: str, out: Path, *extra: str) -> list[str]:
    """``asclepius data notes`` against ``base_url`` (served model ``m``), no progress bar."""
    return ["data", "notes", str(cases), "--base-url", base_url, "--model", "m", "--out", str(out), *extra,
            "--no-progress"]  # fmt: skip


def test_cli_uses_the_key_but_never_shows_or_stores_it(tmp_path: Path):
    secret = "sk-test-DO-NOT-LEAK-4711"
    cases = write_cases(tmp_path / "cases.csv", 2)
    out = tmp_path / "out"
    with FaultServer() as srv:
        argv = _notes_argv(cases, srv.base_url, out, "--api-key-env", "MY_KEY", "--max-tokens", "16")
        r = _cli(argv, {"MY_KEY": secret})
        assert r.returncode == 0, r.stderr
        assert srv.authorization == {f"Bearer {secret}": 2}
    assert f"data connects to {srv.base_url} only" in r.stderr and "$MY_KEY set" in r.stderr
    assert secret not in r.stdout + r.stderr
    for p in out.rglob("*"):
        assert secret.encode() not in p.read_bytes(), p
        assert p.stat().st_mode & 0o777 == 0o600
    assert out.stat().st_mode & 0o777 == 0o700


def test_cli_refused_key_is_a_clear_error(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", 2)

    class Refuse(FaultServer):
        async def _fault(self, fault, prompt, req, writer):  # type: ignore[override]
            self._send(writer, 401, {"error": {"message": "invalid api key"}})
            await writer.drain()
            return True

    with Refuse() as srv:
        r = _cli(_notes_argv(cases, srv.base_url, tmp_path / "o"))
    assert r.returncode == 2
    assert "refused the request (HTTP 401" in r.stderr and "$OPENAI_API_KEY" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_bad_input_fails_before_any_request(tmp_path: Path):
    bad = tmp_path / "cases.csv"
    bad.write_text("id,text\n1,hello\n", encoding="utf-8")
    with FaultServer() as srv:
        r = _cli(["data", "notes", str(bad), "--base-url", srv.base_url, "--model", "m", "--out", str(tmp_path / "o")])
        assert not srv.seen
    assert r.returncode == 2 and "no column 'patient'" in r.stderr


def test_data_commands_reach_only_the_base_url(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", 1)
    code = (
        "import socket, sys\n"
        "import training.data.stages as st\n"
        "other = socket.socket(); other.bind(('127.0.0.1', 0)); other.listen()\n"
        "def probe(opts, src):\n"
        "    socket.create_connection(('127.0.0.1', int(sys.argv[2].split(':')[2].split('/')[0])), 2).close()\n"
        "    print('base url reached')\n"
        "    try:\n"
        "        socket.create_connection(other.getsockname(), timeout=2)\n"
        "    except PermissionError as e:\n"
        "        print('refused:', e)\n"
        "    raise SystemExit(0)\n"
        "st.run_notes = probe\n"
        "from app.cli.main import main\n"
        "main(['data', 'notes', sys.argv[1], '--base-url', sys.argv[2], '--model', 'm', '--out', sys.argv[3]])\n"
    )
    with FaultServer() as srv:
        r = subprocess.run(
            [sys.executable, "-c", code, str(cases), srv.base_url, str(tmp_path / "out")],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
        )  # fmt: skip
    assert "base url reached" in r.stdout, r.stderr
    assert f"may reach {srv.base_url} only" in r.stdout and "refused: network access is disabled" in r.stdout


def test_dry_run_names_no_endpoint_and_stays_offline(tmp_path: Path):
    cases = write_cases(tmp_path / "cases.csv", 3)
    with FaultServer() as srv:
        r = _cli(["data", "notes", str(cases), "--base-url", srv.base_url, "--model", "m", "--out",
                  str(tmp_path / "o"), "--dry-run"])  # fmt: skip
        assert not srv.seen
    assert r.returncode == 0, r.stderr
    assert "3 requests planned" in r.stdout and "connects to" not in r.stderr
