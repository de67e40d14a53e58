"""Compare streams, stops on Esc, shows the note, defaults to two models, hides identities in History until
the vote, and lets a vote be undone. The model manager keeps the demo entry, shows missing files, falls
back to the demo model, copies into its library, renames, removes, and cancels long operations."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from PySide6.QtCore import Qt

from app.qt.history_model import MODEL_COL
from tests.qt.conftest import WAIT_MS, choose_rater, import_model

pytestmark = pytest.mark.qt


def test_compare_streams_shows_the_note_stays_blind_in_history_and_undoes_a_vote(
    open_window, qtbot, tmp_path, tiny_llama_gguf, sample_note
):
    from app.qt.history_tab import BLINDED

    ctx, win = open_window()
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    import_model(qtbot, ctx, win.models_tab, tiny)
    cmp_ = win.compare_tab
    assert cmp_.model_a.currentData() != cmp_.model_b.currentData(), "the two pickers default to two models"
    note = sample_note[:600]
    win.ask_tab.editor.setPlainText(note)
    win.ask_tab.instruction.setPlainText("Does the patient smoke?")
    win.tabs.setCurrentWidget(cmp_)
    assert cmp_.note_view.toPlainText() == note and cmp_.note_view.isVisible()
    choose_rater(qtbot, ctx, cmp_.rater, "dr-blind")
    streamed: list[tuple[int, str]] = []
    with qtbot.waitSignal(cmp_.answers_ready, timeout=WAIT_MS):
        task = cmp_.run()
        task.signals.token.connect(lambda t: streamed.append((cmp_._stream_to, t)))
    a, b = cmp_.pair
    # Streamed into the side each answer is shown on, A first.
    for side, o in enumerate((a, b)):
        text = "".join(t for s, t in streamed if s == side)
        assert text.strip() == o.result.answer.strip()
    # History lists both runs without model names until the vote.
    hist = win.history_tab
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        win.tabs.setCurrentWidget(hist)
    cells = {hist.model.run_at(r).id: hist.model.index(r, MODEL_COL).data() for r in range(hist.model.rowCount())}
    assert cells[a.run_id] == BLINDED and cells[b.run_id] == BLINDED
    win.tabs.setCurrentWidget(cmp_)
    cmp_.scores[0].setCurrentIndex(cmp_.scores[0].findData(2))
    with qtbot.waitSignal(cmp_.voted, timeout=WAIT_MS):
        cmp_.vote_btns["B"].click()
    assert len(ctx.log.comparisons()) == 1 and len(ctx.log.current_ratings(a.run_id)) == 1
    assert a.run_id not in ctx.blinded_runs and cmp_.undo_btn.isVisible()
    with qtbot.waitSignal(hist.refreshed, timeout=WAIT_MS):
        win.tabs.setCurrentWidget(hist)
    names = {hist.model.index(r, MODEL_COL).data() for r in range(hist.model.rowCount())}
    assert BLINDED not in names
    # Undo: the comparison and its score are kept, marked withdrawn; a new vote can be cast, and since the
    # models were shown it is recorded as not blind (issue #23: it used to look like a blind one).
    win.tabs.setCurrentWidget(cmp_)
    with qtbot.waitSignal(cmp_.undone, timeout=WAIT_MS):
        cmp_.undo_btn.click()
    [first] = ctx.log.comparisons()
    assert first.withdrawn_at is not None and first.blind and ctx.log.current_ratings(a.run_id) == []
    assert [r.withdrawn_at is not None for r in ctx.log.rating_history(a.run_id)] == [True]
    assert a.run_id not in ctx.blinded_runs and cmp_.vote_btns["A"].isEnabled()
    assert "not blind" in cmp_.reveal.text()
    with qtbot.waitSignal(cmp_.voted, timeout=WAIT_MS):
        cmp_.vote_btns["tie"].click()
    first, c = ctx.log.comparisons()
    assert (c.choice, c.blind, c.withdrawn_at) == ("tie", False, None)
    assert "not blind" in cmp_.reveal.text()


def test_escape_stops_a_comparison(open_window, qtbot, tmp_path, tiny_llama_gguf, sample_note):
    from app.core.config import GenerationDefaults
    from tests.qt.conftest import qt_config

    ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=400)))
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    import_model(qtbot, ctx, win.models_tab, tiny)
    cmp_ = win.compare_tab
    win.ask_tab.editor.setPlainText(sample_note[:600])  # fits the tiny model's 2,048-token context too
    win.ask_tab.set_task("summary")
    win.tabs.setCurrentWidget(cmp_)
    cmp_.model_a.setCurrentIndex(cmp_.model_a.findData(ctx.model.sha256))
    cmp_.model_b.setCurrentIndex(cmp_.model_b.findText("tiny-llama", Qt.MatchFlag.MatchStartsWith))
    tokens: list[str] = []
    task = cmp_.run()
    task.signals.token.connect(tokens.append)
    qtbot.waitUntil(lambda: len(tokens) >= 2 or task.finished_flag.is_set(), timeout=WAIT_MS)
    assert not cmp_.banner.text(), cmp_.banner.text()
    with qtbot.waitSignal(task.signals.done, timeout=WAIT_MS):
        qtbot.keyClick(cmp_.instruction, Qt.Key.Key_Escape)
    assert task.cancel.is_set()
    qtbot.waitUntil(lambda: cmp_.task is None and cmp_.run_btn.isEnabled(), timeout=WAIT_MS)
    assert cmp_.pair is None or any(str(o.result.finish_reason) == "cancelled" for o in cmp_.pair)


@pytest.fixture
def own_paths(tmp_path, demo_model):
    """A data directory of the test's own (the session's registry stays untouched), with the demo GGUF
    hard-linked in so it is not assembled again."""
    from app.core.config import Paths

    p = Paths(tmp_path / "data", tmp_path / "config")
    p.models_dir.mkdir(parents=True)
    os.link(demo_model.path, p.models_dir / os.path.basename(demo_model.path))
    return p


def test_model_manager_keeps_the_demo_copies_renames_removes_and_shows_missing(
    open_window, qtbot, tmp_path, own_paths, demo_model, tiny_llama_gguf
):
    from app.core.models import is_removable

    ctx, win = open_window(app_paths=own_paths)
    models = win.models_tab
    # A byte-identical copy of the demo model does not replace the demo entry.
    twin = tmp_path / "elsewhere" / "same-as-demo.gguf"
    twin.parent.mkdir()
    shutil.copy(demo_model.path, twin)
    import_model(qtbot, ctx, models, twin, copy=False)
    [demo] = [m for m in ctx.registry.list() if ctx.registry.is_builtin(m)]
    assert demo.is_demo and os.path.dirname(demo.path) == str(own_paths.models_dir.resolve())
    assert "identical" in models.banner.text()
    assert str(twin.resolve()) in [m.path for m in ctx.registry.list()], "the copy is its own entry"
    # Copy into the library: a private copy in the models directory; the original can then go away.
    stick = tmp_path / "usb" / "tiny-llama.gguf"
    stick.parent.mkdir()
    shutil.copy(tiny_llama_gguf, stick)
    import_model(qtbot, ctx, models, stick, copy=True)
    [tiny] = [m for m in ctx.registry.list() if m.name == "tiny-llama"]
    assert os.path.dirname(tiny.path) == str(own_paths.models_dir.resolve())
    assert stat.S_IMODE(os.stat(tiny.path).st_mode) == 0o600
    stick.unlink()
    assert is_removable("/media/alice/USB/model.gguf") and not is_removable(str(tmp_path / "x.gguf"))
    # Rename, then remove (the library copy is deleted with it).
    row = next(r for r, m in enumerate(models.models) if m.sha256 == tiny.sha256)
    models.table.selectRow(row)
    assert models.rename(models.selected(), "Tiny test model")
    assert [m.name for m in ctx.registry.list() if m.sha256 == tiny.sha256] == ["Tiny test model"]
    row = next(r for r, m in enumerate(models.models) if m.sha256 == tiny.sha256)
    models.table.selectRow(row)
    assert models.remove_selected(confirm=False, delete_copy=True)
    assert ctx.registry.find(tiny.sha256) is None and not os.path.exists(tiny.path)
    # The demo model cannot be removed.
    models.table.selectRow(next(r for r, m in enumerate(models.models) if m.is_demo))
    assert not models.remove_selected(confirm=False) and "built in" in models.banner.text()


def test_a_missing_default_model_shows_missing_and_falls_back_to_the_demo(
    open_window, qtbot, tmp_path, own_paths, tiny_llama_gguf
):
    from dataclasses import replace

    from app.core.models import Registry, add_model
    from app.qt.app_context import State
    from tests.qt.conftest import qt_config

    usb = tmp_path / "usb" / "tiny.gguf"
    usb.parent.mkdir()
    shutil.copy(tiny_llama_gguf, usb)
    info, _ = add_model(Registry(own_paths), usb)
    usb.unlink()  # the stick was pulled out
    cfg = replace(qt_config(tmp_path), default_model=info.sha256)
    ctx, win = open_window(cfg, app_paths=own_paths)
    assert ctx.engine_state is State.READY and ctx.model.is_demo
    assert "missing" in ctx.engine_notice and "demo model" in ctx.engine_notice
    assert "missing" in win.ask_tab.banner.text()
    models = win.models_tab
    models.refresh()
    row = next(r for r, m in enumerate(models.models) if m.sha256 == info.sha256)
    assert models.table.item(row, 7).text() == "MISSING"


def test_a_default_no_longer_registered_falls_back_to_the_demo_like_the_cli(open_window, tmp_path, own_paths):
    """The desktop app asks the registry's one fallback rule (``Registry.resolve``), as the CLI does: a saved
    default that is not in the registry (models.json was reset, say) gives the demo model and a notice."""
    from dataclasses import replace

    from app.qt.app_context import State
    from tests.qt.conftest import qt_config

    cfg = replace(qt_config(tmp_path), default_model=str(tmp_path / "gone" / "model.gguf"))
    ctx, win = open_window(cfg, app_paths=own_paths)
    assert ctx.engine_state is State.READY and ctx.model.is_demo
    assert "not registered" in ctx.engine_notice and "demo model" in ctx.engine_notice
    assert "not registered" in win.ask_tab.banner.text()
    assert ctx.config.default_model == cfg.default_model, "the saved default is not changed"


def test_import_can_be_cancelled(open_window, qtbot, tmp_path, own_paths, demo_model):
    ctx, win = open_window(app_paths=own_paths)
    models = win.models_tab
    src = tmp_path / "big.gguf"
    shutil.copy(demo_model.path, src)
    before = {m.sha256 for m in ctx.registry.list()}
    progressed = []
    task = models.import_file(src, copy=True)
    assert not models.cancel_btn.isHidden()
    task.signals.progress.connect(lambda d, n: progressed.append(d))
    models.cancel()
    qtbot.waitUntil(lambda: models.busy is None, timeout=WAIT_MS)
    assert {m.sha256 for m in ctx.registry.list()} == before
    assert not [p for p in own_paths.models_dir.iterdir() if p.name.startswith("big")]
    assert models.banner.kind == "error" and "cancelled" in models.banner.text()
