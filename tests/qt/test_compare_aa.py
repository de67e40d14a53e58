"""Compare: two registry entries of one file are an A/A comparison (position bias), allowed and labelled in
the screen and in the log; the scoring shows the rubric's words and a hallucination flag."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.store.stats import win_rates
from resources.rubric import level
from tests.fakes import FakeEngine
from tests.qt.conftest import WAIT_MS, choose_rater

pytestmark = pytest.mark.qt


def test_the_same_file_twice_is_an_aa_comparison_scored_with_the_rubric(fake_window, qtbot):
    engine = FakeEngine()
    ctx, win = fake_window(engine)
    one = engine.model
    two = replace(one, path=one.path + ".copy", file_name="copy-of-" + one.file_name)  # same sha256
    ctx.registry.list = lambda: [one, two]
    ctx.registry.find = lambda sha: one if sha == one.sha256 else None
    cmp_ = win.compare_tab
    cmp_.fill_models()
    win.ask_tab.editor.setPlainText("Admitted with pneumonia. Creatinine 1.4 mg/dL on admission.")
    win.tabs.setCurrentWidget(cmp_)
    cmp_.instruction.setText("What was the creatinine?")
    cmp_.model_a.setCurrentIndex(0)
    cmp_.model_b.setCurrentIndex(1)
    assert cmp_.model_a.currentData() == cmp_.model_b.currentData()
    assert cmp_.same_model.isVisible() and "A/A comparison" in cmp_.same_model.text()
    with qtbot.waitSignal(cmp_.answers_ready, timeout=WAIT_MS):
        assert cmp_.run() is not None, cmp_.banner.text()
    assert not cmp_.banner.text()

    # The scoring shows the rubric's words for the chosen score, and a hallucination flag per answer.
    cmp_.scores[0].setCurrentIndex(cmp_.scores[0].findData(2))
    assert cmp_.rubric_texts[0].text() == f"2: {level(2).definition}"
    assert cmp_.flags[0].isEnabled()
    cmp_.flags[0].setChecked(True)
    choose_rater(qtbot, ctx, cmp_.rater, "dr-aa")
    assert cmp_.vote("A") is None, "a score above 1 with Hallucination is refused (the store's rule)"
    assert "Answer A" in cmp_.banner.text() and ctx.log.comparisons() == []
    cmp_.scores[0].setCurrentIndex(cmp_.scores[0].findData(1))
    with qtbot.waitSignal(cmp_.voted, timeout=WAIT_MS):
        assert cmp_.vote("A") is not None
    [c] = ctx.log.comparisons()
    assert c.same_model, "the log says it was an A/A comparison"
    a, _b = cmp_.pair
    [r] = ctx.log.current_ratings(a.run_id)
    assert (r.score, r.hallucination) == (1, True)
    assert "A/A comparison" in cmp_.reveal.text()
    assert win_rates(ctx.log) == [], "no model wins against itself"
