"""Bad-input rows for the log and record parsing (issue 21): JSON Lines rows that once aborted a whole run,
log commands' odd arguments, a damaged log, and databases that were created by mistake.

Each JSON Lines case puts the bad row on line 1 and expects it reported by its line number; that the rows
after it are still read is shown by ``ratings-jsonl-bad-rows-rest-imported`` (and tests/unit/test_records.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.reliability.cases import LOG, LOG_, USAGE, Case

HUGE_INT = "1" * 4301
"""One digit over Python's limit for int(str) (3.11+): json.loads raised ValueError for it."""
DEEP = "[" * 100_000
"""Nesting json.loads cannot decode without RecursionError."""
SURROGATE = '"b\\ud800"'
"""A lone UTF-16 surrogate escape: it decodes, then fails wherever the text is encoded (SQLite, a file)."""
GOOD_RATING = '{"run_id": 1, "rater": "dr ok", "score": 3}\n'
JUDGE = ("judge", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--out", "{tmp}/jo", "--dry-run")
"""A judge that would send nothing (``--dry-run``) to a port nothing listens on."""


def _w(name: str, text: str) -> tuple[Any, ...]:
    return ("write", name, text)


def _drop_table(tmp: Path, table: str) -> None:
    """Damage the ready log (``LOG`` first): one of its tables gone, the schema revision still at head."""
    con = sqlite3.connect(tmp / "log" / "asclepius.db")
    try:
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute(f"DROP TABLE {table}")
        con.commit()
    finally:
        con.close()


STEPS: dict[str, Any] = {"drop_table": _drop_table}

_RATINGS = ("log", "import-ratings", "{tmp}/r.jsonl", "--db", "{db}", "--add-raters")  # "dr ok" is a new rater
_BATCH = ("batch", "{tmp}/in.jsonl", "--db", "{tmp}/b.db")
_TASK_ROW = '{"note": "A note.", "task": "qa", "instruction": "Why?"}'

CASES: tuple[Case, ...] = (
    # -- JSON Lines rows that raised past the reader (ValueError, RecursionError, a later UnicodeEncodeError) --
    Case(
        "ratings-jsonl-int-4301-digits",
        _RATINGS,
        USAGE,
        "line 1: not valid JSON (a number over 4,300 digits)",
        setup=(LOG, _w("r.jsonl", f'{{"run_id": {HUGE_INT}, "rater": "a", "score": 3}}\n' + GOOD_RATING)),
    ),
    Case(
        "ratings-jsonl-deep-nesting",
        _RATINGS,
        USAGE,
        "line 1: not valid JSON here (nested too deeply",
        setup=(LOG, _w("r.jsonl", DEEP + "\n" + GOOD_RATING)),
    ),
    Case(
        "ratings-jsonl-lone-surrogate",
        _RATINGS,
        USAGE,
        "line 1: a \\u escape that is no character",
        setup=(LOG, _w("r.jsonl", f'{{"run_id": 1, "rater": {SURROGATE}, "score": 3}}\n' + GOOD_RATING)),
    ),
    Case(
        "ratings-jsonl-bad-rows-rest-imported",
        _RATINGS,
        USAGE,
        "imported 1 ratings",
        setup=(
            LOG,
            _w("r.jsonl", f'{{"score": {HUGE_INT}}}\n{DEEP}\n{{"rater": {SURROGATE}}}\n' + GOOD_RATING),
        ),
    ),
    Case(
        "batch-jsonl-int-4301-digits",
        _BATCH,
        USAGE,
        "line 1: not valid JSON (a number over 4,300 digits)",
        setup=(_w("in.jsonl", f'{{"id": {HUGE_INT}, "note": "A note.", "task": "qa", "instruction": "Why?"}}\n'),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-jsonl-deep-nesting",
        _BATCH,
        USAGE,
        "line 1: not valid JSON here (nested too deeply",
        setup=(_w("in.jsonl", DEEP + "\n"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-jsonl-lone-surrogate",
        _BATCH,
        USAGE,
        "line 2: a \\u escape that is no character",
        setup=(_w("in.jsonl", _TASK_ROW.replace('"qa"', '"nosuch"') + f'\n{{"note": {SURROGATE}}}\n'),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "judge-answers-int-4301-digits",
        (*JUDGE, "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "line 1: not valid JSON (a number over 4,300 digits)",
        setup=(_w("a.jsonl", f'{{"note": "n", "question": "q", "model": "m", "answer": "a", "x": {HUGE_INT}}}\n'),),
        deadline_s=60,
    ),
    Case(
        "judge-answers-deep-nesting",
        (*JUDGE, "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "line 2: not valid JSON here (nested too deeply",
        setup=(_w("a.jsonl", '{"note": "n"}\n' + DEEP + "\n"),),
        deadline_s=60,
    ),
    Case(
        "judge-answers-lone-surrogate",
        (*JUDGE, "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "line 1: a \\u escape that is no character",
        setup=(_w("a.jsonl", f'{{"note": "n", "question": "q", "model": "m", "answer": {SURROGATE}}}\n'),),
        deadline_s=60,
    ),
    # -- a mistyped --db: log commands refuse a missing log; so do import-ratings and judge now -------------------
    Case(
        "judge-db-typo",
        (*JUDGE, "--db", "{tmp}/typo/x.db"),
        LOG_,
        "no evaluation log",
        absent=("{tmp}/typo",),
        deadline_s=60,
    ),
    Case(
        "ratings-db-typo",
        ("log", "import-ratings", "{tmp}/r.jsonl", "--db", "{tmp}/typo/x.db"),
        LOG_,
        "no evaluation log",
        setup=(_w("r.jsonl", GOOD_RATING),),
        absent=("{tmp}/typo",),
    ),
    # -- log show / export arguments -----------------------------------------------------------------------
    Case("show-superscript-digit", ("log", "show", "²", "--db", "{db}"), USAGE, "no run '²'", setup=(LOG,)),
    Case("show-arabic-indic-digit", ("log", "show", "١", "--db", "{db}"), USAGE, "no run '١'", setup=(LOG,)),
    Case("show-id-over-int64", ("log", "show", "9" * 30, "--db", "{db}"), USAGE, "no run '999", setup=(LOG,)),
    Case(
        "ratings-run-id-arabic-indic-digit",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "line 2: no run with this run_id",
        setup=(LOG, _w("r.csv", "run_id,rater,score\n١,dr a,3\n")),
    ),
    Case(
        "export-since-extreme-offset",
        ("log", "export", "--db", "{db}", "--since", "0001-01-01T00:00:00+14:00"),
        USAGE,
        "out of range",
        setup=(LOG,),
        hidden=("SELECT",),
    ),
    Case(
        "export-until-extreme-offset",
        ("log", "export", "--db", "{db}", "--until", "9999-12-31T23:59:59-14:00"),
        USAGE,
        "out of range",
        setup=(LOG,),
        hidden=("SELECT",),
    ),
    # -- a log missing a table: damaged, exit 6, never SQL nor a raw sqlite3 error -------------------------------
    Case(
        "stats-log-missing-table",
        ("log", "stats", "--db", "{db}"),
        LOG_,
        "damaged",
        setup=(LOG, ("drop_table", "ratings")),
        hidden=("SELECT",),
    ),
    Case(
        "ratings-log-missing-table",
        _RATINGS,
        LOG_,
        "damaged",
        setup=(LOG, ("drop_table", "ratings"), _w("r.jsonl", GOOD_RATING)),
        hidden=("SELECT", "INSERT"),
    ),
    Case(
        "show-log-missing-table",
        ("log", "show", "1", "--db", "{db}"),
        LOG_,
        "damaged",
        setup=(LOG, ("drop_table", "runs")),
        hidden=("SELECT",),
    ),
    # -- batch: the input is checked before the log is opened and a batch recorded ---------------------------
    Case(
        "batch-csv-empty",
        ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "empty file",
        setup=(_w("in.csv", ""),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-csv-header-only",
        ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "no rows",
        setup=(_w("in.csv", "note,task,instruction\n"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-csv-missing-columns",
        ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "missing columns: instruction",
        setup=(_w("in.csv", "note,task\nA note.,qa\n"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-jsonl-empty",
        _BATCH,
        USAGE,
        "no rows",
        setup=(_w("in.jsonl", "\n\n"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-jsonl-no-valid-row",
        _BATCH,
        USAGE,
        "line 2: unknown task 'nosuch'",
        setup=(_w("in.jsonl", "[1]\n" + _TASK_ROW.replace('"qa"', '"nosuch"') + "\n"),),
        absent=("{tmp}/b.db",),
    ),
)
