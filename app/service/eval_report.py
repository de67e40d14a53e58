"""``eval report``: a suite's stored scores as one self-contained HTML file (per model every metric with its
interval and n, the paired comparisons, a forest plot of the primary metrics) and every table as CSV.

Built with the study report's pieces (``study_report.Table``, its CSV writer, HTML table and style;
``study_plots``' figure and PNG helpers), so both reports look and escape alike: every name from a file or
the log is HTML-escaped, CSV cells are neutralised against spreadsheet formulas, files are 0600 and the folder
0700. The report holds no note and no answer text: item ids and figures only.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from app.core.privatefile import private_dir, private_file
from app.service.eval_run import EvalResults, as_json
from app.service.study_plots import Plot, _figure, _png
from app.service.study_report import REPORT_NAME, STYLE, Table, _html_table, _r, _write_csv

PRIMARY = ("f1", "precision", "recall", "accuracy", "macro_f1", "rouge_l", "support_rate")
"""The metrics the forest plot shows, where a result has them (the top-level keys of ``SuiteResult`` JSON)."""


def tables(results: EvalResults) -> list[Table]:
    """The metrics per model, and the paired comparisons."""
    rows = [
        (r.model, name, _r(e.value), _r(e.low), _r(e.high), e.n)
        for r in results.results
        for name, e in r.metrics.items()
    ]
    metrics = Table(
        "metrics",
        f"{results.suite}: every metric per model (95% bootstrap interval over items)",
        ("model", "metric", "value", "ci_low", "ci_high", "n"),
        rows,
        "n = items the metric is computed over; unparseable answers count as wrong, never as missing.",
    )
    counts = Table(
        "items",
        "Items scored per model",
        ("model", "items", "unparseable", "notes"),
        [(r.model, r.n, r.unparseable, "; ".join(r.notes)) for r in results.results],
    )
    paired_rows = []
    headers: list[str] = []
    for a, b, p in results.paired:
        data = {k: v for k, v in as_json(p).items() if not isinstance(v, dict | list)}
        headers = headers or list(data)
        paired_rows.append((a, b, *(_r(v) if isinstance(v, float) else v for v in data.values())))
    paired = Table(
        "paired",
        "Paired comparison on the items both models answered (McNemar for accuracy, paired bootstrap for F1)",
        ("model_a", "model_b", *headers),
        paired_rows,
        "The difference is b - a; n = items both models have.",
    )
    return [metrics, counts, paired]


def forest(results: EvalResults) -> Plot | None:
    """The primary metrics per model with their intervals (one row per model and metric); None when none."""
    rows = [(r.model, m, r.metrics[m]) for r in results.results for m in PRIMARY if m in r.metrics]
    if not rows:
        return None
    fig = _figure(7.0, 0.9 + 0.32 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    for y, (_model, _metric, e) in zip(ys, rows, strict=True):
        ax.errorbar([e.value], [y], xerr=[[e.value - e.low], [e.high - e.value]], fmt="o", color="#2f5f8f", capsize=3)
    ax.set_yticks(ys, [f"{model} {metric} (n={e.n})" for model, metric, e in rows])
    ax.set_xlim(0, 1)
    ax.set_xlabel("value with 95% bootstrap interval")
    ax.grid(axis="x", alpha=0.3)
    n = max(r.n for r in results.results)
    return Plot("forest", f"{results.suite}: primary metrics per model (up to n={n} items)", _png(fig))


def render_html(results: EvalResults, plots: list[Plot], created: str) -> str:
    figs = "".join(
        f'<figure id="fig-{escape(p.key)}"><figcaption>{escape(p.title)}</figcaption>'
        f'<img alt="{escape(p.title)}" src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        "</figure>"
        for p in plots
    )
    body = "".join(_html_table(t) for t in tables(results))
    title = f"Evaluation report: {escape(results.suite)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1>"
        f'<p class="note">Written {escape(created)}; models: {escape(", ".join(r.model for r in results.results))}</p>'
        f"{figs}{body}</body></html>\n"
    )


def write_report(results: EvalResults, out_dir: Path) -> Path:
    """Write ``report.html`` and one CSV per table into ``out_dir`` (created 0700); the HTML's path."""
    out = private_dir(Path(out_dir))
    for t in tables(results):
        _write_csv(out / f"{t.key}.csv", t)
    plot = forest(results)
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    path = out / REPORT_NAME
    with private_file(path, what="evaluation report") as fh:
        fh.write(render_html(results, [plot] if plot else [], created))
    return path


__all__ = ["forest", "render_html", "tables", "write_report"]
