"""Evaluation studies in the log: the assignment, a rater's packet rows, importing responses (idempotent,
later supersedes, all-or-nothing, concurrent coordinators), the shared workstation, adjudication, the data."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.core.types import FinishReason
from app.store import EvalLog
from app.store.studies import NewStudy, NewStudyArm, NewStudyItem
from app.store.study_assign import assign
from tests.store.helpers import NOTE, QA, logged, model, request

RATERS = ("ana", "ben", "cy")


@dataclass(frozen=True)
class Row:
    """The fields of ``app.core.packets.ResponseRow`` (the store reads nothing else)."""

    answer_uid: str
    score: int
    hallucination: bool = False
    comment: str | None = None
    corrected_answer: str | None = None
    rated_at: str = "2026-12-01T10:00:00+00:00"


@dataclass(frozen=True)
class Resp:
    study_uuid: str
    rater: str
    rows: tuple[Row, ...]


def make_study(log: EvalLog, items: int = 6, reasons: dict[int, FinishReason] | None = None, **kw: object) -> str:
    """A study of ``items`` x 2 arms with every answer generated (item i of arm 0 ends with reasons[i])."""
    spec = NewStudy(
        name="pilot",
        items=tuple(NewStudyItem(f"q{i}", f"{NOTE} Day {i}.", QA, f"Question {i}?") for i in range(items)),
        arms=(NewStudyArm("m0", model(0).sha256), NewStudyArm("m1", model(1).sha256)),
        raters=RATERS,
        overlap=2,
        calibration=2,
        seed=7,
        adjudicators=("dr-adj",),
        **kw,  # type: ignore[arg-type]
    )
    info = log.create_study(spec)
    reasons = reasons or {}
    for p in log.pending_study_answers("pilot"):
        arm = int(p.arm[1])
        i = int(p.item_key[1:])
        reason = reasons.get(i, FinishReason.STOP) if arm == 0 else FinishReason.STOP
        answer = "" if reason == FinishReason.CANCELLED else f"answer {i} by {p.arm}"
        rid = logged(log, request(p.note, p.task, p.instruction), model(arm), answer=answer, reason=reason)
        log.link_study_answer(p.uid, rid)
    return info.uuid


def test_assignment_is_balanced_deterministic_and_shuffled_per_rater() -> None:
    plan = assign(items=100, arms=2, raters=RATERS, overlap=2, calibration=10, seed=5)
    assert plan == assign(items=100, arms=2, raters=RATERS, overlap=2, calibration=10, seed=5)
    assert plan != assign(items=100, arms=2, raters=RATERS, overlap=2, calibration=10, seed=6)
    per_answer = Counter(key for order in plan.order.values() for key in order)
    for (item, _arm), n in per_answer.items():
        assert n == (3 if item in plan.calibration else 2)  # calibration: everyone; the rest: exactly k
    assert len(per_answer) == 200 and len(plan.calibration) == 10
    loads = [len(o) for o in plan.order.values()]
    assert max(loads) - min(loads) <= 2  # within one item (2 arms)
    for order in plan.order.values():
        arms = Counter(a for _, a in order)
        assert arms[0] == arms[1]  # every arm of an item goes to the same rater
        items = [i for i, _ in order]
        assert all(items[j] == items[j + 1] for j in range(0, len(items), 2))  # an item's arms side by side
    orders = [[i for i, _ in o][::2] for o in plan.order.values()]
    assert orders[0] != sorted(orders[0])  # shuffled, not item order
    pairs = Counter(frozenset(p) for p in [("ana", "ben"), ("ana", "cy"), ("ben", "cy")])
    for pair in pairs:  # every pair of raters shares items, so pairwise agreement has data
        a, b = tuple(pair)
        assert set(plan.order[a]) & set(plan.order[b])


def test_a_bad_design_is_refused_with_every_problem(log: EvalLog) -> None:
    spec = NewStudy("x", (NewStudyItem("a", NOTE, QA, "Q?"),), (), ("ana", "ana"), overlap=3, calibration=2, seed=1)
    with pytest.raises(UsageError) as e:
        log.create_study(spec)
    msg = str(e.value)
    assert "at least one arm" in msg and "named twice" in msg and "--overlap" in msg and "--calibration" in msg
    assert log.studies() == []


def test_packet_rows_follow_the_assignment_and_show_failures(log: EvalLog) -> None:
    make_study(log, reasons={0: FinishReason.ERROR, 1: FinishReason.CANCELLED, 2: FinishReason.LENGTH})
    info = log.study("pilot")
    assert (info.items, info.answers, info.generated, info.arms) == (6, 12, 12, ("m0", "m1"))
    assert info.raters == RATERS and info.adjudicators == ("dr-adj",)
    rows = {r: log.packet_rows("pilot", r) for r in RATERS}
    assert sum(len(v) for v in rows.values()) == 2 * 2 * 3 + 4 * 2 * 2  # calibration x 3 raters + rest x k
    for v in rows.values():
        assert [r["position"] for r in v] == list(range(len(v)))
        assert all("m0" not in r["answer_uid"] and r["note"].startswith(NOTE) for r in v)
    every = {r["answer_uid"]: r for v in rows.values() for r in v}
    assert {f for f in (r["failure"] for r in every.values()) if f} == {
        "the model failed to answer (error)",
        "the answer was stopped before it ended",
        "the answer was cut at the length limit (incomplete)",
    }
    with pytest.raises(UsageError, match="not registered as rater"):
        log.packet_rows("pilot", "mallory")
    with pytest.raises(UsageError, match="no study 'nope'"):
        log.study("nope")


def responses_for(log: EvalLog, study_uuid: str, rater: str, score: int = 3, at: str = "2026-12-01T10:00:00+00:00"):  # type: ignore[no-untyped-def]
    rows = tuple(Row(r["answer_uid"], score, rated_at=at) for r in log.packet_rows("pilot", rater))
    return Resp(study_uuid, rater, rows)


def test_import_is_idempotent_later_supersedes_and_failures_are_rated(log: EvalLog) -> None:
    uuid = make_study(log, reasons={0: FinishReason.ERROR, 1: FinishReason.CANCELLED})
    first = responses_for(log, uuid, "ana", score=1)
    report = log.import_responses("pilot", first)
    assert (report.added, report.unchanged, report.superseded, report.kept_newer) == (len(first.rows), 0, 0, 0)
    again = log.import_responses("pilot", first)
    assert (again.added, again.unchanged) == (0, len(first.rows))
    later = responses_for(log, uuid, "ana", score=4, at="2026-12-02T10:00:00+00:00")
    assert log.import_responses("pilot", later).superseded == len(first.rows)
    stale = log.import_responses("pilot", responses_for(log, uuid, "ana", score=2, at="2026-11-30T10:00:00+00:00"))
    assert stale.kept_newer == len(first.rows)
    data = log.study_data("pilot")
    assert {r.score for r in data.ratings} == {4} and len(data.ratings) == len(first.rows)
    failure = {r["answer_uid"]: r["failure"] for r in log.packet_rows("pilot", "ana")}
    assert any(failure.values())  # ana's packet holds a failed answer (seed 7), rated like any other
    assert {r.answer: r.failed for r in data.ratings} == {uid: why is not None for uid, why in failure.items()}
    # imported ratings are ordinary ratings of the runs: the superseded ones stay as history
    with log.read_session() as s:
        from sqlalchemy import func, select

        from app.store.models import Rating

        total = s.scalar(select(func.count()).select_from(Rating))
        current = s.scalar(select(func.count()).select_from(Rating).where(Rating.is_current.is_(True)))
    assert (total, current) == (2 * len(first.rows), len(first.rows))
    from app.store.export import iter_rows

    _names, exported = iter_rows(log, "ratings")
    assert sorted((r["rater"], r["score"]) for r in exported) == [("ana", 4)] * len(first.rows)


def test_a_bad_file_is_refused_whole_and_names_each_row(log: EvalLog) -> None:
    uuid = make_study(log)
    ana = log.packet_rows("pilot", "ana")
    ben_only = next(r["answer_uid"] for r in log.packet_rows("pilot", "ben") if r["answer_uid"] not in
                    {a["answer_uid"] for a in ana})  # fmt: skip
    rows = (Row(ana[0]["answer_uid"], 3), Row(ana[1]["answer_uid"], 7), Row(ben_only, 2), Row(ana[0]["answer_uid"], 3),
            Row(ana[2]["answer_uid"], 2, rated_at="yesterday"))  # fmt: skip
    with pytest.raises(UsageError) as e:
        log.import_responses("pilot", Resp(uuid, "ana", rows))
    msg = str(e.value)
    assert "4 of 5 rating(s) refused, nothing recorded" in msg
    assert "row 2" in msg and "not 7" in msg and "row 3" in msg and "not an answer assigned to ana" in msg
    assert "row 4" in msg and "rated twice" in msg and "row 5" in msg and "time zone" in msg
    assert log.study_data("pilot").ratings == ()
    with pytest.raises(UsageError, match="another study"):
        log.import_responses("pilot", Resp("other-uuid", "ana", rows[:1]))
    with pytest.raises(UsageError, match="'mallory' is not registered as rater"):
        log.import_responses("pilot", Resp(uuid, "mallory", rows[:1]))


def test_an_unfinished_run_is_not_rateable_in_a_study(log: EvalLog) -> None:
    log.create_study(NewStudy("pilot", (NewStudyItem("q", NOTE, QA, "Q?"),), (NewStudyArm("m0"),), ("ana",), 1, 0, 1))
    (pending,) = log.pending_study_answers("pilot")
    rid = log.start_run(request(pending.note, pending.task, pending.instruction), model(0))
    log.link_study_answer(pending.uid, rid)
    with pytest.raises(UsageError, match="its run has not finished"):
        log.rate_study_answer("pilot", "ana", pending.uid, 2)
    assert [p.uid for p in log.pending_study_answers("pilot")] == [pending.uid]  # generated again on resume


def test_shared_workstation_rating_and_adjudication_keep_the_originals(log: EvalLog) -> None:
    make_study(log, reasons={0: FinishReason.ERROR})
    uid = log.packet_rows("pilot", "ana")[0]["answer_uid"]
    first = log.rate_study_answer("pilot", "ana", uid, 1, hallucination=True, comment="wrong drug",
                                  rated_at="2026-12-01T09:00:00+00:00")  # fmt: skip
    second = log.rate_study_answer("pilot", "ana", uid, 2, rated_at="2026-12-01T09:05:00+00:00")
    assert first != second
    with pytest.raises(UsageError, match="not 5"):
        log.rate_study_answer("pilot", "ana", uid, 5)
    with pytest.raises(UsageError, match="not registered as adjudicator"):
        log.adjudicate("pilot", uid, "ana", 3, "consensus")
    with pytest.raises(UsageError, match="needs a reason"):
        log.adjudicate("pilot", uid, "dr-adj", 3, "  ")
    log.adjudicate("pilot", uid, "dr-adj", 3, "first look")
    log.adjudicate("pilot", uid, "dr-adj", 2, "omits the dose")
    data = log.study_data("pilot")
    assert [(a.answer, a.score, a.reason) for a in data.adjudications] == [(uid, 2, "omits the dose")]
    assert [(r.rater, r.score, r.hallucination) for r in data.ratings] == [("ana", 2, False)]
    assert data.assigned == {r: len(log.packet_rows("pilot", r)) for r in RATERS}
    assert data.answers_per_arm == {"m0": 6, "m1": 6}


def test_two_coordinators_importing_the_same_file_at_once_end_with_one_complete_result(db_path: Path) -> None:
    with EvalLog.open(db_path) as log:
        uuid = make_study(log, items=20)
        resp = responses_for(log, uuid, "ben", score=3)
    start = threading.Barrier(2)
    reports: list[object] = []
    errors: list[BaseException] = []

    def coordinator() -> None:
        with EvalLog.open(db_path, timeout_s=30.0) as own:
            start.wait()  # both begin together: their write transactions meet in SQLite's lock
            try:
                reports.append(own.import_responses("pilot", resp))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=coordinator) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted((r.added, r.unchanged) for r in reports) == [(0, len(resp.rows)), (len(resp.rows), 0)]  # type: ignore[attr-defined]
    with EvalLog.open(db_path) as log:
        data = log.study_data("pilot")
    assert len(data.ratings) == len(resp.rows) and {r.rater for r in data.ratings} == {"ben"}


def test_a_hash_only_log_refuses_a_study(tmp_path: Path) -> None:
    with EvalLog.open(tmp_path / "h.db", store_note_text=False) as log, pytest.raises(UsageError, match="hashes"):
        log.create_study(NewStudy("p", (NewStudyItem("q", NOTE, QA, "Q?"),), (NewStudyArm("m"),), ("a",), 1, 0, 1))


def test_a_study_rating_that_contradicts_the_rubric_needs_a_comment(log: EvalLog) -> None:
    """The rubric rule of every rating (``ratings.rating_problem``) holds in a study too: Hallucination with a
    score above 1 is refused without a comment (the shared workstation and an import share ``_check_rows``)."""
    make_study(log)
    uid = log.packet_rows("pilot", "ana")[0]["answer_uid"]
    with pytest.raises(UsageError, match="comment"):
        log.rate_study_answer("pilot", "ana", uid, 3, hallucination=True)
    assert log.rate_study_answer("pilot", "ana", uid, 3, hallucination=True, comment="minor, harmless slip") > 0
