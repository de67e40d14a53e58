"""``study report``: one self-contained HTML file reproducing the Asclepius paper's evaluation design (per arm
the clinicians' mean score with 95% interval per task, a paired test between arms, score-1 and hallucination
counts, alpha, judge-vs-clinician correlations, the plots), and every table beside it as CSV.

Self-contained: the figures are PNG data URIs and the style is inline, so the file can be mailed or opened on
an air-gapped machine. Every text that came from a person or a file (study, arm, rater and item names, an
adjudicator's reason) is HTML-escaped, and the CSVs neutralise spreadsheet formulas (``csv_safe``). The
report holds no note text and no answer text: item keys and answer uids only. Files are 0600 and the folder
0700 (``app.core.privatefile``): a study's item keys and scores are still clinical material.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from app.core.privatefile import private_dir, private_file
from app.store.agreement import ALL_TASKS, NOTES, StudyStats, study_stats
from app.store.export import csv_safe
from app.store.study_data import StudyData

REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Table:
    """One table of the report: written as ``<key>.csv`` and shown in the HTML."""

    key: str
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""
    """One line under the table (what n is, what a cell means)."""


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def _result_tables(s: StudyStats) -> list[Table]:
    """The paper's tables: scores per arm, the paired test, the counts."""
    return [
        Table(
            "arm_means",
            "Clinicians' mean score per arm and task",
            ("arm", "task", "answers", "adjudicated", "mean", "ci_low", "ci_high"),
            [(m.arm, m.task, m.answers, m.adjudicated, _r(m.mean), _r(m.low), _r(m.high)) for m in s.arm_means],
            "n = scored answers; an adjudicated score replaces the raters' mean for that answer.",
        ),
        Table(
            "paired",
            "Paired comparison of arms on the same items (Wilcoxon signed-rank)",
            (
                "arm_a",
                "arm_b",
                "task",
                "items",
                "mean_a",
                "mean_b",
                "mean_diff",
                "diff_low",
                "diff_high",
                "wilcoxon_stat",
                "wilcoxon_p",
                "note",
            ),
            [
                (
                    p.arm_a,
                    p.arm_b,
                    p.task,
                    p.items,
                    _r(p.mean_a),
                    _r(p.mean_b),
                    _r(p.mean_diff),
                    _r(p.diff_low),
                    _r(p.diff_high),
                    _r(p.wilcoxon_stat),
                    _r(p.wilcoxon_p, 4),
                    p.reason or "",
                )
                for p in s.paired
            ],
            "n = items with a scored answer in both arms; mean_diff = arm_a - arm_b with its 95% bootstrap interval.",
        ),
        Table(
            "flags",
            "Score-1 answers and hallucination flags per arm",
            (
                "arm",
                "answers",
                "ratings",
                "score_1_ratings",
                "hallucination_flags",
                "answers_scored_1",
                "failed_answers",
            ),
            [(f.arm, f.answers, f.ratings, f.score_1, f.hallucination, f.answers_scored_1, f.failed) for f in s.flags],
            "Failed answers (the arm produced no usable answer) are rated like any other.",
        ),
    ]


def _agreement_tables(s: StudyStats) -> list[Table]:
    scopes = [("all answers", s.alpha), *((f"task: {t}", a) for t, a in s.per_task.items())]
    scopes.append(("calibration subset", s.calibration))
    return [
        Table(
            "agreement",
            "Inter-rater agreement: Krippendorff's alpha (ordinal)",
            ("scope", "alpha", "ci_low", "ci_high", "answers", "raters", "ratings", "note"),
            [(n, _r(a.alpha), _r(a.low), _r(a.high), a.units, a.raters, a.values, a.reason or "") for n, a in scopes],
            "n = answers rated by two or more raters; the raters' own scores (adjudications do not enter alpha).",
        ),
        Table(
            "pairwise",
            "Agreement between pairs of raters",
            ("rater_a", "rater_b", "answers", "exact", "within_one"),
            [(p.rater_a, p.rater_b, p.n, _r(p.exact), _r(p.within_one)) for p in s.pairwise],
            "n = answers both rated; exact: same score; within_one: at most one point apart.",
        ),
        Table(
            "progress",
            "Progress per rater",
            ("rater", "rated", "assigned"),
            [(p.rater, p.rated, p.assigned) for p in s.progress],
        ),
        Table(
            "disagreements",
            "Answers whose raters differ by 2 or more points",
            ("answer", "item", "task", "arm", "scores", "spread", "adjudicated", "adjudicator", "reason"),
            [
                (
                    d.answer,
                    d.item,
                    d.task,
                    d.arm,
                    "; ".join(f"{k}={v}" for k, v in d.scores.items()),
                    d.spread,
                    d.adjudicated,
                    d.adjudicator or "",
                    d.reason or "",
                )
                for d in s.disagreements
            ],
            f"n = {len(s.disagreements)} answers; adjudicated ones carry the final score and its reason.",
        ),
    ]


def _judge_table(s: StudyStats) -> Table:
    rows = []
    for j in s.judges:
        coef = [(_r(c.value), _r(c.low), _r(c.high)) for c in (j.pearson, j.kendall, j.spearman)]
        rows.append((j.judge, j.n, *(v for c in coef for v in c), j.reason or ""))
    heads = [f"{k}{suffix}" for k in ("pearson", "kendall", "spearman") for suffix in ("", "_low", "_high")]
    return Table(
        "judges",
        "Automated judge against the clinicians",
        ("judge", "answers", *heads, "note"),
        rows,
        "n = answers scored by the judge and by clinicians; intervals are 95% bootstrap over answers.",
    )


def _adjudication_table(data: StudyData) -> Table:
    return Table(
        "adjudications",
        "Adjudications",
        ("answer", "adjudicator", "score", "reason"),
        [(a.answer, a.adjudicator, a.score, a.reason) for a in data.adjudications],
        "Original ratings are kept; these final scores replace the raters' mean in the per-arm figures.",
    )


def tables(data: StudyData, s: StudyStats) -> list[Table]:
    """Every table of the report, in its order."""
    return [*_result_tables(s), *_agreement_tables(s), _adjudication_table(data), _judge_table(s)]


def _write_csv(path: Path, table: Table) -> None:
    with private_file(path, what="report table") as fh:
        w = csv.writer(fh)
        w.writerow(table.headers)
        for row in table.rows:
            w.writerow(["" if v is None else csv_safe(v) for v in row])


def _cell(v: Any) -> str:
    if v is None or v == "":
        return "–"
    return escape(f"{v:.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v))


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in t.rows)
    empty = "" if t.rows else f'<tr><td colspan="{len(t.headers)}">none</td></tr>'
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    csv_link = f'<p class="note">Also in <code>{escape(t.key)}.csv</code>.</p>'
    return (
        f'<h3 id="{escape(t.key)}">{escape(t.title)}</h3><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}{empty}</tbody></table>{note}{csv_link}"
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1040px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.note{color:#555;font-size:.85em;margin:.2em 0 1em}
.key{display:flex;gap:1.5em;flex-wrap:wrap}.key div{background:#f6f8fa;border-radius:6px;padding:.6em 1em}
.key b{font-size:1.4em;display:block}figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
img{max-width:100%}
"""


def _summary(data: StudyData, s: StudyStats, created: str) -> str:
    items = len({r.item for r in data.ratings})
    facts = [
        ("Arms", ", ".join(data.arms)),
        ("Raters", ", ".join(data.raters)),
        ("Tasks", ", ".join(data.tasks)),
        ("Overlap (raters per answer)", str(data.overlap)),
        ("Blinding", data.blinding),
        ("Assignment seed", str(data.seed)),
        ("Rated", f"{s.ratings} ratings of {s.answers} answers to {items} items"),
        ("Adjudicated answers", str(s.adjudications)),
        ("Report written", created),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    means = [m for m in s.arm_means if m.task == ALL_TASKS]
    key = "".join(
        f"<div>{escape(m.arm)}: mean score<b>{_cell(m.mean)}</b>[{_cell(m.low)}, {_cell(m.high)}] "
        f"n={m.answers} answers</div>"
        for m in means
    )
    a = s.alpha
    alpha = f"<b>{_cell(a.alpha)}</b>[{_cell(a.low)}, {_cell(a.high)}] n={a.units} answers"
    key += (
        f"<div>Krippendorff's alpha{alpha}</div>"
        if a.alpha is not None
        else f"<div>alpha: {escape(a.reason or '')}</div>"
    )
    notes = "".join(f"<li>{escape(n)}</li>" for n in NOTES)
    return f'<table>{rows}</table><h2>Key figures</h2><div class="key">{key}</div><ul class="note">{notes}</ul>'


def render_html(data: StudyData, s: StudyStats, plots: Sequence[Any], created: str) -> str:
    """The whole report as one HTML string (plots: ``study_plots.Plot``)."""
    ts = tables(data, s)
    by_key = {t.key: t for t in ts}
    figs = {
        p.key: f'<figure id="fig-{escape(p.key)}"><figcaption>{escape(p.title)}</figcaption>'
        f'<img alt="{escape(p.title)}" src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        "</figure>"
        for p in plots
    }
    sections = [
        ("Scores per arm", ["means", "scores"], ["arm_means", "paired", "flags"]),
        ("Agreement", ["alpha", "agreement"], ["agreement", "pairwise", "progress"]),
        ("Disagreements and adjudication", [], ["disagreements", "adjudications"]),
        ("Automated judge", ["judge"], ["judges"]),
    ]
    body = [f"<h1>Study report: {escape(data.name)}</h1>", _summary(data, s, created)]
    for title, fig_keys, table_keys in sections:
        body.append(f"<h2>{escape(title)}</h2>")
        body.extend(figs[k] for k in fig_keys if k in figs)
        body.extend(_html_table(by_key[k]) for k in table_keys)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Study report: {escape(data.name)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def write_report(data: StudyData, out_dir: Path, stats: StudyStats | None = None) -> Path:
    """Write ``report.html`` and one CSV per table into ``out_dir`` (created 0700); returns the HTML's path."""
    from app.service.study_plots import all_plots

    s = stats or study_stats(data)
    out = private_dir(Path(out_dir))
    for t in tables(data, s):
        _write_csv(out / f"{t.key}.csv", t)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = render_html(data, s, all_plots(data, s), created)
    path = out / REPORT_NAME
    with private_file(path, what="study report") as fh:
        fh.write(html)
    return path
