"""``asclepius log export | import-ratings | stats`` through the real CLI entry point."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from app.store import EvalLog
from tests.store.cli_runner import main
from tests.store.helpers import logged, model, request


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    with EvalLog.open(path) as log:
        for i in range(4):
            a = logged(log, request(instruction=f"q{i}"), model(0))
            b = logged(log, request(instruction=f"q{i}"), model(1))
            log.add_rating(a, "dr-lee", 4 - i % 2)
            log.add_rating(b, "dr-lee", 2 - i % 2)
            log.add_comparison(a, b, "dr-lee", "A")
    return path


def test_export_to_a_private_file(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "runs.csv"
    rc = main(["log", "export", "--db", str(db), "--format", "csv", "--task", "ner", "--no-note-text", "-o", str(out)])
    assert rc == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 8 and "note_text" not in rows[0]
    assert "exported 8 runs" in capsys.readouterr().err


def test_export_model_and_date_filters(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "export", "--db", str(db), "--format", "jsonl", "--model", model(1).sha256[:12]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and {json.loads(x)["model_file"] for x in lines} == {model(1).file_name}
    assert main(["log", "export", "--db", str(db), "--format", "jsonl", "--until", "2020-01-01"]) == 0
    assert capsys.readouterr().out == ""


def test_import_ratings_reports_lines_and_exit_code(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = EvalLog.open(db).list_runs(limit=2)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"run_id,score\n{runs[0].uuid},3\n{runs[1].uuid},7\n", encoding="utf-8")
    rc = main(["log", "import-ratings", str(sheet), "--db", str(db), "--rater", "dr-x", "--add-raters"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "sheet.csv: line 3: score must be 1, 2, 3 or 4" in err and "imported 1 ratings" in err


def test_stats_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["log", "stats", "--db", str(db), "--json", "--compare", model(0).file_name, model(1).file_name])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    means = {m["model"].split(" ")[0]: m["mean"] for m in res["means"]}
    assert means == {model(0).file_name: 3.5, model(1).file_name: 1.5}
    assert res["paired"]["items"] == 4 and res["paired"]["mean_diff"] == 2.0
    # Every item differs by the same amount: t is undefined (zero variance), said so instead of p = 0.
    assert res["paired"]["t_p"] is None and res["paired"]["t_stat"] is None
    assert "not enough data for the t-test" in res["paired"]["reason"]
    assert {w["model"].split(" ")[0]: w["win_rate"] for w in res["wins"]} == {
        model(0).file_name: 1.0,
        model(1).file_name: 0.0,
    }


def test_stats_text(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "Krippendorff" in out and f"{model(0).file_name}" in out and "3.50 [" in out


def test_unusable_log_is_exit_code_6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite" * 10)
    assert main(["log", "stats", "--db", str(bad)]) == 6
    assert "not a SQLite database" in capsys.readouterr().err


def test_unknown_task_is_a_usage_error(db: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["log", "export", "--db", str(db), "--task", "astrology"])
    assert e.value.code == 2


def test_stats_say_when_ratings_of_unrateable_runs_were_left_out(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    with EvalLog.open(db) as log:
        failed = log.start_run(request(instruction="q0"), model(0))
        log.fail_run(failed, "the engine crashed")
    con = sqlite3.connect(db)  # as a log from before the store refused such ratings can hold
    con.execute(
        "INSERT INTO ratings (run_id, rater_id, score, hallucination, is_current, created_at) "
        "VALUES (?, 1, 1, 0, 1, '2026-11-24T09:00:00.000000+00:00')",
        (failed,),
    )
    con.commit()
    con.close()
    assert main(["log", "stats", "--db", str(db), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["left_out_ratings"] == 1
    assert {m["model"].split(" ")[0]: m["mean"] for m in res["means"]}[model(0).file_name] == 3.5
    assert main(["log", "stats", "--db", str(db)]) == 0
    assert "Left out: 1 ratings of runs that cannot be rated" in capsys.readouterr().out
    assert main(["log", "stats", "--db", str(db), "--task", "qa"]) == 0
    assert "Left out" not in capsys.readouterr().out


def test_stats_show_agreement_per_task_and_hallucination_flags(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with EvalLog.open(db) as log:
        runs = sorted(log.list_runs(limit=8), key=lambda r: r.id)
        for r, s in zip(runs, [4, 1, 3, 2, 4, 1, 2, 1], strict=True):  # dr-lee gave 4, 2, 3, 1, 4, 2, 3, 1
            log.add_rating(r.id, "dr-kim", s, hallucination=s == 1)
    assert main(["log", "stats", "--db", str(db), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    (ner,) = res["agreement_per_task"]
    assert ner["task"] == "Named Entity Recognition" and ner["runs"] == 8 and ner["low"] <= ner["alpha"] <= ner["high"]
    assert res["agreement"]["alpha"] == ner["alpha"] and res["agreement"]["low"] == ner["low"]
    flags = {f["model"].split(" ")[0]: f for f in res["flags"]}
    assert (flags[model(1).file_name]["hallucination"], flags[model(1).file_name]["score_1"]) == (3, 5)
    assert (flags[model(0).file_name]["hallucination"], flags[model(0).file_name]["ratings"]) == (0, 8)
    assert main(["log", "stats", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert (
        f"  Named Entity Recognition: {ner['alpha']:.3f} [{ner['low']:.3f}, {ner['high']:.3f}] over 8 runs, 2 raters"
        in out
    )
    assert "Hallucination flags and score-1 ratings per model and task" in out
    assert "3 flagged, 5 scored 1, of 8 ratings" in out
