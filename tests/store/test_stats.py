"""Statistics against values worked out by hand (or by the reference libraries on the same numbers)."""

from __future__ import annotations

import math

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
