"""Statistics against values worked out by hand (or by the reference libraries on the same numbers)."""

from __future__ import annotations

import math
import sqlite3

import krippendorff
import numpy as np
import pytest

from app.store import EvalLog, RunFilter
from app.store.stats import agreement, bootstrap_ci, judge_correlation, mean_scores, paired_test, win_rates
from tests.store.helpers import NER, QA, logged, model, request

A, B = model(0), model(1)


def items(log: EvalLog, n: int, task: str = NER) -> list[tuple[int, int]]:
    """n items answered by both models: (run of A, run of B)."""
    return [
        (
            logged(log, request(task=task, instruction=f"q{i}"), A),
            logged(log, request(task=task, instruction=f"q{i}"), B),
        )
        for i in range(n)
    ]


def test_bootstrap_interval() -> None:
    assert bootstrap_ci([3, 3, 3, 3]) == (3.0, 3.0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5, size=400)
    low, high = bootstrap_ci(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)  # the normal approximation, close at n = 400
    assert low == pytest.approx(x.mean() - half, abs=0.02) and high == pytest.approx(x.mean() + half, abs=0.02)
    assert bootstrap_ci(x) == (low, high)  # fixed seed: reproducible


def test_mean_per_model_and_task_averages_raters_first(log: EvalLog) -> None:
    pairs = items(log, 3)
    for (a, b), (sa, sb) in zip(pairs, [(4, 2), (3, 2), (4, 1)], strict=True):
        log.add_rating(a, "dr-lee", sa)
        log.add_rating(b, "dr-lee", sb)
    log.add_rating(pairs[0][1], "dr-kim", 4)  # run scores for B: (2+4)/2, 2, 1
    log.add_rating(pairs[0][1], "dr-lee", 2)  # superseded value is the same: history only
    log.add_rating(pairs[1][0], "judge-x", 1, rater_kind="judge")  # judges are not human scores
    got = {m.model.split(" ")[0]: m for m in mean_scores(log)}
    a, b = got[A.file_name], got[B.file_name]
    assert (a.task, a.runs, a.ratings, a.mean) == (NER, 3, 3, pytest.approx(11 / 3))
    assert (b.runs, b.ratings, b.mean) == (3, 4, pytest.approx(2.0))
    assert a.low <= a.mean <= a.high and a.low >= 3.0 and a.high <= 4.0


def test_paired_t_and_wilcoxon_known_values(log: EvalLog) -> None:
    diffs = [1, 1, 0, 2, 1, 3]
    for (a, b), d in zip(items(log, 6), diffs, strict=True):
        log.add_rating(a, "dr-lee", 1 + d)
        log.add_rating(b, "dr-lee", 1)
    logged(log, request(instruction="only A answered"), A)  # unpaired: ignored
    t = paired_test(log, A.sha256[:10], B.file_name)
    assert t.items == 6 and t.mean_diff == pytest.approx(8 / 6)
    # t = mean(d) / (sd(d) / sqrt(n)): mean 4/3, sd sqrt(16/15), so t = sqrt(10) = 3.1623.
    d = np.array(diffs, dtype=float)
    assert t.t_stat == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(6)))
    assert t.t_stat == pytest.approx(3.1623, abs=1e-4)
    # Wilcoxon: five nonzero differences, ranks of |1,1,2,1,3| = 2,2,4,2,5; no negatives, so W = 0.
    assert t.wilcoxon_stat == 0.0 and t.wilcoxon_p == pytest.approx(0.0625, abs=1e-3)
    assert t.t_p < 0.05


def test_krippendorff_alpha_on_doubly_rated_runs(log: EvalLog) -> None:
    runs = [logged(log, request(instruction=f"q{i}")) for i in range(6)]
    lee = [1, 2, 3, 4, 4, 2]
    kim = [1, 2, 4, 4, 3, None]
    for r, s1, s2 in zip(runs, lee, kim, strict=True):
        log.add_rating(r, "dr-lee", s1)
        if s2 is not None:
            log.add_rating(r, "dr-kim", s2)
    ag = agreement(log)
    assert (ag.runs, ag.raters) == (5, 2)  # the singly rated run is left out
    expected = krippendorff.alpha(
        reliability_data=[[1, 2, 4, 4, 3], [1, 2, 3, 4, 4]], level_of_measurement="ordinal", value_domain=[1, 2, 3, 4]
    )
    assert ag.alpha == pytest.approx(expected) and 0.5 < ag.alpha < 1.0


def test_krippendorff_perfect_and_reversed(log: EvalLog) -> None:
    runs = [logged(log, request(instruction=f"q{i}")) for i in range(4)]
    for r, s in zip(runs, [1, 2, 3, 4], strict=True):
        log.add_rating(r, "dr-lee", s)
        log.add_rating(r, "dr-kim", s)
    assert agreement(log).alpha == pytest.approx(1.0)
    for r, s in zip(runs, [4, 3, 2, 1], strict=True):
        log.add_rating(r, "dr-kim", s)
    assert agreement(log).alpha < 0


def test_win_rates(log: EvalLog) -> None:
    pairs = items(log, 6)
    for (a, b), choice in zip(pairs, ["A", "A", "B", "tie", "both_bad", "A"], strict=True):
        log.add_comparison(a, b, "dr-lee", choice, a_side="left")
    got = {w.model.split(" ")[0]: w for w in win_rates(log)}
    a, b = got[A.file_name], got[B.file_name]
    assert (a.comparisons, a.wins, a.losses, a.ties, a.both_bad) == (6, 3, 1, 1, 1)
    assert a.win_rate == pytest.approx(3.5 / 5) and b.win_rate == pytest.approx(1.5 / 5)
    assert win_rates(log, RunFilter(task=QA)) == []


def test_judge_correlation(log: EvalLog) -> None:
    runs = [logged(log, request(instruction=f"q{i}")) for i in range(5)]
    human = [1, 2, 3, 4, 4]
    judge = [1, 3, 3, 4, 4]
    for r, h, j in zip(runs, human, judge, strict=True):
        log.add_rating(r, "dr-lee", h)
        log.add_rating(r, "llm-judge", j, rater_kind="judge")
    (c,) = judge_correlation(log)
    assert (c.judge, c.runs) == ("llm-judge", 5)
    assert c.exact_agreement == pytest.approx(4 / 5)
    assert c.pearson == pytest.approx(float(np.corrcoef(human, judge)[0, 1]))
    # Spearman = Pearson on ranks: human ranks 1,2,3,4.5,4.5; judge ranks 1,2.5,2.5,4.5,4.5.
    assert c.spearman == pytest.approx(float(np.corrcoef([1, 2, 3, 4.5, 4.5], [1, 2.5, 2.5, 4.5, 4.5])[0, 1]))


def test_bootstrap_is_scipys_percentile_interval() -> None:
    from scipy import stats as sps

    x = np.array([1, 2, 2, 3, 4, 4, 4, 3, 2, 1, 3, 4], dtype=float)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=2000, method="percentile", rng=np.random.default_rng(20261124)
    ).confidence_interval
    assert bootstrap_ci(x) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert all(math.isnan(v) for v in bootstrap_ci([4]))  # one run: no interval, not [4, 4]


def test_paired_test_says_not_enough_data_instead_of_a_number(log: EvalLog) -> None:
    two = items(log, 2)
    for (a, b), (sa, sb) in zip(two, [(4, 2), (3, 1)], strict=True):
        log.add_rating(a, "dr-lee", sa)
        log.add_rating(b, "dr-lee", sb)
    t = paired_test(log, A.file_name, B.file_name)
    assert t.items == 2 and t.mean_diff == pytest.approx(2.0)
    assert math.isnan(t.t_p) and math.isnan(t.wilcoxon_p) and "not enough data: 2 shared rated items" in t.reason


def test_paired_test_without_differences_or_with_equal_ones(log: EvalLog) -> None:
    pairs = items(log, 5)
    for a, b in pairs:  # identical scores everywhere
        log.add_rating(a, "dr-lee", 3)
        log.add_rating(b, "dr-lee", 3)
    t = paired_test(log, A.file_name, B.file_name)
    assert t.items == 5 and math.isnan(t.t_p) and math.isnan(t.wilcoxon_p)
    assert "no differences" in t.reason
    for a, _ in pairs:  # every item now differs by exactly +1: zero variance
        log.add_rating(a, "dr-lee", 4)
    t = paired_test(log, A.file_name, B.file_name)
    assert math.isnan(t.t_stat) and math.isnan(t.t_p) and "zero variance" in t.reason
    assert t.wilcoxon_p == pytest.approx(0.0625, abs=1e-3)  # five positive ranks: the exact two-sided p


def test_agreement_with_one_value_or_one_run_is_not_enough_data(log: EvalLog) -> None:
    runs = [logged(log, request(instruction=f"q{i}")) for i in range(3)]
    log.add_rating(runs[0], "dr-lee", 2)
    log.add_rating(runs[0], "dr-kim", 3)
    ag = agreement(log)
    assert ag.runs == 1 and math.isnan(ag.alpha) and "not enough data" in ag.reason
    for r in runs:
        log.add_rating(r, "dr-lee", 3)
        log.add_rating(r, "dr-kim", 3)
    ag = agreement(log)
    assert ag.runs == 3 and math.isnan(ag.alpha) and "every rating has the same value" in ag.reason


def test_win_rates_honour_model_and_time_filters(log: EvalLog) -> None:
    from datetime import UTC, datetime

    C = model(2)
    early, late = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
    moved = []
    for i, (other, when, choice) in enumerate([(B, early, "A"), (B, late, "B"), (C, late, "A"), (C, late, "tie")]):
        ra = logged(log, request(instruction=f"q{i}"), A)
        rb = logged(log, request(instruction=f"q{i}"), other)
        log.add_comparison(ra, rb, "dr-lee", choice)
        moved += [(when.isoformat(timespec="microseconds"), ra), (when.isoformat(timespec="microseconds"), rb)]
    con = sqlite3.connect(log.path)  # the log stamps runs with the time they were logged: move them
    con.executemany("UPDATE runs SET started_at = ? WHERE id = ?", moved)
    con.commit()
    con.close()
    by = {w.model.split(" ")[0]: w for w in win_rates(log)}
    assert (by[A.file_name].wins, by[A.file_name].losses, by[A.file_name].ties) == (2, 1, 1)
    late_only = {w.model.split(" ")[0]: w for w in win_rates(log, RunFilter(since=datetime(2026, 11, 10, tzinfo=UTC)))}
    assert (late_only[A.file_name].wins, late_only[A.file_name].losses) == (1, 1)
    assert (late_only[B.file_name].wins, late_only[B.file_name].comparisons) == (1, 1)
    early_only = win_rates(log, RunFilter(until=datetime(2026, 11, 10, tzinfo=UTC)))
    assert {w.model.split(" ")[0]: w.win_rate for w in early_only} == {A.file_name: 1.0, B.file_name: 0.0}
    (only_c,) = win_rates(log, RunFilter(model=C.file_name))  # C's record only: one loss and one tie vs A
    assert only_c.model.startswith(C.file_name) and (only_c.wins, only_c.losses, only_c.ties) == (0, 1, 1)
    (b_late,) = win_rates(log, RunFilter(model=B.sha256[:12], since=datetime(2026, 11, 10, tzinfo=UTC)))
    assert (b_late.wins, b_late.losses, b_late.comparisons) == (1, 0, 1)


def _plant_rating(log: EvalLog, run_id: int, rater: str, score: int) -> None:
    """A rating written straight into the table, as a log from before the store refused it can hold."""
    rater_id = log.add_rater(rater)
    con = sqlite3.connect(log.path)
    con.execute(
        "INSERT INTO ratings (run_id, rater_id, score, hallucination, is_current, created_at) "
        "VALUES (?, ?, ?, 0, 1, '2026-11-24T09:00:00.000000+00:00')",
        (run_id, rater_id, score),
    )
    con.commit()
    con.close()


def test_ratings_of_runs_that_cannot_be_rated_are_left_out_and_counted(log: EvalLog) -> None:
    from app.core.types import FinishReason

    ok = logged(log, request(instruction="q0"), A)
    failed = log.start_run(request(instruction="q1"), A)
    log.fail_run(failed, "the engine crashed", FinishReason.ERROR)
    log.add_rating(ok, "dr-lee", 4)
    _plant_rating(log, failed, "dr-lee", 1)
    _plant_rating(log, failed, "dr-kim", 1)
    (m,) = mean_scores(log)
    assert (m.runs, m.ratings, m.mean) == (1, 1, 4.0)
    assert agreement(log).runs == 0  # the failed run's two ratings do not make it doubly rated
    from app.store.stats import left_out_ratings  # here: the assertions above hold without it

    assert left_out_ratings(log) == 2
    assert left_out_ratings(log, RunFilter(rater="dr-kim")) == 1 and left_out_ratings(log, RunFilter(task=QA)) == 0


def test_agreement_per_task_has_intervals_and_flags_are_counted(log: EvalLog) -> None:
    from app.store.estimates import ordinal_alpha
    from app.store.stats import agreement_per_task, flag_counts

    lee = {NER: [1, 2, 3, 4, 4, 2, 3, 1], QA: [4, 4, 3, 1, 2, 2, 3, 4]}
    kim = {NER: [1, 2, 4, 4, 3, 2, 3, 2], QA: [3, 4, 3, 1, 1, 3, 3, 4]}
    for task in (NER, QA):
        for i, (s1, s2) in enumerate(zip(lee[task], kim[task], strict=True)):
            run = logged(log, request(task=task, instruction=f"{task} q{i}"), A if i % 2 else B)
            log.add_rating(run, "dr-lee", s1, hallucination=s1 == 1)
            log.add_rating(run, "dr-kim", s2)
    per_task = {a.task: a for a in agreement_per_task(log)}
    assert set(per_task) == {NER, QA}
    for task, a in per_task.items():
        assert a.runs == 8 and a.raters == 2
        assert a.alpha == pytest.approx(ordinal_alpha([kim[task], lee[task]]))
        assert a.low < a.alpha < a.high
    overall = agreement(log)
    assert overall.task is None and overall.runs == 16 and overall.low < overall.alpha < overall.high
    assert [a.task for a in agreement_per_task(log, RunFilter(task=QA))] == [QA]
    counts = {(c.model.split(" ")[0], c.task): c for c in flag_counts(log)}
    # lee's 1s are flagged: NER runs 0 (B) and 7 (A); QA run 3 (A). Score-1 ratings add kim's QA run 4 (B).
    assert (counts[(A.file_name, NER)].hallucination, counts[(A.file_name, NER)].score_1) == (1, 1)
    assert (counts[(B.file_name, NER)].hallucination, counts[(B.file_name, NER)].score_1) == (1, 2)
    assert (counts[(A.file_name, QA)].hallucination, counts[(A.file_name, QA)].score_1) == (1, 2)
    assert (counts[(B.file_name, QA)].hallucination, counts[(B.file_name, QA)].score_1) == (0, 1)
    assert all(c.ratings == 8 for c in counts.values())
