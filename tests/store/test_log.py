"""Runs, ratings, comparisons and queries through the public EvalLog API."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.core.errors import StoreError, UsageError
from app.core.types import FinishReason, note_sha256
from app.store import EvalLog, RunFilter, params_hash
from tests.store.helpers import NER, NOTE, QA, logged, model, request, result


def test_run_is_started_before_and_finished_after(log: EvalLog) -> None:
    req, m = request(), model()
    rid = log.start_run(req, m)
    started = log.get_run(rid)
    assert started is not None
    assert (started.status, started.answer, started.finish_reason) == ("started", None, None)
    log.finish_run(rid, result(req, m, answer="amoxicillin"))
    done = log.get_run(req.run_uuid)
    assert done is not None
    assert (done.status, done.answer, done.finish_reason) == ("finished", "amoxicillin", "stop")
    assert done.note_sha256 == note_sha256(NOTE) and done.note_chars == len(NOTE)
    assert done.note_text == NOTE
    assert done.model_sha256 == m.sha256 and done.model_quant == "Q4_K_M"
    assert done.sampling["max_tokens"] == 400 and done.params_hash == params_hash(req)
    assert done.grounding == {"checked": 2, "supported": 2, "unsupported": []}
    assert done.finished_at == datetime(2026, 11, 24, 8, 0, 1, tzinfo=UTC)


def test_finish_with_a_foreign_result_is_refused(log: EvalLog) -> None:
    a, b, m = request(), request(), model()
    rid = log.start_run(a, m)
    with pytest.raises(StoreError, match="result is for run"):
        log.finish_run(rid, result(b, m))
    with pytest.raises(StoreError, match="no run with id 999"):
        log.finish_run(999, result(a, m))


def test_failed_run_keeps_its_error(log: EvalLog) -> None:
    rid = log.start_run(request(), model())
    log.fail_run(rid, "prompt does not fit the context", FinishReason.ERROR)
    run = log.get_run(rid)
    assert run is not None
    assert (run.status, run.finish_reason, run.error) == ("finished", "error", "prompt does not fit the context")


def test_hash_only_storage_keeps_no_note_text(db_path: Path) -> None:
    with EvalLog.open(db_path, store_note_text=False) as log:
        rid = logged(log)
        run = log.get_run(rid)
        assert run is not None and run.note_text is None
        assert run.note_sha256 == note_sha256(NOTE) and run.note_chars == len(NOTE)
    raw = sqlite3.connect(db_path).execute("SELECT text, chars FROM notes").fetchall()
    assert raw == [(None, len(NOTE))]
    assert NOTE.encode() not in db_path.read_bytes()


def test_same_note_and_model_are_stored_once(log: EvalLog) -> None:
    for _ in range(3):
        logged(log)
    logged(log, m=model(1))
    assert log.count_runs() == 4
    assert [(m.file_name, m.runs) for m in log.models()] == [
        ("asclepius-m0.Q4_K_M.gguf", 3),
        ("asclepius-m1.Q4_K_M.gguf", 1),
    ]
    assert sqlite3.connect(log.path).execute("SELECT count(*) FROM notes").fetchone() == (1,)


def test_rerating_keeps_history_and_one_current(log: EvalLog) -> None:
    rid = logged(log)
    t0 = datetime(2026, 11, 24, 9, tzinfo=UTC)
    log.add_rating(rid, "dr-lee", 2, comment="misses the dose", at=t0)
    log.add_rating(rid, "dr-lee", 4, hallucination=False, at=t0 + timedelta(minutes=1))
    log.add_rating(rid, "dr-kim", 1, hallucination=True, corrected_answer="amoxicillin 500 mg tid", at=t0)
    history = log.rating_history(rid, rater="dr-lee")
    assert [(r.score, r.is_current, r.comment) for r in history] == [(2, False, "misses the dose"), (4, True, None)]
    current = {r.rater: r for r in log.current_ratings(rid)}
    assert {k: v.score for k, v in current.items()} == {"dr-lee": 4, "dr-kim": 1}
    assert current["dr-kim"].hallucination and current["dr-kim"].corrected_answer == "amoxicillin 500 mg tid"
    assert [(r.name, r.ratings) for r in log.raters()] == [("dr-kim", 1), ("dr-lee", 1)]


def test_current_rating_is_unique_in_the_schema(log: EvalLog) -> None:
    rid = logged(log)
    log.add_rating(rid, "dr-lee", 3)
    con = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        con.execute(
            "INSERT INTO ratings (run_id, rater_id, score, hallucination, is_current, created_at) "
            "VALUES (?, 1, 2, 0, 1, '2026-11-24T09:00:00.000000+00:00')",
            (rid,),
        )


@pytest.mark.parametrize("score", [0, 5, 2.5, True, "3"])
def test_rating_outside_the_rubric_is_refused(log: EvalLog, score: object) -> None:
    rid = logged(log)
    with pytest.raises(UsageError, match="1, 2, 3 or 4"):
        log.add_rating(rid, "dr-lee", score)  # type: ignore[arg-type]
    assert log.rating_history(rid) == []


def test_unfinished_or_unknown_runs_cannot_be_rated(log: EvalLog) -> None:
    rid = log.start_run(request(), model())
    with pytest.raises(UsageError, match="only finished runs"):
        log.add_rating(rid, "dr-lee", 3)
    with pytest.raises(UsageError, match="no run"):
        log.add_rating("no-such-uuid", "dr-lee", 3)


def test_rater_kind_is_fixed(log: EvalLog) -> None:
    rid = logged(log)
    log.add_rating(rid, "gpt-judge", 3, rater_kind="judge")
    with pytest.raises(UsageError, match="is a judge"):
        log.add_rating(rid, "gpt-judge", 3)


def test_comparison_records_sides_and_choice(log: EvalLog) -> None:
    a = logged(log, m=model(0))
    b = logged(log, m=model(1))
    cid = log.add_comparison(a, b, "dr-lee", "B", a_side="right", comment="B gives the dose")
    (c,) = log.comparisons(a)
    assert (c.id, c.run_a_id, c.run_b_id, c.a_side, c.choice, c.rater) == (cid, a, b, "right", "B", "dr-lee")
    assert log.comparisons(b) == [c]


def test_comparison_needs_the_same_item(log: EvalLog) -> None:
    a = logged(log, m=model(0))
    other_q = logged(log, request(instruction="Which diagnoses?"), model(1))
    other_note = logged(log, request(note=NOTE + " Discharged home."), model(1))
    for b in (other_q, other_note):
        with pytest.raises(UsageError, match="share the note"):
            log.add_comparison(a, b, "dr-lee", "A")
    with pytest.raises(UsageError, match="two different runs"):
        log.add_comparison(a, a, "dr-lee", "A")
    with pytest.raises(UsageError, match="choice must be"):
        log.add_comparison(a, other_q, "dr-lee", "C")
    assert log.comparisons() == []


def test_list_filters_and_pages(log: EvalLog) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    ids = []
    for i in range(30):
        task = NER if i % 3 else QA
        m = model(i % 2)
        rid = log.start_run(request(task=task, instruction=f"q{i}"), m)
        ids.append(rid)
    # Spread the start times over 30 days so that date filters and ordering are checked.
    con = sqlite3.connect(log.path)
    for i, rid in enumerate(ids):
        when = (t0 + timedelta(days=i)).isoformat(timespec="microseconds")
        con.execute("UPDATE runs SET started_at = ? WHERE id = ?", (when, rid))
    con.commit()
    assert log.count_runs() == 30
    assert log.count_runs(RunFilter(task=QA)) == 10
    assert log.count_runs(RunFilter(model=model(1).sha256[:8])) == 15
    assert log.count_runs(RunFilter(model=model(1).file_name)) == 15
    assert log.count_runs(RunFilter(since=t0 + timedelta(days=10), until=t0 + timedelta(days=20))) == 10
    page1 = log.list_runs(RunFilter(task=NER), offset=0, limit=5)
    page2 = log.list_runs(RunFilter(task=NER), offset=5, limit=5)
    assert [r.instruction for r in page1] == ["q29", "q28", "q26", "q25", "q23"]
    assert [r.instruction for r in page2] == ["q22", "q20", "q19", "q17", "q16"]
    assert all(r.note_text is None for r in page1)
    assert [r.instruction for r in log.latest_runs(QA, limit=2)] == ["q27", "q24"]


def test_rater_filter(log: EvalLog) -> None:
    a, b = logged(log), logged(log)
    log.add_rating(a, "dr-lee", 3)
    log.add_rating(b, "dr-kim", 3)
    assert [r.id for r in log.list_runs(RunFilter(rater="dr-lee"))] == [a]


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RunFilter(since=datetime(2026, 11, 1))


def test_history_queries_search_rated_and_scores_live_in_the_store(tmp_path: Path) -> None:
    from app.store import RunQuery

    with EvalLog.open(tmp_path / "h.db") as log:
        a = logged(log, request(instruction="List 100% of the meds_now"), answer="amoxicillin")
        b = logged(log, request(instruction="Summarize."), answer="A short summary")
        log.add_rating(a, "dr-lee", 2)
        log.add_rating(a, "dr-kim", 3)
        assert [(v.id, mean, n) for v, mean, n in log.history_page(RunQuery())] == [(b, None, 0), (a, 2.5, 2)]
        # LIKE wildcards in the search are literal: "100%" and "_" match themselves only.
        assert [v.id for v, _, _ in log.history_page(RunQuery(search="100% of"))] == [a]
        assert log.count_history(RunQuery(search="meds_now")) == 1 and log.count_history(RunQuery(search="of_the")) == 0
        assert [v.id for v, _, _ in log.history_page(RunQuery(rated=False))] == [b]
        assert log.count_history(RunQuery(rated=True)) == 1
        assert [v.id for v, _, _ in log.history_page(RunQuery(), offset=1, limit=1)] == [a]


def test_finished_answers_keeps_the_latest_answered_run_per_resume_key(tmp_path: Path) -> None:
    from app.core.types import FinishReason

    with EvalLog.open(tmp_path / "k.db") as log:
        m = model()
        from sqlalchemy import update

        from app.store.models import Run

        # Two answered runs of one key: what a log written before items were claimed can hold (start_run
        # now refuses the second), so the key is set directly.
        for answer, reason in (("old", FinishReason.STOP), ("new", FinishReason.LENGTH), ("x", FinishReason.ERROR)):
            req = request()
            rid = log.start_run(req, m)
            log.finish_run(rid, result(req, m, answer=answer, reason=reason))
            with log.write_session() as s:
                s.execute(update(Run).where(Run.id == rid).values(resume_key="key-1"))
        got = log.finished_answers(["key-1", "key-2"])
        assert list(got) == ["key-1"] and got["key-1"].answer == "new" and got["key-1"].model_file == m.file_name
        assert log.finished_keys(["key-1", "key-2"]) == {"key-1"}


@pytest.mark.parametrize(
    ("reason", "answer", "why"),
    [
        (FinishReason.ERROR, "half an ans", "this run failed"),
        (FinishReason.CANCELLED, "amoxicillin 5", "stopped before the answer ended"),
        (FinishReason.STOP, "  \n", "the answer is empty"),
    ],
)
def test_a_run_that_is_not_rateable_is_refused_naming_it(
    log: EvalLog, reason: FinishReason, answer: str, why: str
) -> None:
    # A failed or stopped run is stored as "finished" too: the finish reason and the answer decide.
    req, m = request(), model()
    rid = log.log_run(req, m, result(req, m, answer=answer, reason=reason))
    with pytest.raises(UsageError, match=why) as e:
        log.add_rating(req.run_uuid, "dr-lee", 3)
    assert req.run_uuid in str(e.value) and "only finished runs" in str(e.value)
    assert log.rating_history(rid) == [] and log.raters() == []


def test_a_run_failed_before_any_answer_cannot_be_rated(log: EvalLog) -> None:
    rid = log.start_run(request(), model())
    log.fail_run(rid, "prompt does not fit the context", FinishReason.ERROR)
    with pytest.raises(UsageError, match=f"run {rid} cannot be rated: this run failed"):
        log.add_rating(rid, "dr-lee", 3)
    assert log.rating_history(rid) == []
