"""Scores against gold stored beside their runs (``eval_scores``, revision 0006)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.store import EvalLog, db
from tests.store.helpers import logged, model


def test_a_score_is_stored_beside_its_run_and_a_rescore_replaces_it(log: EvalLog) -> None:
    rid = logged(log)
    log.record_eval_score(rid, "ncbi-disease", "10021369", {"f1": 0.5}, {"tp": 1, "fp": 1, "fn": 1}, {"x": [1]})
    uuid = log.get_run(rid).uuid  # type: ignore[union-attr]
    log.record_eval_score(uuid, "ncbi-disease", "10021369", {"f1": 1.0}, {"tp": 2, "fp": 0, "fn": 0}, {})
    (s,) = log.eval_scores("ncbi-disease")
    assert (s.run_id, s.run_uuid, s.item_id, s.metrics, s.counts) == (rid, uuid, "10021369", {"f1": 1.0}, {
        "tp": 2, "fp": 0, "fn": 0
    })  # fmt: skip
    assert s.model == model().file_name and s.scored_at.tzinfo is not None
    assert log.eval_scores("pubmedqa") == []


def test_scores_filter_by_model_and_the_latest_run_of_an_item_counts(log: EvalLog) -> None:
    a, b = model(1), model(2)
    first = logged(log, m=a)
    second = logged(log, m=a)
    other = logged(log, m=b)
    log.record_eval_score(first, "s", "i1", {"f1": 0.0}, {}, {})
    log.record_eval_score(second, "s", "i1", {"f1": 1.0}, {}, {})
    log.record_eval_score(other, "s", "i1", {"f1": 0.5}, {}, {})
    assert {(v.model, v.metrics["f1"]) for v in log.eval_scores("s")} == {(a.file_name, 1.0), (b.file_name, 0.5)}
    assert [v.run_id for v in log.eval_scores("s", models=[b.sha256])] == [other]
    (sa, sb) = log.eval_suites()
    assert (sa.suite, sa.model, sa.items, sb.model, sb.items) == ("s", a.file_name, 1, b.file_name, 1)


def test_bad_references_are_refused(log: EvalLog) -> None:
    rid = logged(log)
    with pytest.raises(UsageError, match="no run"):
        log.record_eval_score(99999, "s", "i", {}, {}, {})
    with pytest.raises(UsageError, match="suite name"):
        log.record_eval_score(rid, "", "i", {}, {}, {})
    with pytest.raises(UsageError, match="item id"):
        log.record_eval_score(rid, "s", "x" * 513, {}, {}, {})


def test_downgrade_to_0005_drops_the_scores_and_keeps_the_runs(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        rid = logged(log)
        log.record_eval_score(rid, "s", "i", {"f1": 1.0}, {}, {})
        db.downgrade(log.engine, "0005")
    con = sqlite3.connect(db_path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "eval_scores" not in names and con.execute("SELECT id FROM runs").fetchall() == [(rid,)]
    con.close()
    with EvalLog.open(db_path) as log:  # up again
        assert log.eval_scores("s") == []


def test_a_bioc_document_id_of_a_long_url_is_an_item_id(log: EvalLog, shared_data: Path) -> None:
    """The case-report corpus names its documents by URL (up to 130 characters): each is stored as given."""
    import json

    ids = [
        d["id"]
        for d in json.loads((shared_data / "gold" / "adahealth_case_reports_dev.bioc.json").read_text())["documents"]
    ]
    longest = max(ids, key=len)
    assert len(longest) > 128
    log.record_eval_score(logged(log), "bioc-ner", longest, {"f1": 1.0}, {}, {})
    assert [s.item_id for s in log.eval_scores("bioc-ner")] == [longest]
    with pytest.raises(UsageError, match="1 to 512"):
        log.record_eval_score(logged(log), "bioc-ner", "x" * 513, {"f1": 1.0}, {}, {})
