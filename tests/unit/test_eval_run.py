"""``eval run``'s own half with a fake engine and stand-in suite/scorer: every item one logged run on batch's
schedulers, its score stored beside it, resumable; the report's HTML and CSV. (The evaluation core's real
suites, loaders and scorers are exercised by tests/unit/test_cli_eval.py.)"""

from __future__ import annotations

import csv
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.cli.eval_runner import EvalRunOptions, run_suite
from app.service import SamplingOverrides
from app.service.eval_report import write_report
from app.service.eval_run import EvalResults, ModelScores, stored_scores
from tests.fakes import FakeContext, FakeEngine, Script

NOTE_A = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission."
NOTE_B = "Seen for gout. Started colchicine 0.6 mg daily."


@dataclass(frozen=True)
class ToySuite:
    name: str = "toy-qa"
    task: str = "Question Answering"


@dataclass(frozen=True)
class ToyItem:
    id: str
    note: str
    instruction: str
    gold: str


@dataclass(frozen=True)
class ToyScore:
    item_id: str
    metrics: dict[str, float]
    counts: dict[str, int]
    details: dict[str, Any] = field(default_factory=dict)


def toy_score(suite: Any, item: ToyItem, answer: str) -> ToyScore:
    hit = item.gold.lower() in answer.lower()
    return ToyScore(item.id, {"accuracy": float(hit)}, {"correct": int(hit)}, {"gold": (item.gold,)})


def toy_results(suite: Any, groups: list[ModelScores]) -> EvalResults:
    return EvalResults(suite.name, [(g.model, [s.item_id for s in g.scores]) for g in groups], [])


ITEMS = [
    ToyItem("p1", NOTE_A, "What was the creatinine?", "1.4 mg/dL"),
    ToyItem("p2", NOTE_B, "Which drug was started?", "colchicine"),
    ToyItem("p3", NOTE_A, "Which infection?", "pneumonia"),
]
OPTS = EvalRunOptions(SamplingOverrides(max_tokens=12), None, None)


def run(ctx: FakeContext, items: list[ToyItem] = ITEMS) -> Any:
    with ctx.open_log() as log:
        return run_suite(ctx, log, ToySuite(), items, [ctx.model(None)], OPTS, threading.Event(), None, toy_score,
                         toy_results)  # fmt: skip


def test_every_item_is_a_logged_run_with_its_score_beside_it_and_a_rerun_resumes(tmp_path: Path, capsys) -> None:
    engine = FakeEngine(script=Script(answer=" Creatinine 1.4 mg/dL."))
    ctx = FakeContext(tmp_path, engine)
    out = run(ctx)
    assert (out.counts.ran, out.counts.failed, out.exit_code()) == (3, 0, 0)
    assert sorted(r.instruction for r in engine.requests) == sorted(i.instruction for i in ITEMS)
    assert out.results.results == [(engine.model.file_name, ["p1", "p3", "p2"])]  # grouped by note, as batch does
    with ctx.open_log() as log:
        runs = {v.uuid: v for v in log.list_runs()}
        scores = {s.item_id: s for s in log.eval_scores("toy-qa")}
    assert {s.run_uuid for s in scores.values()} == set(runs)  # one score per run, each beside its run
    assert all(runs[s.run_uuid].batch_id is not None for s in scores.values())
    assert {k: s.metrics["accuracy"] for k, s in scores.items()} == {"p1": 1.0, "p2": 0.0, "p3": 0.0}
    assert scores["p1"].details == {"gold": ["1.4 mg/dL"]}  # a tuple stored as JSON data
    engine.requests.clear()
    again = run(ctx)
    assert engine.requests == [] and (again.counts.ran, again.counts.skipped) == (0, 3)
    assert "3 already answered, 0 to run" in capsys.readouterr().err
    with ctx.open_log() as log:  # rescored in place: still one score per run
        assert len(log.eval_scores("toy-qa")) == 3 and len(log.list_runs()) == 3


def test_an_item_that_cannot_run_is_counted_failed_and_not_scored(tmp_path: Path) -> None:
    engine = FakeEngine(n_ctx=300, script=Script(answer="pneumonia"))
    ctx = FakeContext(tmp_path, engine)
    items = [*ITEMS[:2], ToyItem("long", " ".join(["word"] * 400), "Why?", "x")]
    out = run(ctx, items)
    assert (out.counts.ran, out.counts.failed, out.exit_code()) == (2, 1, 7)
    with ctx.open_log() as log:
        assert sorted(s.item_id for s in log.eval_scores("toy-qa")) == ["p1", "p2"]
        assert sorted(v.finish_reason for v in log.list_runs()) == ["error", "stop", "stop"]


def test_another_instruction_or_sampling_is_answered_again(tmp_path: Path) -> None:
    engine = FakeEngine(script=Script(answer="pneumonia"))
    ctx = FakeContext(tmp_path, engine)
    run(ctx, ITEMS[:1])
    run(ctx, [ToyItem("p1", NOTE_A, "What was the creatinine level?", "1.4")])
    assert len(engine.requests) == 2
    with ctx.open_log() as log:  # both runs scored; the latest counts for the item
        (latest,) = log.eval_scores("toy-qa")
        assert latest.metrics == {"accuracy": 0.0}
        groups = stored_scores(log, "toy-qa", to_score=lambda v: v.item_id)
    assert [(g.model, g.scores) for g in groups] == [(engine.model.file_name, ["p1"])]


@dataclass(frozen=True)
class Est:
    value: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Res:
    suite: str
    model: str
    metrics: dict[str, Est]
    n: int
    unparseable: int
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    n: int


def test_the_report_writes_escaped_html_csv_and_a_plot_privately(tmp_path: Path) -> None:
    results = EvalResults(
        "ncbi-disease",
        [
            Res("ncbi-disease", "<b>m1</b>.gguf", {"f1": Est(0.5, 0.4, 0.6, 100), "recall": Est(0.7, 0.6, 0.8, 100)},
                100, 0),
            Res("ncbi-disease", "m2.gguf", {"f1": Est(0.25, 0.2, 0.3, 100)}, 100, 3, ("3 answers unparseable",)),
        ],
        [("<b>m1</b>.gguf", "m2.gguf", Pair("f1", -0.25, -0.3, -0.2, 0.001, 100))],
    )  # fmt: skip
    path = write_report(results, tmp_path / "rep")
    html = path.read_text()
    assert "<b>m1</b>" not in html and "&lt;b&gt;m1&lt;/b&gt;.gguf" in html
    assert "data:image/png;base64," in html and "n=100" in html
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with (tmp_path / "rep" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["model"], r["metric"], r["value"], r["ci_low"], r["n"]) for r in rows] == [
        ("<b>m1</b>.gguf", "f1", "0.5", "0.4", "100"),
        ("<b>m1</b>.gguf", "recall", "0.7", "0.6", "100"),
        ("m2.gguf", "f1", "0.25", "0.2", "100"),
    ]
    with (tmp_path / "rep" / "paired.csv").open() as fh:
        (p,) = list(csv.DictReader(fh))
    assert (p["model_b"], p["metric"], p["difference"], p["p_value"], p["n"]) == (
        "m2.gguf",
        "f1",
        "-0.25",
        "0.001",
        "100",
    )
