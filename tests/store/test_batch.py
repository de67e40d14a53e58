"""Batch input validation, note grouping, resume; and a real SIGKILL of a real batch on the demo model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli.batch.items import BatchItem, group_by_note, parse_input
from app.store import EvalLog

REPO = Path(__file__).parents[2]
SHORT_NOTES = [
    "Patient admitted with community-acquired pneumonia. Treated with amoxicillin 500 mg. Discharged day 4.",
    "Heart failure exacerbation. Furosemide 40 mg IV twice daily. Weight down 3 kg. Discharged on day 5.",
    "Appendicitis. Laparoscopic appendectomy on day 1. Cefazolin 2 g before surgery. Home on day 2.",
]


def test_rows_are_validated_with_line_numbers(tmp_path: Path) -> None:
    (tmp_path / "n1.txt").write_text(SHORT_NOTES[0], encoding="utf-8")
    big = "x" * (50 * 1024 * 1024)
    f = tmp_path / "in.csv"
    f.write_text(
        "id,note,note_path,task,instruction\n"
        "a,,n1.txt,ner,List the medications.\n"  # 2 ok (note file)
        f'b,"{SHORT_NOTES[1]}",,qa,Why admitted?\n'  # 3 ok (inline note)
        "c,,n1.txt,,List the medications.\n"  # 4 empty task
        "d,,n1.txt,astrology,What sign?\n"  # 5 unknown task
        "e,,missing.txt,ner,List.\n"  # 6 missing note file
        "a,,n1.txt,ner,Duplicate id.\n"  # 7 duplicate id
        f'f,"{big}",,ner,Huge.\n'  # 8 a 50 MB cell
        "g,,,ner,No note.\n"  # 9 no note
        'h,,n1.txt,summary,"   "\n'  # 10 empty instruction
        ",,n1.txt,Summarization,Summarize.\n",  # 11 ok, no id
        encoding="utf-8",
    )
    parsed = parse_input(f)
    assert [(i.line, i.item_id, i.task) for i in parsed.items] == [
        (2, "a", "Named Entity Recognition"),
        (3, "b", "Question Answering"),
        (11, "", "Summarization"),
    ]
    errors = dict(parsed.errors)
    assert sorted(errors) == [4, 5, 6, 7, 8, 9, 10]
    assert "task is empty" in errors[4] and "unknown task 'astrology'" in errors[5]
    assert "not found" in errors[6] and "duplicate id 'a' (first on line 2)" in errors[7]
    assert "over the 200,000-character limit" in errors[8] and "both empty" in errors[9]
    assert "instruction is empty" in errors[10]


def test_missing_columns_are_reported_at_once(tmp_path: Path) -> None:
    from app.core.errors import UsageError

    f = tmp_path / "in.csv"
    f.write_text("id,text,question\n1,a,b\n", encoding="utf-8")
    with pytest.raises(UsageError, match="missing columns: task, instruction, note or note_path"):
        parse_input(f)


def test_jsonl_rows(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": 1, "note": SHORT_NOTES[0], "task": "ner", "instruction": "Meds?"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"note": SHORT_NOTES[0], "task": "qa", "instruction": 5}),
    ]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    parsed = parse_input(f)
    assert [(i.line, i.item_id, i.instruction) for i in parsed.items] == [(1, "1", "Meds?")]
    assert [line for line, _ in parsed.errors] == [2, 3, 4]
    assert "instruction must be text, not a number" in parsed.errors[2][1]


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [("note", True, "true/false"), ("task", {"n": "x"}, "an object"), ("instruction", ["q"], "a list"),
     ("note_path", 3.5, "a number"), ("id", False, "true/false")],
)  # fmt: skip
def test_wrong_json_types_are_row_errors_not_text(tmp_path: Path, field: str, value: object, kind: str) -> None:
    """Issue 9.11: ``"note": true`` must not become the note "True"."""
    rec = {"note": SHORT_NOTES[0], "task": "qa", "instruction": "Meds?", field: value}
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    parsed = parse_input(f)
    assert parsed.items == []
    assert parsed.errors[0][0] == 1 and f"{field} must be" in parsed.errors[0][1] and kind in parsed.errors[0][1]


def test_items_are_grouped_by_note_in_first_seen_order() -> None:
    def it(n: int, note: str) -> BatchItem:
        return BatchItem(n, str(n), note, "Question Answering", f"q{n}")

    items = [it(1, "A"), it(2, "B"), it(3, "A"), it(4, "C"), it(5, "B")]
    assert [i.line for i in group_by_note(items)] == [1, 3, 2, 5, 4]


# -- a real batch, a real engine, a real SIGKILL ---------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("asclepius-home")


def batch_cmd(inp: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.store.cli_runner", "batch", str(inp), "--db", str(db), "--max-tokens", "3",
            "--threads", "2", *extra]  # fmt: skip


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "ASCLEPIUS_HOME": str(home), "PYTHONPATH": str(REPO)}


def finished_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'finished'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def test_sigkill_then_resume_finishes_the_rest_without_duplicates(home: Path, tmp_path: Path) -> None:
    n_items = 9
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        "".join(
            json.dumps({"id": f"i{k}", "note": SHORT_NOTES[k % 3], "task": "qa", "instruction": f"Question {k}?"})
            + "\n"
            for k in range(n_items)
        ),
        encoding="utf-8",
    )
    db = tmp_path / "log.db"
    first = subprocess.Popen(batch_cmd(inp, db), env=env(home), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while finished_count(db) < 2:
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        assert time.monotonic() < deadline, "the batch did not finish two items in time"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = finished_count(db)
    assert 2 <= killed_at < n_items, "the batch finished before the kill: the test proved nothing"

    second = subprocess.run(
        batch_cmd(inp, db, "--output", str(tmp_path / "out.jsonl")), env=env(home), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"{killed_at} already done, {n_items - killed_at} to run" in second.stderr

    with EvalLog.open(db) as log:
        assert log.integrity_check() == ["ok"]
        con = sqlite3.connect(db)
        per_key = con.execute(
            "SELECT resume_key, count(*) FROM runs WHERE status = 'finished' GROUP BY resume_key"
        ).fetchall()
        statuses = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        con.close()
        assert len(per_key) == n_items and all(n == 1 for _, n in per_key)  # everything once, nothing twice
        # The runs in flight at the kill (a note's questions decode together: up to its 3) are kept as
        # interrupted, not lost and not re-counted.
        assert statuses.get("finished") == n_items and statuses.get("interrupted", 0) in (0, 1, 2, 3)
        assert "started" not in statuses
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in out) == sorted(f"i{k}" for k in range(n_items))

    third = subprocess.run(batch_cmd(inp, db), env=env(home), capture_output=True, text=True, timeout=120)
    assert third.returncode == 0 and f"{n_items} already done, 0 to run" in third.stderr
