"""``asclepius batch`` through the ask service with a fake engine: settings, failures, resume, progress."""

from __future__ import annotations

import csv
import json
import threading
from dataclasses import replace
from pathlib import Path

from app.cli.batch.options import BatchOptions
from app.cli.batch.runner import run_batch as run_items
from app.cli.main import build_parser
from app.core.config import AppConfig, GenerationDefaults
from app.core.grounding import describe_summary
from tests.fakes import CheckFirstEngine, FakeContext, FakeEngine, Script

NOTE = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission."


def write_items(path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        w.writerow(["a", NOTE, "qa", "What was the creatinine?"])
        w.writerow(["b", NOTE, "abbrev", "Expand the abbreviations."])
        w.writerow(["c", " ".join(["long"] * 400), "qa", "Why?"])  # does not fit the fake's context
    return path


def run_batch(ctx: FakeContext, inp: Path, *extra: str) -> int:
    args = build_parser().parse_args(["batch", str(inp), *extra])
    with ctx.open_log() as log:
        return run_items(BatchOptions.from_args(args), ctx, log, threading.Event())


def test_batch_uses_the_settings_logs_failures_and_resumes(tmp_path, capsys):
    engine = FakeEngine(n_ctx=300, script=Script(answer="  Creatinine 1.4 mg/dL."))
    cfg = replace(AppConfig(), generation=GenerationDefaults(max_tokens=12, temperature=0.2, seed=3))
    ctx = FakeContext(tmp_path, engine, cfg)
    inp = write_items(tmp_path / "items.csv")
    out = tmp_path / "answers.jsonl"
    assert run_batch(ctx, inp, "--output", str(out)) == 7  # one item failed
    err = capsys.readouterr().err
    assert "line 4: ContextOverflowError" in err and "3/3" in err  # tqdm's count reached the total
    assert {(r.task, r.sampling.max_tokens, r.sampling.temperature, r.sampling.seed) for r in engine.requests} == {
        ("Question Answering", 12, 0.2, 3),
        ("Abbreviation Expansion", 12, 0.2, 3),
    }
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["answer"]) for r in rows] == [("a", "Creatinine 1.4 mg/dL."), ("b", "Creatinine 1.4 mg/dL.")]
    with ctx.open_log() as log:  # each row carries its run's grounding summary line, as the log words it
        logged = {v.uuid: describe_summary(v.grounding) for v in log.list_runs()}
    assert [r["grounding"] for r in rows] == [logged[r["run_id"]] for r in rows]
    assert all("supported by the note" in r["grounding"] for r in rows)
    with ctx.open_log() as log:
        assert sorted((v.finish_reason, v.batch_id is not None) for v in log.list_runs()) == [
            ("error", True), ("stop", True), ("stop", True)
        ]  # fmt: skip
    engine.requests.clear()
    assert run_batch(ctx, inp, "--max-tokens", "12") == 7  # same settings: a and b are done, c fails again
    assert "2 already done, 1 to run" in capsys.readouterr().err
    assert [r.instruction for r in engine.requests] == ["Why?"]
    assert engine.closed


def test_a_refused_item_in_a_note_group_is_logged_failed_once_and_the_others_run(tmp_path, capsys):
    engine = CheckFirstEngine(n_ctx=300, script=Script(answer="Creatinine 1.4 mg/dL."))
    ctx = FakeContext(tmp_path, engine)
    inp = tmp_path / "group.csv"
    with inp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        w.writerow(["a", NOTE, "qa", "What was the creatinine?"])
        w.writerow(["b", NOTE, "qa", "Why? " * 300])  # this one does not fit
        w.writerow(["c", NOTE, "qa", "Which antibiotic?"])
    assert run_batch(ctx, inp, "--max-tokens", "12") == 7
    assert "line 3: ContextOverflowError" in capsys.readouterr().err
    with ctx.open_log() as log:
        runs = log.list_runs()
    assert sorted((r.instruction[:9], r.finish_reason) for r in runs) == [
        ("What was ", "stop"), ("Which ant", "stop"), ("Why? Why?", "error"),
    ]  # fmt: skip


class _Bar:
    """A progress bar that remembers what it was told."""

    def __init__(self) -> None:
        self.n = 0
        self.lines: list[str] = []

    def update(self, k: int = 1) -> None:
        self.n += k

    def write(self, message: str, file: object = None) -> None:
        self.lines.append(message)


def test_one_failure_policy_for_both_schedulers() -> None:
    from app.cli.batch.items import BatchItem
    from app.cli.batch.runner import BatchRun
    from app.core.errors import ContextOverflowError, EndpointError, StoreError
    from app.store.claims import ItemClaimed

    bar = _Bar()
    run = BatchRun(1, threading.Event(), bar)
    item = BatchItem(5, "x", NOTE, "Question Answering", "Why?")
    assert run.count_failure(item, ItemClaimed("k", done=True)) is False  # skipped: another batch has it
    assert run.count_failure(item, ContextOverflowError("too long")) is False  # this item only
    assert run.count_failure(item, EndpointError("gone")) is True  # failed, and the batch stops
    assert run.count_failure(item, StoreError("locked")) is True  # the log is unusable: stop, count nothing
    assert (run.counts.skipped, run.counts.failed, run.counts.ran, bar.n) == (1, 2, 0, 3)
    assert bar.lines == ["line 5: ContextOverflowError: too long", "line 5: the server failed; recorded as failed"]
