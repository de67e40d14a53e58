"""The Models screen over the path-keyed registry (issue #10 item 5): status per file, the copy question, Remove
that deletes only a confirmed library copy, the default marker, a damaged registry reported."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.config import Paths
from app.core.models import Registry, add_model
from tests.qt.conftest import WAIT_MS, qt_config


@pytest.fixture
def screen(qtbot, tmp_path):
    """A Models screen over a data directory of the test's own (no model loaded: the table is what is tested)."""
    from app.qt.app_context import AppContext
    from app.qt.models_tab import ModelsTab

    made = []

    def make(config=None):
        paths = Paths(tmp_path / "data", tmp_path / "config")
        ctx = AppContext(paths, config or qt_config(tmp_path))
        tab = ModelsTab(ctx)
        qtbot.addWidget(tab)
        made.append(ctx)
        return ctx, tab

    yield make
    for ctx in made:
        ctx.close()


def _place(src: Path, where: Path) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(src, where))


def _row(tab, path: str) -> int:
    return next(r for r, m in enumerate(tab.models) if m.path == path)


def _cell(tab, path: str, column: str) -> str:
    from app.qt.models_tab import COLUMNS

    return tab.table.item(_row(tab, path), COLUMNS.index(column)).text()


def test_each_file_has_a_row_with_its_status_and_verified_is_never_yes_for_a_gone_or_changed_file(
    qtbot, screen, tmp_path, tiny_llama_gguf
):
    paths = Paths(tmp_path / "data", tmp_path / "config")
    reg = Registry(paths)
    a, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "a" / "tiny.gguf"))
    b, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "b" / "tiny.gguf"))
    c, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "c" / "tiny.gguf"), copy=True)
    _, tab = screen(replace(qt_config(tmp_path), default_model=b.path))
    assert sorted(m.path for m in tab.models) == sorted([a.path, b.path, c.path]), "one row per file"
    assert [_cell(tab, p, "Verified") for p in (a.path, b.path, c.path)] == ["yes"] * 3
    assert _cell(tab, c.path, "Where") == "library: tiny.gguf" and _cell(tab, a.path, "Where") == a.path
    assert _cell(tab, b.path, "Default") == "default" and _cell(tab, a.path, "Default") == ""
    os.utime(a.path, ns=(1, 1))
    os.unlink(b.path)
    tab.show()  # opening the screen shows the files as they are now
    assert _cell(tab, a.path, "Verified") == "changed"
    assert _cell(tab, b.path, "Verified") == "MISSING"
    assert _cell(tab, b.path, "Default") == "default (missing: the demo is used)"
    tab.table.selectRow(_row(tab, b.path))
    assert tab.verify_selected() is None and "missing" in tab.banner.text()
    tab.table.selectRow(_row(tab, a.path))
    assert tab.verify_selected() is not None
    qtbot.waitUntil(lambda: tab.busy is None, timeout=WAIT_MS)
    assert _cell(tab, a.path, "Verified") == "yes", "verified again after Verify"
    # A missing model cannot become the default.
    tab.table.selectRow(_row(tab, b.path))
    tab.set_default_selected()
    assert tab.banner.kind == "error" and "cannot be the default" in tab.banner.text()


def test_import_question_ticks_copy_for_removable_media(screen, monkeypatch, tmp_path):
    import app.qt.models_tab as models_tab

    _, tab = screen()
    monkeypatch.setattr(models_tab, "is_removable", lambda path, **k: True)
    box = tab.import_choice("/media/alice/STICK/m.gguf")
    assert tab.copy_choice.isChecked() and "removable" in box.informativeText()
    monkeypatch.setattr(models_tab, "is_removable", lambda path, **k: False)
    tab.import_choice(tmp_path / "m.gguf")
    assert not tab.copy_choice.isChecked()
    tab.copy_box.setChecked(True)
    tab.import_choice(tmp_path / "m.gguf")
    assert tab.copy_choice.isChecked(), "the screen's choice is the start"


def _answer(text: str) -> None:
    box = QApplication.activeModalWidget()
    assert isinstance(box, QMessageBox), box
    [button] = [b for b in box.buttons() if b.text() == text]
    button.click()


def test_remove_asks_and_deletes_only_a_library_copy_the_user_chose_to_delete(screen, tmp_path, tiny_llama_gguf):
    paths = Paths(tmp_path / "data", tmp_path / "config")
    reg = Registry(paths)
    own = _place(tiny_llama_gguf, tmp_path / "mine" / "tiny.gguf")
    mine, _ = add_model(reg, own)
    lib, _ = add_model(reg, own, copy=True)
    ctx, tab = screen()
    own_q = [b.text() for b in tab.remove_question(tab.models[_row(tab, mine.path)]).buttons()]
    assert "Remove and delete the copy" not in own_q, "the user's own file is never offered for deletion"
    tab.table.selectRow(_row(tab, mine.path))
    QTimer.singleShot(0, lambda: _answer("Remove"))
    assert tab.remove_selected()
    assert own.exists() and "stays" in tab.banner.text()
    tab.table.selectRow(_row(tab, lib.path))
    QTimer.singleShot(0, lambda: _answer("Cancel"))
    tab.remove_btn.click()  # the button asks too (its clicked(bool) must not skip the question)
    assert ctx.registry.find(lib.path) is not None and os.path.exists(lib.path)
    QTimer.singleShot(0, lambda: _answer("Cancel"))
    assert not tab.remove_selected() and ctx.registry.find(lib.path) is not None
    QTimer.singleShot(0, lambda: _answer("Remove and delete the copy"))
    assert tab.remove_selected()
    assert not os.path.exists(lib.path) and ctx.registry.find(lib.path) is None and own.exists()
    assert tab.models == []


def test_rename_keeps_the_row_and_its_file(screen, tmp_path, tiny_llama_gguf):
    reg = Registry(Paths(tmp_path / "data", tmp_path / "config"))
    info, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "a" / "tiny.gguf"))
    _, tab = screen()
    assert not tab.rename(tab.models[0], "   ") and "1 to 120" in tab.banner.text()
    assert tab.rename(tab.models[0], "Ward model")
    tab.refresh()
    assert [(m.name, m.path) for m in tab.models] == [("Ward model", info.path)]
    assert _cell(tab, info.path, "Name") == "Ward model"


def test_a_damaged_registry_is_kept_aside_and_reported(qtbot, screen, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "models.json").write_text('{"version": 2, "models": [')
    from app.qt.app_context import AppContext
    from app.qt.models_tab import ModelsTab

    ctx = AppContext(Paths(data, tmp_path / "config"), qt_config(tmp_path))
    try:
        with qtbot.waitSignal(ctx.notice, timeout=WAIT_MS) as told:
            tab = ModelsTab(ctx)
            qtbot.addWidget(tab)
        assert "damaged" in told.args[0] and "damaged" in tab.banner.text()
        assert [p.name.startswith("models.json.damaged-") for p in data.iterdir()] == [True]
    finally:
        ctx.close()
