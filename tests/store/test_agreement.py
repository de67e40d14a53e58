"""Agreement and study statistics against values worked out by hand, the published textbook example, and the
reference libraries (``krippendorff``, scipy) on the same numbers."""

from __future__ import annotations

import json
import math

import krippendorff
import numpy as np
import pytest
from scipy import stats as sps

from app.store.agreement import ALL_TASKS, study_stats
from app.store.estimates import alpha_estimate, correlations, ordinal_alpha
from app.store.study_data import Adjudicated, JudgeScore, RatedAnswer, StudyData
from tests.store.study_samples import simulated_study

NAN = math.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units example
# (values 1-5, blanks missing); the paper gives alpha = 0.815 for the ordinal metric.
TEXTBOOK = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def test_textbook_example() -> None:
    got = ordinal_alpha(TEXTBOOK, domain=[1, 2, 3, 4, 5])
    assert round(got, 3) == 0.815
    assert got == pytest.approx(
        krippendorff.alpha(reliability_data=TEXTBOOK, level_of_measurement="ordinal"), abs=1e-12
    )


def test_hand_derived_small_matrix() -> None:
    # Units (1,1), (2,2), (3,4): o11 = o22 = 2, o34 = o43 = 1; n = (2, 2, 1, 1), n = 6. Only 3-4 disagrees,
    # with delta2 = (n3 + n4 - (n3 + n4)/2)^2 = 1, so sum(o delta2) = 2. The expected sum over ordered pairs:
    # 2 * (2*2*4 + 2*1*12.25 + 2*1*20.25 + 2*1*2.25 + 2*1*6.25 + 1*1*1) = 198. alpha = 1 - 5 * 2 / 198.
    assert ordinal_alpha([[1, 2, 3], [1, 2, 4]]) == pytest.approx(94 / 99, abs=1e-12)
    # Ordinal, not interval: the same ranks with other spacing give the same alpha only if frequencies match.
    assert ordinal_alpha([[1, 2, 3], [1, 2, 4]]) != pytest.approx(ordinal_alpha([[1, 3, 3], [1, 3, 4]]))


def test_equals_the_krippendorff_package_on_random_matrices_with_missing_values() -> None:
    rng = np.random.default_rng(2026)
    checked = 0
    for _ in range(300):
        m = rng.integers(1, 5, size=(int(rng.integers(2, 7)), int(rng.integers(2, 50)))).astype(float)
        m[rng.random(m.shape) < rng.uniform(0, 0.6)] = np.nan
        ours = ordinal_alpha(m)
        try:
            ref = krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4])
        except ValueError:  # the package refuses matrices with one value or no pairable unit
            assert math.isnan(ours)
            continue
        if math.isnan(ref):
            assert math.isnan(ours)
            continue
        assert ours == pytest.approx(ref, abs=1e-9)
        checked += 1
    assert checked > 250  # the comparison ran, not only the degenerate branches


def test_degenerate_cases_give_none_with_a_reason_never_nan() -> None:
    one_rater = alpha_estimate([[1, 2, 3, 4]])
    same = alpha_estimate([[3, 3, 3], [3, 3, 3]])
    one_unit = alpha_estimate([[1, NAN], [2, 4]])
    for est, words in ((one_rater, "0 answers rated by two"), (same, "same value"), (one_unit, "1 answers")):
        assert est.alpha is None and est.low is None and words in est.reason
        json.dumps(est.to_json(), allow_nan=False)
    assert same.units == 3 and same.values == 6


def test_bootstrap_interval_is_seeded_and_brackets_alpha() -> None:
    m = simulated_study(items=40).ratings
    data = simulated_study(items=40)
    a = study_stats(data).alpha
    b = study_stats(data).alpha
    c = study_stats(data, seed=1).alpha
    assert m and a == b, "same data, same seed: the same interval"
    assert (a.low, a.high) != (c.low, c.high) and a.alpha == c.alpha
    assert a.low < a.alpha < a.high


def test_study_alpha_equals_the_package_on_the_same_matrix() -> None:
    data = simulated_study()
    raters, answers = sorted(data.raters), sorted({r.answer for r in data.ratings})
    m = np.full((len(raters), len(answers)), np.nan)
    for r in data.ratings:
        m[raters.index(r.rater), answers.index(r.answer)] = r.score
    st = study_stats(data)
    ref = krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4])
    assert st.alpha.alpha == pytest.approx(ref, abs=1e-9)
    assert st.alpha.units == len(answers) and st.alpha.raters == 3
    calib = [j for j, a in enumerate(answers) if int(a.split("-")[1]) < 10]
    assert st.calibration.units == 20 and st.calibration.alpha == pytest.approx(ordinal_alpha(m[:, calib]))


def _r(item: str, arm: str, rater: str, score: int, task: str = "qa", **kw: bool) -> RatedAnswer:
    return RatedAnswer(item, task, arm, f"{item}/{arm}", rater, score, **kw)


def _small() -> StudyData:
    """Four items x two arms, two raters; item i4 is a summary. Scores chosen so every figure is by hand."""
    ratings = [
        _r("i1", "A", "lee", 4), _r("i1", "A", "kim", 4), _r("i1", "B", "lee", 2), _r("i1", "B", "kim", 3),
        _r("i2", "A", "lee", 3), _r("i2", "A", "kim", 1, hallucination=True), _r("i2", "B", "lee", 1),
        _r("i2", "B", "kim", 1, failed=True),
        _r("i3", "A", "lee", 4), _r("i3", "B", "lee", 2, hallucination=True),
        _r("i4", "A", "lee", 4, task="sum"), _r("i4", "A", "kim", 3, task="sum"), _r("i4", "B", "lee", 1, task="sum"),
        _r("i4", "B", "kim", 2, task="sum"),
    ]  # fmt: skip
    return StudyData(
        name="small",
        seed=1,
        overlap=2,
        blinding="blind",
        arms=("A", "B"),
        raters=("lee", "kim", "ng"),
        tasks=("qa", "sum"),
        ratings=tuple(ratings),
        judge=tuple(JudgeScore(f"i{i}/{arm}", "gpt", s) for (i, arm), s in zip(
            [(1, "A"), (1, "B"), (2, "A"), (2, "B"), (3, "A"), (3, "B")], [4, 3, 1, 1, 4, 3], strict=True)),
        adjudications=(Adjudicated("i2/A", "chief", 3, "the dose is wrong, not invented"),),
        assigned={"lee": 8, "kim": 8, "ng": 4},
    )  # fmt: skip


def test_small_study_by_hand() -> None:
    st = study_stats(_small())
    assert (st.ratings, st.answers, st.adjudications) == (14, 8, 1)
    assert {(p.rater, p.rated, p.assigned) for p in st.progress} == {("lee", 8, 8), ("kim", 6, 8), ("ng", 0, 4)}
    (lee_kim,) = [p for p in st.pairwise if {p.rater_a, p.rater_b} == {"lee", "kim"}]
    # Both rated 6 answers; differences 0, 1, 2, 0, 1, 1: exact 2/6, within one 5/6.
    assert (lee_kim.n, lee_kim.exact, lee_kim.within_one) == (6, pytest.approx(2 / 6), pytest.approx(5 / 6))
    assert [p.n for p in st.pairwise if "ng" in (p.rater_a, p.rater_b)] == [0, 0]
    (d,) = st.disagreements  # i2/A: lee 3, kim 1; adjudicated
    assert (d.answer, d.spread, d.scores, d.adjudicated, d.adjudicator) == ("i2/A", 2, {"kim": 1, "lee": 3}, 3, "chief")


def test_arm_figures_use_adjudicated_scores_and_count_flags() -> None:
    st = study_stats(_small())
    means = {(m.arm, m.task): m for m in st.arm_means}
    # A: i1 4, i2 adjudicated 3 (raters' mean would be 2), i3 4 -> qa mean 11/3; i4 3.5; all (4+3+4+3.5)/4.
    assert means[("A", "qa")].mean == pytest.approx(11 / 3) and means[("A", "qa")].adjudicated == 1
    assert means[("A", ALL_TASKS)].mean == pytest.approx(14.5 / 4) and means[("A", ALL_TASKS)].answers == 4
    assert means[("B", ALL_TASKS)].mean == pytest.approx((2.5 + 1 + 2 + 1.5) / 4)
    flags = {f.arm: f for f in st.flags}
    assert (flags["A"].ratings, flags["A"].score_1, flags["A"].hallucination, flags["A"].failed) == (7, 1, 1, 0)
    assert (flags["B"].score_1, flags["B"].hallucination, flags["B"].answers_scored_1, flags["B"].failed) == (
        3,
        1,
        1,
        1,
    )


def test_paired_test_is_wilcoxon_on_item_scores() -> None:
    st = study_stats(_small())
    (all_tasks,) = [p for p in st.paired if p.task == ALL_TASKS]
    a, b = np.array([4, 3, 4, 3.5]), np.array([2.5, 1, 2, 1.5])
    ref = sps.wilcoxon(a, b)
    assert all_tasks.items == 4 and all_tasks.mean_diff == pytest.approx((a - b).mean())
    assert (all_tasks.wilcoxon_stat, all_tasks.wilcoxon_p) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    (summary,) = [p for p in st.paired if p.task == "sum"]
    assert summary.items == 1 and summary.wilcoxon_p is None and "1 items scored in both arms" in summary.reason


def test_per_task_alpha_is_alpha_on_that_task_alone() -> None:
    data = simulated_study(items=60)
    st = study_stats(data)
    for task, est in st.per_task.items():
        own = study_stats(StudyData(**{**data.__dict__, "ratings": tuple(r for r in data.ratings if r.task == task)}))
        assert est.alpha == pytest.approx(own.alpha.alpha) and est.units == 60


def test_judge_correlations_match_scipy_with_intervals() -> None:
    st = study_stats(_small())
    (j,) = st.judges
    clin = [4, 2.5, 3, 1, 4, 2]  # i1 A/B, i2 A (adjudicated 3)/B, i3 A/B
    judge = [4, 3, 1, 1, 4, 3]
    assert j.n == 6
    assert j.pearson.value == pytest.approx(sps.pearsonr(clin, judge).statistic)
    assert j.kendall.value == pytest.approx(sps.kendalltau(clin, judge).statistic)
    assert j.spearman.value == pytest.approx(sps.spearmanr(clin, judge).statistic)
    big = study_stats(simulated_study(judge=True)).judges[0]
    for c in (big.pearson, big.kendall, big.spearman):
        assert c.low < c.value < c.high


def test_correlations_on_random_resamples_equal_scipy() -> None:
    from app.store.estimates import _coefficient_rows

    rng = np.random.default_rng(3)
    x = rng.integers(1, 5, size=(20, 30)).astype(float)
    y = np.clip(x + rng.integers(-1, 2, size=x.shape), 1, 4)
    for name, f in (("pearson", sps.pearsonr), ("kendall", sps.kendalltau), ("spearman", sps.spearmanr)):
        want = [f(a, b).statistic for a, b in zip(x, y, strict=True)]
        assert _coefficient_rows(name, x, y) == pytest.approx(want, abs=1e-12)


def test_correlations_say_why_they_are_missing() -> None:
    none, why = correlations([1, 2], [2, 3])
    assert none["pearson"].value is None and "2 answers" in why
    none, why = correlations([3, 3, 3, 3], [1, 2, 3, 4])
    assert none["kendall"].value is None and "same score" in why


def test_to_json_is_plain_and_has_what_study_status_needs() -> None:
    st = study_stats(simulated_study(items=20, judge=True))
    text = json.dumps(st.to_json(), allow_nan=False)
    j = json.loads(text)
    assert j["alpha"] == pytest.approx(st.alpha.alpha) and j["alpha_ci"] == [st.alpha.low, st.alpha.high]
    assert set(j["per_task"]) == {"Question Answering", "Summarization"}
    assert {p["rater"] for p in j["progress"]} == {"alice", "bob", "carol"}
    assert isinstance(j["disagreements"], list) and j["judges"][0]["pearson"]["value"] is not None
    empty = study_stats(StudyData("e", 1, 2, "blind", ("A",), ("lee",), ("qa",), ()))
    j = json.loads(json.dumps(empty.to_json(), allow_nan=False))
    assert j["alpha"] is None and j["alpha_ci"] is None and "no ratings" in j["alpha_detail"]["reason"]
