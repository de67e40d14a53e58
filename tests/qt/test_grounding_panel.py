"""The claim-level grounding on the Ask screen (hand-built report, no model): colours in the answer, the
flagged-claim panel, unchecked claims on demand, omissions, going to a claim, and the copied footer."""

from __future__ import annotations

import pytest

from app.core.grounding import ClaimStatus
from app.qt.answer_view import AMBER, AMBER_BG, FLAGS_EXPANDED_MAX_PX, GREEN, PINK, RED, note_highlights
from tests.grounding_examples import ANSWER, NOTE, example_report
from tests.qt.conftest import qt_config

pytestmark = pytest.mark.qt


@pytest.fixture
def tab(qtbot, paths, tmp_path):
    from app.qt.app_context import AppContext
    from app.qt.ask_tab import AskTab

    ctx = AppContext(paths, qt_config(tmp_path))
    t = AskTab(ctx)
    qtbot.addWidget(t)
    t.editor.setPlainText("\n" + NOTE)  # a leading blank line: offsets shift by one
    t.answer.setPlainText(ANSWER)
    t.show_grounding(example_report(), 1)
    yield t
    ctx.close()


def test_the_answer_is_coloured_claim_by_claim(tab):
    marks = {
        s.cursor.selectedText(): (s.format.background().color().name(), s.format.underlineColor().name())
        for s in tab.answer.extraSelections()
    }
    lines = ANSWER.splitlines()
    assert marks[lines[0]][0] == GREEN  # supported
    assert marks[lines[1]][0] == AMBER_BG and marks["1000 mg"] == (AMBER_BG, AMBER)  # partly: the missing dose
    assert marks[lines[2]] == (PINK, RED)  # not found
    assert lines[4] not in marks  # unchecked: left plain


def test_the_panel_lists_flagged_claims_omissions_and_counts_the_unchecked(tab, qtbot):
    html = tab.flags.text()
    assert "⚠ Check (5):" in html and example_report().headline() in html and "all" not in html.split("Check")[0]
    assert "Partly supported</b></a> 2. Lisinopril 1000 mg daily: 1000 mg appears with metformin" in html
    assert html.count("Not found</b></a>") == 2 and "Not in the note</b> Tylenol" in html
    assert "Possibly omitted</b> Robitussin" in html
    assert "1 not checked</span> <a href='#unchecked'>show</a>" in html and "No known allergies" not in html
    tab.answer_view._link("#unchecked")
    assert "5. No known allergies: a negation: not checked" in tab.flags.text()
    assert tab.answer_view.flags_area.height() <= FLAGS_EXPANDED_MAX_PX


def test_clicking_a_flagged_claim_shows_where_its_parts_are_in_the_note(tab):
    partly = next(i for i, c in enumerate(example_report().claims) if c.status == ClaimStatus.PARTLY)
    tab.answer_view._link(f"#claim-{partly}")
    assert tab.editor.textCursor().selectedText() == "Lisinopril 10 mg daily."  # the note's line to compare with
    not_found = next(i for i, c in enumerate(example_report().claims) if c.status == ClaimStatus.NOT_FOUND)
    tab.answer_view._link(f"#claim-{not_found}")  # nothing in the note: the claim in the answer instead
    assert tab.editor.textCursor().selectedText() == "Lisinopril 10 mg daily."
    assert tab.answer.textCursor().selectedText() == ANSWER.splitlines()[2]


def test_the_note_highlights_supported_parts_and_aligned_items_only(tab):
    spans = note_highlights(example_report())
    picked = sorted(s.cursor.selectedText() for s in tab.editor.extraSelections())
    assert len(picked) == len(spans) and picked == sorted(["metformin", "1000 mg", "twice daily", "metformin"])


def test_the_copied_footer_carries_the_summary_and_each_flagged_claim():
    from types import SimpleNamespace

    from app.qt.ask_jobs import provenance_footer

    r = SimpleNamespace(
        model_sha256="ab" * 32, task="ner", instruction="List every medication", sampling={"temperature": 0},
        run_uuid="u-1", started_at="2026-11-24T08:00:00", finish_reason="stop", note_sha256="cd" * 32,
        note_chars=len(NOTE),
    )  # fmt: skip
    text = provenance_footer(ANSWER, "m", r, example_report())
    assert f"Grounding: {example_report().headline()}" in text
    assert "Check: [partly supported] 2. Lisinopril 1000 mg daily" in text
    assert "Check: [possible omission] Robitussin" in text and "Check: [supported]" not in text


def test_a_repeated_term_is_flagged_once_and_counted():
    from dataclasses import replace

    from app.qt.answer_view import flags_html

    report = example_report()
    assert report.omissions, "the example names a possible omission"
    twice = replace(report, omissions=report.omissions + report.omissions)
    text = flags_html(twice, expanded=True, unchecked_expanded=False)
    omitted = report.omissions[0].text
    assert text.count(f"Possibly omitted</b> {omitted}") == 1
    assert "(×2)" in text
