"""The Models screen stays true to its selection: the details describe the highlighted row after Import,
Rename and Set as default; Verify after a file comes back verifies at the first click and a restored default
is loaded again; progress shows percent, bytes and throughput for files larger than an int; one size unit."""

from __future__ import annotations

import os
import shutil

import pytest
from PySide6.QtWidgets import QInputDialog

from app.core.models import human_size
from app.qt.models_tab import COLUMNS
from tests.qt.conftest import WAIT_MS, import_model

pytestmark = pytest.mark.qt

SIZE_COL, WHERE_COL = COLUMNS.index("Size"), COLUMNS.index("Where")


def _highlighted(models) -> str:
    rows = models.table.selectionModel().selectedRows()
    assert len(rows) == 1, "one row is highlighted"
    return models.table.item(rows[0].row(), 0).text()


def _select(models, name: str, path: str | None = None) -> None:
    """Highlight the row of ``name`` (or of the file at ``path``: the session's registry may list other files
    of the same name from earlier tests)."""
    [row] = [
        r for r, m in enumerate(models.models) if (m.path == path if path else models.table.item(r, 0).text() == name)
    ]
    models.table.selectRow(row)


def test_details_follow_the_highlighted_model_after_import_rename_and_default(
    open_window, qtbot, tmp_path, tiny_llama_gguf
):
    ctx, win = open_window()
    models = win.models_tab
    win.tabs.setCurrentWidget(models)
    _select(models, ctx.model.name, ctx.model.path)  # the demo row is highlighted before the import
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    import_model(qtbot, ctx, models, tiny)
    assert _highlighted(models) == "tiny-llama" and str(tiny) in models.detail.text(), "the new model is shown"
    assert models.table.item(models.table.currentRow(), WHERE_COL).text() == str(tiny), "the whole path"

    assert models.rename(models.selected(), "Zeta ward model")  # sorts after the demo: its row moves
    assert _highlighted(models) == "Zeta ward model" and "Zeta ward model" in models.detail.text()
    assert models.selected().path == str(tiny)

    models.set_default_selected()
    assert _highlighted(models) == "Zeta ward model" and "Zeta ward model" in models.detail.text()
    qtbot.waitUntil(lambda: ctx.model is not None and ctx.model.path == str(tiny), timeout=WAIT_MS)
    models.refresh()
    assert _highlighted(models) == "Zeta ward model", "a later refresh keeps it too"


def test_verify_after_a_restore_verifies_at_once_and_reloads_the_default(open_window, qtbot, tmp_path, tiny_llama_gguf):
    ctx, win = open_window()
    models = win.models_tab
    win.tabs.setCurrentWidget(models)
    tiny = tmp_path / "tiny-llama.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    import_model(qtbot, ctx, models, tiny)
    models.set_default_selected()
    qtbot.waitUntil(lambda: ctx.model is not None and ctx.model.path == str(tiny), timeout=WAIT_MS)

    kept = tmp_path / "kept.gguf"
    os.replace(tiny, kept)  # the stick is pulled: the default falls back to the demo
    ctx.load_engine()
    qtbot.waitUntil(lambda: ctx.model is not None and ctx.model.is_demo and models.busy is None, timeout=WAIT_MS)
    models.refresh()
    _select(models, "tiny-llama", str(tiny))
    assert "missing" in models.detail.text().lower()

    shutil.copy(kept, tiny)  # the file comes back (a new mtime: "changed" until it is hashed)
    task = models.verify_selected()
    assert task is not None, models.banner.text()
    qtbot.waitUntil(lambda: models.busy is None, timeout=WAIT_MS)
    row = models.table.currentRow()
    assert models.table.item(row, 7).text() == "yes", "verified at the first click"
    assert "missing" not in models.detail.text().lower()
    qtbot.waitUntil(lambda: ctx.model is not None and ctx.model.path == str(tiny), timeout=WAIT_MS)


def test_progress_shows_percent_bytes_and_speed_beyond_an_int(open_window):
    _, win = open_window()
    models = win.models_tab
    models._label, models._started = "Copying into the library", 0.0
    models._progress(2_000_000_000, 4_000_000_000)  # bytes of a 4 GB model do not fit a QProgressBar's int
    assert models.progress.value() * 2 == models.progress.maximum()
    label = models.progress_label.text()
    assert "2.0 GB of 4.0 GB" in label and "/s" in label


def test_sizes_use_one_unit_and_the_rename_dialog_shows_its_title(open_window):
    ctx, win = open_window()
    models = win.models_tab
    _select(models, ctx.model.name, ctx.model.path)
    m = models.selected()
    assert models.table.item(models.table.currentRow(), SIZE_COL).text() == human_size(m.size_bytes)
    assert human_size(253_113_024) == "253.1 MB", "decimal megabytes, as the first start reports the demo"
    dialog = models.rename_input(m)
    assert isinstance(dialog, QInputDialog)
    assert dialog.minimumWidth() >= dialog.fontMetrics().horizontalAdvance("Rename model")
