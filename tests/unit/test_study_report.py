"""The study report: a self-contained HTML file with its figures, the tables as CSV, private files, and no
text from a person or a file that reaches the HTML unescaped or a spreadsheet as a formula."""

from __future__ import annotations

import csv
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from app.service.study_report import write_report
from app.store.agreement import ALL_TASKS, study_stats
from app.store.study_data import Adjudicated, RatedAnswer
from tests.store.study_samples import simulated_study

ROOT = Path(__file__).resolve().parents[2]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_report_files_tables_and_figures(tmp_path: Path) -> None:
    data = simulated_study(items=30, judge=True)
    st = study_stats(data)
    out = tmp_path / "reports" / "sim"
    html_path = write_report(data, out, st)
    assert html_path == out / "report.html" and _mode(out) == 0o700
    names = {p.name for p in out.iterdir()}
    assert names >= {"report.html", "arm_means.csv", "paired.csv", "flags.csv", "agreement.csv", "pairwise.csv"}
    assert names >= {"disagreements.csv", "adjudications.csv", "judges.csv", "progress.csv"}
    assert all(_mode(p) == 0o600 for p in out.iterdir())

    agreement = {r["scope"]: r for r in _csv(out / "agreement.csv")}
    assert float(agreement["all answers"]["alpha"]) == pytest.approx(st.alpha.alpha, abs=5e-4)
    assert int(agreement["calibration subset"]["answers"]) == 20
    means = {(r["arm"], r["task"]): r for r in _csv(out / "arm_means.csv")}
    want = next(m for m in st.arm_means if m.arm == "model-b" and m.task == ALL_TASKS)
    assert float(means[("model-b", ALL_TASKS)]["mean"]) == pytest.approx(want.mean, abs=5e-4)
    assert int(means[("model-b", ALL_TASKS)]["answers"]) == 30
    assert {r["judge"] for r in _csv(out / "judges.csv")} == {"gpt-judge"}

    html = html_path.read_text(encoding="utf-8")
    figures = re.findall(r"<figcaption>([^<]*)</figcaption><img alt=\"[^\"]*\" src=\"data:image/png;base64,", html)
    assert len(figures) == 5, figures  # scores, means, alpha, rater agreement, judge
    assert all(re.search(r"\(n = \d+ ", f) for f in figures), "every figure names its n"
    # Self-contained: nothing to fetch (no scripts, links, remote images).
    assert not re.search(r"<script|<link|src=\"http|url\(", html)


def test_report_escapes_html_and_neutralises_formulas(tmp_path: Path) -> None:
    evil_arm = "<script>alert('arm')</script>"
    evil_rater = '"><img src=x onerror=alert(1)>'
    data = simulated_study(items=12, arms=("plain", evil_arm), raters=("alice", evil_rater, "carol"))
    extra = RatedAnswer("item-<b>x</b>", "Summarization", evil_arm, "ans-x", "alice", 1)
    ratings = (*data.ratings, extra, replace(extra, rater="carol", score=4))
    reason = '=HYPERLINK("http://example.invalid","click") </td><script>x()</script>'
    data = replace(
        data, name="study <i>x</i>", ratings=ratings, adjudications=(Adjudicated("ans-x", "chief", 2, reason),)
    )
    html = write_report(data, tmp_path / "out").read_text(encoding="utf-8")
    for raw in (evil_arm, evil_rater, "<b>x</b>", "<i>x</i>", "</td><script>"):
        assert raw not in html
    assert "&lt;script&gt;alert(&#x27;arm&#x27;)&lt;/script&gt;" in html and "item-&lt;b&gt;x&lt;/b&gt;" in html
    rows = _csv(tmp_path / "out" / "adjudications.csv")
    assert rows[0]["reason"] == "'" + reason, "a spreadsheet shows the reason as text, never runs it"
    (d,) = [r for r in _csv(tmp_path / "out" / "disagreements.csv") if r["answer"] == "ans-x"]
    assert (d["adjudicated"], d["adjudicator"], d["spread"]) == ("2", "chief", "3")


def test_report_of_a_study_without_ratings_says_so(tmp_path: Path) -> None:
    data = replace(simulated_study(items=4), ratings=())
    html = write_report(data, tmp_path / "empty").read_text(encoding="utf-8")
    assert "not enough data: no ratings" in html
    assert _csv(tmp_path / "empty" / "disagreements.csv") == []


def test_the_app_starts_without_matplotlib() -> None:
    """matplotlib loads only when a report is written: importing the report and statistics modules (as the CLI
    and the desktop app do) must not pull it in."""
    code = (
        "import sys, app.service.study_report, app.service.study_plots, app.store.agreement, app.store.stats\n"
        "print('matplotlib' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
