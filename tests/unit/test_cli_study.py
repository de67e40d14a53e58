"""``asclepius study``: create and generate through the ask service (fake engines, the real store), resume,
status, adjudication, passphrases, and the packet round trip (when the seal slice's packets are present)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest

from app.cli.main import build_parser, main
from app.cli.study.create import CreateOptions, create, generate
from app.core.types import ModelInfo
from app.service.study import answer_resume_key
from app.store import EvalLog
from tests.fakes import FakeContext, FakeEngine, Script, fake_model

NOTE = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission. Amoxicillin 500 mg three times daily."
PASS = "correct horse battery staple"


class TwoModels(FakeContext):
    """Each ``--model NAME`` is its own fake model (the plain FakeContext has one)."""

    def __init__(self, tmp: Path, n_ctx: int = 300) -> None:
        super().__init__(tmp, FakeEngine(n_ctx=n_ctx, script=Script(answer=" Creatinine 1.4 mg/dL.")))
        self.engines: dict[str, FakeEngine] = {}
        self.n_ctx = n_ctx

    def model(self, ref: str | None) -> ModelInfo:
        for e in self.engines.values():
            if ref in (e.model.name, e.model.sha256):
                return e.model
        m = fake_model(str(ref))
        self.engines[m.name] = FakeEngine(model=m, n_ctx=self.n_ctx, script=Script(answer=f" {m.name} says 1.4."))
        return m

    def engine(self, model: ModelInfo, *, logged: bool = True) -> FakeEngine:  # type: ignore[override]
        e = self.engines[model.name]
        e.closed = False
        return e


def items_csv(path: Path, n: int = 6) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "note", "task", "instruction"])
        for i in range(n - 1):
            w.writerow([f"q{i}", f"{NOTE} Day {i}.", "qa", f"What was the creatinine on day {i}?"])
        w.writerow([f"q{n - 1}", " ".join(["long"] * 400), "qa", "Why?"])  # over the fake's context: a failure
    return path


def create_args(tmp_path: Path, *extra: str) -> CreateOptions:
    argv = ["study", "create", "pilot", "--items", str(items_csv(tmp_path / "items.csv")), "--model", "alpha",
            "--model", "beta", "--raters", "ana,ben,cy", "--adjudicators", "dr-adj", "--overlap", "2",
            "--calibration", "2", "--seed", "11", "--max-tokens", "12", *extra]  # fmt: skip
    return CreateOptions.from_args(build_parser().parse_args(argv))


def test_create_generates_every_answer_as_a_logged_run_and_a_rerun_adds_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ctx = TwoModels(tmp_path)
    opts = create_args(tmp_path)
    with ctx.open_log() as log:
        assert create(opts, ctx, log, threading.Event()) == 0
        info = log.study("pilot")
        assert (info.items, info.arms, info.generated, info.answers) == (6, ("alpha", "beta"), 12, 12)
        runs = log.list_runs(limit=100)
        assert len(runs) == 12
        assert {(r.model_file, r.finish_reason) for r in runs} == {
            ("alpha.gguf", "stop"), ("beta.gguf", "stop"), ("alpha.gguf", "error"), ("beta.gguf", "error")
        }  # fmt: skip
        assert {r.sampling["max_tokens"] for r in runs} == {12}  # the generation flags reached every run
        failed = [r for v in ("ana", "ben", "cy") for r in log.packet_rows("pilot", v) if r["failure"]]
        assert failed and all(r["item_key"] == "q5" for r in failed)  # the failure is kept, to be rated
    err = capsys.readouterr().err
    assert "10 answers generated, 2 failed" in err and "item q5, arm alpha: failed" in err
    before = {name: len(e.requests) for name, e in ctx.engines.items()}
    with ctx.open_log() as log:
        assert create(create_args(tmp_path), ctx, log, threading.Event()) == 0
    assert "exists; generating what is missing" in capsys.readouterr().err
    assert {name: len(e.requests) for name, e in ctx.engines.items()} == before
    assert all(e.closed for e in ctx.engines.values())


def test_a_cancelled_create_leaves_answers_pending_and_generate_finishes_them(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ctx = TwoModels(tmp_path)
    cancel = threading.Event()
    cancel.set()  # Ctrl-C before the first answer
    with ctx.open_log() as log:
        assert create(create_args(tmp_path), ctx, log, cancel) == 130
        assert log.study("pilot").generated == 0
        assert "12 left" in capsys.readouterr().err
        assert generate("pilot", ctx, log, threading.Event()) == 0
        info = log.study("pilot")
        assert info.generated == 12
        keys = {answer_resume_key(info.uuid, p["answer_uid"]) for p in log.packet_rows("pilot", "ana")}
        assert keys <= {r.resume_key for r in _runs(log)}  # each run carries its answer's resume key


def _runs(log: EvalLog) -> list:  # type: ignore[type-arg]
    from sqlalchemy import select

    from app.store.models import Run

    with log.read_session() as s:
        return list(s.execute(select(Run.resume_key)).all())


def test_a_study_name_reused_with_other_items_is_refused(tmp_path: Path) -> None:
    from app.core.errors import UsageError

    ctx = TwoModels(tmp_path)
    with ctx.open_log() as log:
        create(create_args(tmp_path), ctx, log, threading.Event())
        other = create_args(tmp_path)
        items_csv(other.items_path, n=4)
        with pytest.raises(UsageError, match="exists with other items or arms"):
            create(other, ctx, log, threading.Event())


def test_bad_flags_are_refused_before_anything_runs(tmp_path: Path) -> None:
    from app.core.errors import UsageError

    with pytest.raises(UsageError, match="--raters needs at least one name"):
        CreateOptions.from_args(build_parser().parse_args(
            ["study", "create", "x", "--items", str(items_csv(tmp_path / "i.csv")), "--model", "a", "--raters", ","]
        ))  # fmt: skip
    with pytest.raises(UsageError, match="--concurrency only apply with --endpoint"):
        create_args(tmp_path, "--concurrency", "2")


def cli(db: Path, *argv: str) -> int:
    return main(["study", *argv, "--db", str(db)], isolate=False)


def test_adjudicate_and_passphrase_rules_through_the_command(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ctx = TwoModels(tmp_path)
    with ctx.open_log() as log:
        create(create_args(tmp_path), ctx, log, threading.Event())
        uid = log.packet_rows("pilot", "ana")[0]["answer_uid"]
        log.rate_study_answer("pilot", "ana", uid, 1)
    db = ctx.open_log().path
    assert cli(db, "adjudicate", "pilot", "--answer", uid, "--adjudicator", "ana", "--score", "3", "--reason", "x") == 2
    assert "not registered as adjudicator" in capsys.readouterr().err
    assert cli(db, "adjudicate", "pilot", "--answer", uid, "--adjudicator", "dr-adj", "--score", "3") == 2
    assert "needs --reason" in capsys.readouterr().err
    assert cli(db, "adjudicate", "pilot", "--answer", uid, "--adjudicator", "dr-adj", "--score", "3",
               "--reason", "consensus") == 0  # fmt: skip
    with EvalLog.open(db) as log:
        data = log.study_data("pilot")
    assert [a.score for a in data.adjudications] == [3] and [r.score for r in data.ratings] == [1]
    monkeypatch.delenv("STUDY_PASS", raising=False)
    out = str(tmp_path / "ana.packet")
    assert cli(db, "packet", "pilot", "--rater", "ana", "-o", out, "--passphrase-env", "STUDY_PASS") == 2
    assert "STUDY_PASS is not set" in capsys.readouterr().err
    monkeypatch.setenv("STUDY_PASS", "short")
    assert cli(db, "packet", "pilot", "--rater", "ana", "-o", out, "--passphrase-env", "STUDY_PASS") == 2
    assert "shorter than 10 characters" in capsys.readouterr().err
    assert not Path(out).exists()
    assert cli(db, "status", "nope") == 2 and "no study 'nope'" in capsys.readouterr().err


def test_packet_rate_import_round_trip(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STUDY_PASS", PASS)
    ctx = TwoModels(tmp_path)
    with ctx.open_log() as log:
        create(create_args(tmp_path), ctx, log, threading.Event())
    db = ctx.open_log().path
    packet = tmp_path / "ben.packet"
    assert cli(db, "packet", "pilot", "--rater", "ben", "-o", str(packet), "--passphrase-env", "STUDY_PASS") == 0
    capsys.readouterr()
    assert main(["study", "rate", str(packet), "--list", "--passphrase-env", "STUDY_PASS"], isolate=False) == 0
    ids = capsys.readouterr().out.split()
    with EvalLog.open(db) as log:
        assert ids == [r["answer_uid"] for r in log.packet_rows("pilot", "ben")]
    ratings = tmp_path / "ben.csv"
    ratings.write_text("answer,score,hallucination,comment\n" + "".join(f"{u},3,0,\n" for u in ids), encoding="utf-8")
    responses = tmp_path / "ben.responses"
    argv = [
        "study",
        "rate",
        str(packet),
        "--from",
        str(ratings),
        "-o",
        str(responses),
        "--passphrase-env",
        "STUDY_PASS",
    ]
    assert main(argv, isolate=False) == 0
    for _ in range(2):  # importing twice changes nothing
        assert cli(db, "import", "pilot", str(responses), "--passphrase-env", "STUDY_PASS") == 0
    err = capsys.readouterr().err
    assert f"{len(ids)} new" in err and f"{len(ids)} already imported" in err
    with EvalLog.open(db) as log:
        assert len(log.study_data("pilot").ratings) == len(ids)
    monkeypatch.setenv("STUDY_PASS", "another long passphrase")
    assert cli(db, "import", "pilot", str(responses), "--passphrase-env", "STUDY_PASS") == 2
    assert "passphrase" in capsys.readouterr().err


def test_status_json_has_the_agreement_fields(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    ctx = TwoModels(tmp_path)
    with ctx.open_log() as log:
        create(create_args(tmp_path), ctx, log, threading.Event())
        for rater in ("ana", "ben", "cy"):
            for r in log.packet_rows("pilot", rater):
                log.rate_study_answer("pilot", rater, r["answer_uid"], 1 if r["failure"] else 3)
    capsys.readouterr()
    assert cli(ctx.open_log().path, "status", "pilot", "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"alpha", "alpha_ci", "per_task", "progress", "disagreements"} <= set(payload)
    assert payload["study"]["name"] == "pilot"


def test_a_study_from_a_batch_uses_its_logged_runs_and_generates_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from app.cli.batch.options import BatchOptions
    from app.cli.batch.runner import run_batch

    ctx = TwoModels(tmp_path)
    inp = items_csv(tmp_path / "items.csv", n=4)
    args = build_parser().parse_args(["batch", str(inp), "--model", "alpha", "--model", "beta", "--max-tokens", "12"])
    with ctx.open_log() as log:
        assert run_batch(BatchOptions.from_args(args), ctx, log, threading.Event()) == 7  # the long item fails
        asked = {name: len(e.requests) for name, e in ctx.engines.items()}
        argv = ["study", "create", "from-runs", "--from-batch", "1", "--raters", "ana,ben", "--overlap", "1"]
        assert create(CreateOptions.from_args(build_parser().parse_args(argv)), ctx, log, threading.Event()) == 0
        info = log.study("from-runs")
        assert (info.items, info.arms, info.generated, info.answers) == (4, ("alpha", "beta"), 8, 8)
        rows = log.packet_rows("from-runs", "ana") + log.packet_rows("from-runs", "ben")
        assert len(rows) == 8 and sum(r["failure"] is not None for r in rows) == 2  # the failed runs, to be rated
    assert {name: len(e.requests) for name, e in ctx.engines.items()} == asked
    with pytest.raises(Exception, match="--from-batch takes its arms"):
        CreateOptions.from_args(build_parser().parse_args([*argv, "--model", "alpha"]))


def test_from_runs_leaves_out_items_an_arm_did_not_answer_and_keeps_the_latest_run() -> None:
    from app.cli.study.create import from_runs
    from app.store.studies import LoggedRun

    def run(i: int, model: str, item: str) -> LoggedRun:
        return LoggedRun(i, None, f"note {item}", "Question Answering", "Q?", model * 64, model, f"{model}.gguf",
                         None, None)  # fmt: skip

    runs = [run(1, "a", "x"), run(2, "b", "x"), run(3, "a", "y"), run(4, "a", "x")]
    items, arms, mapping, dropped = from_runs(runs)
    assert [a.label for a in arms] == ["a", "b"] and dropped == 1
    assert [it.note for it in items] == ["note x"] and mapping == {(0, 0): 4, (0, 1): 2}


def test_an_adjudicator_is_added_to_an_existing_study_once(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ctx = TwoModels(tmp_path)
    with ctx.open_log() as log:
        create(create_args(tmp_path), ctx, log, threading.Event())
    db = ctx.open_log().path
    for _ in range(2):  # adding twice changes nothing
        assert cli(db, "add-adjudicator", "pilot", "dr-second") == 0
    with EvalLog.open(db) as log:
        assert log.study("pilot").adjudicators.count("dr-second") == 1
        uid = log.packet_rows("pilot", "ana")[0]["answer_uid"]
        assert log.adjudicate("pilot", uid, "dr-second", 2, "second look") > 0
    assert cli(db, "add-adjudicator", "nope", "dr-second") == 2
