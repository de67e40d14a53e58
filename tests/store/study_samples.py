"""Studies as plain data for the statistics and report tests: a simulated multi-rater study whose raters
agree with a hidden true score up to noise, so agreement is high but not perfect."""

from __future__ import annotations

import numpy as np

from app.store.study_data import Adjudicated, JudgeScore, RatedAnswer, StudyData

TASKS = ("Question Answering", "Summarization")


def simulated_study(
    items: int = 100,
    arms: tuple[str, ...] = ("model-a", "model-b"),
    raters: tuple[str, ...] = ("alice", "bob", "carol"),
    overlap: int = 2,
    calibration: int = 10,
    seed: int = 7,
    judge: bool = False,
) -> StudyData:
    """Each answer rated by ``overlap`` raters (calibration items by all); scores = truth + noise, clipped."""
    rng = np.random.default_rng(seed)
    ratings, judged, assigned = [], [], dict.fromkeys(raters, 0)
    for i in range(items):
        task = TASKS[i % len(TASKS)]
        calib = i < calibration
        for a, arm in enumerate(arms):
            answer = f"ans-{i:03d}-{a}"
            truth = int(rng.integers(1, 5)) if a == 0 else int(np.clip(rng.integers(1, 5) + 1, 1, 4))
            who = raters if calib else tuple(rng.choice(raters, size=overlap, replace=False))
            failed = truth == 1 and rng.random() < 0.2
            for r in who:
                assigned[str(r)] += 1
                score = int(np.clip(truth + rng.choice([-1, 0, 0, 0, 1]), 1, 4))
                halluc = bool(score <= 2 and rng.random() < 0.3)
                ratings.append(RatedAnswer(f"item-{i:03d}", task, arm, answer, str(r), score, halluc, calib, failed))
            if judge:
                judged.append(JudgeScore(answer, "gpt-judge", float(np.clip(truth + rng.choice([-1, 0, 0, 1]), 1, 4))))
    return StudyData(
        name="sim",
        seed=seed,
        overlap=overlap,
        blinding="blind",
        arms=arms,
        raters=raters,
        tasks=TASKS,
        ratings=tuple(ratings),
        judge=tuple(judged),
        assigned=assigned,
        answers_per_arm=dict.fromkeys(arms, items),
    )


def with_adjudications(data: StudyData, adjudications: list[Adjudicated]) -> StudyData:
    from dataclasses import replace

    return replace(data, adjudications=tuple(adjudications))
