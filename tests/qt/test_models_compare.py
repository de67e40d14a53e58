"""Models: importing a bad file fails clearly; importing a real GGUF works. Compare: blinded A/B vote."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from tests.qt.conftest import WAIT_MS, choose_rater

pytestmark = pytest.mark.qt


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"this is not a model\n" * 10, "not a GGUF file"), ("truncated", "truncated")],
)
def test_importing_a_bad_model_file_shows_a_clear_message(open_window, qtbot, tmp_path, demo_model, content, expected):
    ctx, win = open_window()
    models = win.models_tab
    bad = tmp_path / "bad.gguf"
    if content == "truncated":
        with open(demo_model.path, "rb") as src:
            bad.write_bytes(src.read(4 << 20))  # the header and the first tensors of a real GGUF only
    else:
        bad.write_bytes(content)
    before = {m.sha256 for m in ctx.registry.list()}
    win.tabs.setCurrentWidget(models)
    task = models.import_file(bad)
    assert task is not None
    qtbot.waitUntil(lambda: task.finished_flag.is_set(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: models.banner.isVisible(), timeout=WAIT_MS)
    assert models.banner.kind == "error" and expected in models.banner.text() and "bad.gguf" in models.banner.text()
    assert {m.sha256 for m in ctx.registry.list()} == before
    qtbot.waitUntil(lambda: models.import_btn.isEnabled(), timeout=WAIT_MS)


def test_compare_runs_two_models_blind_and_stores_the_vote(open_window, qtbot, tmp_path, tiny_llama_gguf, sample_note):
    ctx, win = open_window()
    models = win.models_tab
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    with qtbot.waitSignal(ctx.models_changed, timeout=WAIT_MS):
        models.import_file(tiny)
    names = [models.table.item(r, 0).text() for r in range(models.table.rowCount())]
    assert "tiny-llama" in names
    assert models.banner.kind == "info" and "Imported" in models.banner.text()

    win.ask_tab.editor.setPlainText(sample_note[:600])  # the tiny model's 512-token vocabulary splits finely
    win.ask_tab.set_task("qa")
    win.ask_tab.instruction.setPlainText("Does the patient smoke?")
    cmp_ = win.compare_tab
    win.tabs.setCurrentWidget(cmp_)
    assert cmp_.instruction.text() == "Does the patient smoke?"
    cmp_.model_a.setCurrentIndex(cmp_.model_a.findData(ctx.model.sha256))
    cmp_.model_b.setCurrentIndex(cmp_.model_b.findText("tiny-llama", Qt.MatchFlag.MatchStartsWith))
    choose_rater(qtbot, ctx, cmp_.rater, "dr-blind")
    with qtbot.waitSignal(cmp_.answers_ready, timeout=WAIT_MS):
        assert cmp_.run() is not None, cmp_.banner.text()
        qtbot.waitUntil(lambda: cmp_.task is None or bool(cmp_.banner.text()), timeout=WAIT_MS)
        assert not cmp_.banner.text()
    a, b = cmp_.pair
    assert {a.model.name, b.model.name} == {ctx.model.name, "tiny-llama"}
    assert cmp_.views[0].toPlainText() == (a.result.answer or "(empty answer)")
    assert "tiny-llama" not in cmp_.reveal.text() and ctx.model.name not in cmp_.reveal.text(), "blinded"
    assert "Answer A" in cmp_.views[0].parent().title()
    assert cmp_.vote_btns["A"].isEnabled()
    cmp_.scores[1].setCurrentIndex(cmp_.scores[1].findData(1))
    with qtbot.waitSignal(cmp_.voted, timeout=WAIT_MS) as voted:
        cmp_.vote_btns["A"].click()
    [c] = ctx.log.comparisons()
    assert c.id == voted.args[0]
    assert (c.run_a_id, c.run_b_id, c.choice, c.rater, c.a_side) == (a.run_id, b.run_id, "A", "dr-blind", "left")
    assert [r.score for r in ctx.log.current_ratings(b.run_id)] == [1]
    assert ctx.log.current_ratings(a.run_id) == []
    assert a.model.display_name in cmp_.reveal.text() and b.model.display_name in cmp_.reveal.text()
    assert not cmp_.vote_btns["A"].isEnabled(), "one vote per pair"
