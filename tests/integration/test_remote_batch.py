"""``asclepius batch --endpoint`` against llama-cpp-python's REAL server running the demo model on loopback.

One server per module (restarted on the same port once, for the resume test). The batch runs as a real
``asclepius`` process, so the network namespace and its ``calls_endpoint`` exemption are in force.

llama-cpp-python's server must be started with ``--interrupt_requests False``: by default a new request
interrupts the one being streamed, which then ends early *as if it had stopped normally* (measured here:
answers cut to one token with ``finish_reason`` "stop"). With concurrency > 1 that silently truncates
answers, so docs/cli.md (Running a batch on a GPU server) says so too.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.types import AskRequest, SamplingParams

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["What medication is the patient taking?", "How old is the patient?", "What is the diagnosis?"]
MAX_TOKENS = "16"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` with the demo model on 127.0.0.1:port (started and stopped here)."""

    def __init__(self, model_path: str, port: int, logdir: Path) -> None:
        self.model_path, self.port, self.logdir = model_path, port, logdir
        self.url = f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.logdir / f"server-{time.time_ns()}.log").open("wb")
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2", "--n_threads_batch", "2",
                "--model_alias", "demo", "--interrupt_requests", "False"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {self.proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start in 120 s")
            time.sleep(0.3)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(demo_model, tmp_path_factory) -> Iterator[LlamaServer]:
    s = LlamaServer(demo_model.path, _free_port(), tmp_path_factory.mktemp("llama-server"))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def items(shared_data, tmp_path_factory) -> Path:
    """Two short MTS-Dialog note sections x three questions, as a batch CSV with ids (short: prompt eval is
    most of the time on a 2-core machine)."""
    with (shared_data / "notes" / "mts_dialog_ValidationSet.csv").open(encoding="utf-8", newline="") as fh:
        notes = [r["section_text"] for r in csv.DictReader(fh) if 300 <= len(r["section_text"]) <= 600][:2]
    path = tmp_path_factory.mktemp("remote-batch") / "items.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        for n, note in enumerate(notes):
            for q, question in enumerate(QUESTIONS):
                w.writerow([f"n{n}q{q}", note, "qa", question])
    return path


def _batch(items: Path, db: Path, url: str, *extra: str, wait: bool = True):  # type: ignore[no-untyped-def]
    argv = [sys.executable, "-m", "app.cli.main", "batch", str(items), "--endpoint", url, "--endpoint-model",
            "demo", "--prompt-style", "plain-qa", "--max-tokens", MAX_TOKENS, "--db", str(db), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASCLEPIUS_HOME": str(db.parent / "home")}
    if wait:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _runs(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM runs ORDER BY id").fetchall()
    finally:
        con.close()


def _answered(db: Path) -> list[sqlite3.Row]:
    return [r for r in _runs(db) if r["status"] == "finished" and r["finish_reason"] in ("stop", "length")]


@pytest.mark.timeout(900)
def test_batch_against_the_server_matches_the_local_engine_and_logs_provenance(server, items, demo_model, tmp_path):
    db = tmp_path / "log.db"
    r = _batch(items, db, server.url, "--concurrency", "4", "--output", str(tmp_path / "out.jsonl"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"batch connects to {server.url} only" in r.stderr  # outside the namespace, this URL alone
    runs = _runs(db)
    assert len(runs) == 6 and len(_answered(db)) == 6
    for run in runs:
        assert (run["endpoint"], run["served_model"], run["reported_model"]) == (server.url, "demo", "demo")
        assert run["engine"] == "openai-compatible /v1/completions" and run["prompt_style"] == "plain-qa@1"
        assert run["grounding"] is not None or not run["answer"]  # the same grounding check as local runs
        assert (run["top_k"], run["temperature"], run["max_tokens"]) == (0, 0.0, int(MAX_TOKENS))
    show = [sys.executable, "-m", "app.cli.main", "log", "show", str(runs[0]["id"]), "--db", str(db)]
    shown = subprocess.run(
        show, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert f"endpoint:             {server.url}" in shown.stdout and "reported_model:       demo" in shown.stdout
    # The same prompt, greedy, on the same llama.cpp build: the server's answers are the local engine's. The local
    # engine is opened as the server is (2,048-token context, one sequence, no kept note states): the session's
    # shared engine has a 9-sequence context and states left by earlier tests, which can change the floating-point
    # reduction order and so a greedy token (seen once in a whole-suite run: 0 of 6 equal).
    from app.core.config import EngineConfig
    from app.core.engine import LlamaCppEngine

    notes = {r["id"]: r for r in csv.DictReader(items.open(encoding="utf-8"))}
    by_instr = {}
    for run in runs:
        con = sqlite3.connect(db)
        text = con.execute("SELECT text FROM notes WHERE id = ?", (run["note_id"],)).fetchone()[0]
        con.close()
        by_instr[(text, run["instruction"])] = run["answer"]
    same = 0
    cfg = EngineConfig(n_threads=2, n_ctx=2048, parallel=1, kv_cache_mb=0, kv_disk_mb=0)
    with LlamaCppEngine(demo_model, cfg) as local_engine:
        for row in notes.values():
            sampling = SamplingParams(max_tokens=int(MAX_TOKENS))
            req = AskRequest(row["note"], "qa", row["instruction"], sampling, "plain-qa")
            local = local_engine.ask(req).answer.lstrip()
            same += local == by_instr[(row["note"].strip(), row["instruction"])]
    assert same >= 5, f"only {same} of 6 remote answers equal the local engine's"


@pytest.mark.timeout(900)
def test_server_killed_mid_batch_stops_with_exit_8_and_resumes_with_nothing_lost_or_duplicated(server, items, tmp_path):
    db = tmp_path / "log.db"
    proc = _batch(items, db, server.url, "--concurrency", "2", "--endpoint-attempts", "2", wait=False)
    try:
        deadline = time.monotonic() + 400
        while True:  # let at least two answers land, then pull the plug
            try:
                if db.exists() and len(_answered(db)) >= 2:
                    break
            except sqlite3.OperationalError:  # the batch is still creating the log's tables
                pass
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no answer within 400 s"
            time.sleep(0.2)
        server.kill()
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server.proc is None or server.proc.poll() is not None:
            server.start()  # a new server on the same address, for the resume and for later tests
    first = _runs(db)
    done_first = {r["resume_key"]: r["uuid"] for r in _answered(db)}
    if len(done_first) == 6:
        pytest.skip("the batch finished before the server was killed (machine too fast for this check)")
    assert proc.returncode == 8, err[-3000:]
    assert "inference server" in err and "run the same command again" in err and "Traceback" not in err
    failed = [r for r in first if r["finish_reason"] == "error"]
    assert failed, "the item that met the dead server is recorded as failed"
    assert all(r["endpoint"] == server.url and server.url in r["error"] for r in failed)
    assert not [r for r in first if r["status"] == "started"], "no run is left looking alive"

    r = _batch(items, db, server.url, "--concurrency", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{len(done_first)} skipped (already done)" in r.stderr
    answered = _answered(db)
    per_item = Counter(run["resume_key"] for run in answered)
    assert len(per_item) == 6 and set(per_item.values()) == {1}, "every item answered exactly once"
    assert {k: u for k, u in ((run["resume_key"], run["uuid"]) for run in answered) if k in done_first} == done_first
    assert len(_runs(db)) == len(first) + (6 - len(done_first))  # only the missing items were sent again
