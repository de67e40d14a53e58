"""The study report's figures: matplotlib on the Agg canvas (no pyplot, no display, no global backend
switch), each returned as PNG bytes with a title that names its n.

matplotlib is imported inside the functions: the desktop app and the CLI start without it, and only
``study report`` pays for loading it.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.store.agreement import ALL_TASKS, StudyStats
from app.store.estimates import RUBRIC
from app.store.study_data import StudyData

SCORE_COLOURS = ("#c2452d", "#f0a35e", "#9cc98a", "#2f8f4e")
"""1 (unacceptable, red) to 4 (green); a diverging scale that stays distinct for red-green colour blindness
by lightness (dark, light, light, dark), and every bar is also labelled with its share."""
DPI = 110


@dataclass(frozen=True)
class Plot:
    """One figure of the report."""

    key: str
    """File-safe name (the PNG is embedded; the key names its anchor)."""
    title: str
    """What it shows, with its n."""
    png: bytes


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No Software/date metadata: the same study gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def score_distribution(data: StudyData, stats: StudyStats) -> Plot:
    """Share of ratings at each score, per arm (rows) and task (panels), stacked horizontally."""
    tasks = list(dict.fromkeys(r.task for r in data.ratings)) or [ALL_TASKS]
    arms = list(dict.fromkeys([*data.arms, *(r.arm for r in data.ratings)]))
    fig = _figure(9.0, 1.0 + 0.45 * len(arms) * len(tasks))
    axes = fig.subplots(len(tasks), 1, squeeze=False, sharex=True)[:, 0]
    for ax, task in zip(axes, tasks, strict=True):
        left = [0.0] * len(arms)
        counts = [Counter(r.score for r in data.ratings if r.arm == arm and r.task == task) for arm in arms]
        totals = [sum(c.values()) for c in counts]
        labels = [f"{arm}  (n={n})" for arm, n in zip(arms, totals, strict=True)]
        for score, colour in zip(RUBRIC, SCORE_COLOURS, strict=True):
            shares = [c[score] / n if n else 0.0 for c, n in zip(counts, totals, strict=True)]
            bars = ax.barh(labels, shares, left=left, color=colour, label=str(score), edgecolor="white")
            ax.bar_label(
                bars, labels=[f"{s:.0%}" if s >= 0.06 else "" for s in shares], label_type="center", fontsize=8
            )
            left = [a + b for a, b in zip(left, shares, strict=True)]
        ax.set_title(task, fontsize=10, loc="left")
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
    axes[-1].xaxis.set_major_formatter(_percent())
    axes[-1].set_xlabel("share of ratings")
    axes[0].legend(title="score", ncols=4, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return Plot("scores", f"Score distribution per arm and task (n = {len(data.ratings)} ratings)", _png(fig))


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0)


def arm_means(stats: StudyStats) -> Plot:
    """Mean answer score with its 95% interval, per task (rows) and arm (colours), n beside each point."""
    tasks = list(dict.fromkeys(m.task for m in stats.arm_means))
    arms = list(dict.fromkeys(m.arm for m in stats.arm_means))
    fig = _figure(9.0, 1.2 + 0.35 * len(tasks) * len(arms))
    ax = fig.subplots()
    y = 0
    ticks, names = [], []
    for task in tasks:
        for i, arm in enumerate(arms):
            m = next(x for x in stats.arm_means if x.task == task and x.arm == arm)
            if m.mean is not None:
                err = [[m.mean - (m.low if m.low is not None else m.mean)], [(m.high or m.mean) - m.mean]]
                ax.errorbar(
                    [m.mean], [y], xerr=err, fmt="o", color=f"C{i}", capsize=3, label=arm if y < len(arms) else None
                )
                ax.annotate(
                    f"{m.mean:.2f}  n={m.answers}",
                    (m.high or m.mean, y),
                    xytext=(6, -3),
                    textcoords="offset points",
                    fontsize=8,
                )
            ticks.append(y)
            names.append(f"{task} · {arm}")
            y += 1
        y += 0.5
    ax.set_yticks(ticks, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(1, 4.6)
    ax.set_xticks(list(RUBRIC))
    ax.set_xlabel("mean answer score (95% bootstrap interval)")
    n = sum(m.answers for m in stats.arm_means if m.task == ALL_TASKS)
    return Plot("means", f"Mean score per arm and task (n = {n} scored answers)", _png(fig))


def rater_agreement(stats: StudyStats) -> Plot:
    """Rater x rater heatmap of exact agreement, each cell with its n."""
    import numpy as np

    raters = list(dict.fromkeys([p.rater for p in stats.progress]))
    k = len(raters)
    share = np.full((k, k), np.nan)
    ns = np.zeros((k, k), dtype=int)
    at = {r: i for i, r in enumerate(raters)}
    for p in stats.pairwise:
        if p.rater_a in at and p.rater_b in at and p.exact is not None:
            i, j = at[p.rater_a], at[p.rater_b]
            share[i, j] = share[j, i] = p.exact
            ns[i, j] = ns[j, i] = p.n
    fig = _figure(1.6 + 1.1 * k, 1.2 + 0.9 * k)
    ax = fig.subplots()
    image = ax.imshow(share, vmin=0, vmax=1, cmap="viridis")
    for i in range(k):
        for j in range(k):
            if i != j and ns[i, j]:
                light = share[i, j] < 0.5  # viridis is dark below the middle
                ax.text(
                    j,
                    i,
                    f"{share[i, j]:.0%}\nn={ns[i, j]}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if light else "black",
                )
    ax.set_xticks(range(k), raters, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), raters, fontsize=8)
    fig.colorbar(image, ax=ax, label="same score", format=_percent())
    total = sum(p.n for p in stats.pairwise)
    return Plot("agreement", f"Exact agreement between raters (n = {total} answer pairs)", _png(fig))


def alpha_forest(stats: StudyStats) -> Plot:
    """Alpha overall, per task and on the calibration subset, with intervals and n."""
    rows = [("all answers", stats.alpha), *stats.per_task.items(), ("calibration", stats.calibration)]
    fig = _figure(8.0, 1.0 + 0.4 * len(rows))
    ax = fig.subplots()
    for y, (_label, a) in enumerate(rows):
        if a.alpha is None:
            ax.annotate(f"no alpha ({a.reason})", (-0.2, y), fontsize=8, va="center")
            continue
        low = a.low if a.low is not None else a.alpha
        high = a.high if a.high is not None else a.alpha
        ax.errorbar([a.alpha], [y], xerr=[[a.alpha - low], [high - a.alpha]], fmt="s", color="C0", capsize=3)
        ax.annotate(f"{a.alpha:.2f}  n={a.units}", (high, y), xytext=(6, -3), textcoords="offset points", fontsize=8)
    ax.axvline(0.667, color="grey", lw=0.8, ls="--")  # Krippendorff's lowest limit for tentative conclusions
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-0.2, 1.15)
    ax.set_xlabel("Krippendorff's alpha, ordinal (95% bootstrap interval; dashed: 0.667)")
    return Plot("alpha", f"Inter-rater agreement (n = {stats.alpha.units} answers rated twice or more)", _png(fig))


def judge_scatter(data: StudyData, stats: StudyStats) -> Plot | None:
    """Judge score against the clinicians' answer score, one panel per judge; None without judge scores."""
    if not stats.judges:
        return None
    from app.store.agreement import answer_scores

    clin = answer_scores(data)
    fig = _figure(3.6 * len(stats.judges), 3.6)
    axes = fig.subplots(1, len(stats.judges), squeeze=False)[0]
    total = 0
    for ax, ja in zip(axes, stats.judges, strict=True):
        pairs = Counter((clin[j.answer], j.score) for j in data.judge if j.judge == ja.judge and j.answer in clin)
        total += sum(pairs.values())
        # Scores sit on a grid: the area of a point shows how many answers share it.
        ax.scatter([x for x, _ in pairs], [y for _, y in pairs], s=[12 * c for c in pairs.values()], alpha=0.6)
        ax.plot([1, 4], [1, 4], color="grey", lw=0.8)
        r = ja.spearman.value
        ax.set_title(
            f"{ja.judge} (n={ja.n}, Spearman {r:.2f})" if r is not None else f"{ja.judge} (n={ja.n})", fontsize=9
        )
        ax.set_xlabel("clinicians' score")
        ax.set_ylabel("judge's score")
        ax.set_xlim(0.8, 4.2)
        ax.set_ylim(0.8, 4.2)
    return Plot("judge", f"Judge against clinicians (n = {total} answers scored by both)", _png(fig))


def all_plots(data: StudyData, stats: StudyStats) -> list[Plot]:
    plots = [score_distribution(data, stats), arm_means(stats), alpha_forest(stats), rater_agreement(stats)]
    judge = judge_scatter(data, stats)
    return [*plots, judge] if judge else plots
