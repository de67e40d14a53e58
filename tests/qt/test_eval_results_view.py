"""The Statistics screen's evaluation section: empty until something is scored, then the primary metrics per
suite and model with interval and n, computed off the event loop."""

from __future__ import annotations

from tests.qt.conftest import WAIT_MS, qt_config


def _tab(qtbot, paths, tmp_path):  # type: ignore[no-untyped-def]
    from app.qt.app_context import AppContext
    from app.qt.stats_tab import StatsTab

    ctx = AppContext(paths, qt_config(tmp_path))  # no model: the statistics read the log only
    ctx.open_log()
    qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
    st = StatsTab(ctx)
    qtbot.addWidget(st)
    return ctx, st


def test_without_scores_the_section_says_how_to_get_them(qtbot, paths, tmp_path) -> None:
    _, st = _tab(qtbot, paths, tmp_path)
    st.evals.show_rows([("s", "m.gguf", "f1", "0.500", "0.40 – 0.60", 10)])
    assert st.evals.table.rowCount() == 1 and not st.evals.table.isHidden()
    task = st.evals.refresh()
    assert task is not None
    qtbot.waitUntil(lambda: st.evals.task is None, timeout=WAIT_MS)
    assert st.evals.table.isHidden() and not st.evals.empty.isHidden()
    assert "asclepius eval run" in st.evals.empty.text()


def test_scored_answers_show_their_primary_metrics_with_interval_and_n(qtbot, paths, tmp_path, shared_data) -> None:
    from app.core.evaluation.loaders import load_items
    from app.core.evaluation.suites import load_suite
    from app.qt.eval_results_view import eval_rows
    from app.service.eval_run import Answered, score_answers
    from tests.store.helpers import logged, model, request

    ctx, st = _tab(qtbot, paths, tmp_path)
    suite = load_suite("pubmedqa")
    items = load_items(suite, shared_data / "gold" / "pubmedqa_pqal_dev.json")[:4]
    answered = [
        Answered(it, ctx.log.get_run(logged(ctx.log, request(note=it.note), model(1))).uuid, "yes") for it in items
    ]
    score_answers(ctx.log, suite, answered)
    rows = eval_rows(ctx.log)
    assert ("pubmedqa", model(1).file_name, "accuracy") in {r[:3] for r in rows}
    assert all(r[5] == 4 for r in rows if r[2] == "accuracy")
    st.evals.refresh()
    qtbot.waitUntil(lambda: st.evals.task is None, timeout=WAIT_MS)
    assert st.evals.table.rowCount() == len(rows)
