"""End to end against a real OpenAI-compatible server: llama-cpp-python's own server on 127.0.0.1 running
the embedded demo model. notes -> instructions -> answers -> build, then the judge, through the CLI.

The demo model (Gemma 3 270M base) is not instruction-tuned, so what it writes is poor; this checks the
pipeline's behaviour (every request matched by id, outputs traceable, filters applied, datasets written),
not the quality of the text. Three notes, a small context and short completion limits (16 to 32 tokens)
keep it to about half a minute on 2 cores; one server serves the whole module. The server runs on one
thread: with two on a shared 2-core machine, llama.cpp's threads spin at each step's barrier while the
other is descheduled, and a token took up to 1.5 s instead of ~20 ms (the server's own timings).
The answers stage streams its replies (``--stream``): llama.cpp's server sends server-sent events ending
in ``[DONE]`` and no usage chunk, so the usage of that stage is counted from the stream.

The server uses llama-cpp-python's ``alpaca`` chat format: with the GGUF's own Gemma chat template the base
model tends to repeat the prompt's first line ("You are an intelligent clinical model."), and the reference
filter then (rightly) drops every row, leaving nothing to build. Sampling is seeded (``--seed``) and
requests go one at a time (``--concurrency 1``), so a run is repeatable on one machine.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.data.filters import reference_filter

ROOT = Path(__file__).resolve().parents[2]
N_NOTES = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(demo_model, tmp_path_factory) -> Iterator[str]:
    port = _free_port()
    logf = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w")
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", demo_model.path, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1",
            "--chat_format", "alpaca", "--model_alias", "demo", "--seed", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}; see {logf.name}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start in 120 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "app.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=540,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.timeout(900)
def test_pipeline_and_judge_against_llama_cpp_server(llama_server, shared_data, tmp_path):
    # Three short clinical note sections from MTS-Dialog stand in for case reports.
    src = shared_data / "notes" / "mts_dialog_ValidationSet.csv"
    with src.open(encoding="utf-8", newline="") as fh:
        texts = [r["section_text"] for r in csv.DictReader(fh) if 150 <= len(r["section_text"]) <= 500][:N_NOTES]
    cases = tmp_path / "cases.csv"
    with cases.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ID", "section_text"])
        w.writerows([f"mts-{i}", t] for i, t in enumerate(texts))
    out = tmp_path / "out"
    # One request at a time: the server is serial anyway, and a fixed order keeps its prompt cache, and so the
    # seeded samples, the same from run to run (with several in flight the order, and the text, varies).
    common = ["--base-url", llama_server, "--model", "demo", "--out", str(out), "--seed", "3", "--no-progress",
              "--concurrency", "1"]  # fmt: skip

    r = _cli("data", "notes", str(cases), "--text-column", "section_text", "--id-column", "ID",
             "--context-tokens", "1024", "--max-tokens", "32", *common)  # fmt: skip
    assert f"data connects to {llama_server} only" in r.stderr
    notes = _rows(out / "notes.jsonl")
    notes_report = json.loads((out / "notes.report.json").read_text())
    assert notes_report["counts"]["failed"] == 0
    assert len(notes) + notes_report["counts"]["empty_replies"] == N_NOTES
    assert notes, "the demo model wrote no note at all"
    usage = notes_report["usage_total"]
    assert usage["prompt_tokens"] > 100 * N_NOTES and usage["completion_tokens"] > 0  # the server's own counts

    _cli("data", "instructions", "--max-tokens", "16", *common)
    ins = _rows(out / "instructions.jsonl")
    ins_report = json.loads((out / "instructions.report.json").read_text())
    assert ins_report["counts"]["failed"] == 0
    assert len(ins) + ins_report["filter"]["dropped"] == len(notes)
    note_ids = {n["id"] for n in notes}
    assert all(i["note_id"] in note_ids and i["task"] for i in ins)
    assert ins, "every instruction was filtered out"

    _cli("data", "answers", "--max-tokens", "32", "--stream", *common)
    ans = _rows(out / "answers.jsonl")
    ans_report = json.loads((out / "answers.report.json").read_text())
    assert len(ans) + ans_report["filter"]["dropped"] == len(ins)
    streamed = ans_report["usage_total"]
    assert ans_report["counts"]["failed"] == 0 and streamed["truncated_streams"] == 0
    # no usage chunk from this server: every reply's completion tokens counted from its stream (<= the limit)
    assert streamed["usage_counted"] == len(ins) and 0 < streamed["completion_tokens"] <= 32 * len(ins)
    answers_log = [r for r in _rows(out / "answers.results.jsonl") if r["status"] == "ok"]
    # whole streams only: each ended with [DONE] after its finish_reason; llama-cpp-python sends none when the
    # model stops before its first token (then the text is empty and the answer is dropped as empty)
    assert all(r["finish_reason"] in ("stop", "length") or r["text"] == "" for r in answers_log)
    assert all(len(r["text"]) > 0 for r in answers_log if r["finish_reason"] == "length")
    assert all(reference_filter(a) is None for a in ans)

    if not ans:
        pytest.fail(f"the reference filters dropped every answer: {ans_report['filter']}")
    r = _cli("data", "build", "--out", str(out))
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["counts"]["instructions"] == len(ans) and manifest["counts"]["corpus_notes"] == len(notes)
    assert set(manifest["stages"]) == {"notes", "instructions", "answers"}
    assert all(s["endpoint"] == llama_server and s["model"] == "demo" for s in manifest["stages"].values())
    assert manifest["sources"][0]["name"] == "cases.csv" and len(manifest["sources"][0]["sha256"]) == 64

    import datasets

    ds = datasets.load_from_disk(str(out / "dataset" / "arrow" / "instructions"))
    assert ds.column_names == ["id", "note_id", "note", "task", "question", "answer"]
    assert ds.num_rows == len(ans) and ds[0]["answer"] == ans[0]["answer"]

    # The judge over a generated answer and a fixed weak answer, in two orders.
    judge_in = tmp_path / "judge.jsonl"
    judge_in.write_text(
        "".join(
            json.dumps({"note": a["note"], "question": a["question"],
                        "answers": {"generated": a["answer"], "weak": "I do not know."}}) + "\n"
            for a in ans[:1]
        ),
        encoding="utf-8",
    )  # fmt: skip
    jout = tmp_path / "judge-out"
    r = _cli("judge", "--answers", str(judge_in), "--base-url", llama_server, "--model", "demo", "--orders", "2",
             "--concurrency", "1",
             "--max-tokens", "6", "--out", str(jout), "--no-progress")  # fmt: skip
    report = json.loads((jout / "judge.report.json").read_text())
    n_items = 1
    assert report["requests"] == 2 * n_items and report["failed"] == 0
    assert report["parsed"] + report["unparseable"] == 2 * n_items
    judged = _rows(jout / "judge.jsonl")
    assert len(judged) == 2 * n_items
    for j in judged:  # a reply is either N valid scores or recorded as unparseable with its text: never made up
        assert (j["scores"] is None) == (j["error"] is not None)
        assert j["scores"] is None or (len(j["scores"]) == 2 and set(j["scores"]) <= {1, 2, 3, 4})
    assert f"replies: {report['parsed']} parsed, {report['unparseable']} unparseable" in r.stdout

    # llama.cpp's server has no Responses API: --background stops at the first request and says why.
    bg = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--text-column", "section_text",
         "--base-url", llama_server, "--model", "demo", "--out", str(tmp_path / "bg"), "--background",
         "--no-progress", "--concurrency", "1"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert bg.returncode != 0 and "has no Responses API for background requests" in bg.stderr, bg.stderr
    assert "run without --background" in bg.stderr
