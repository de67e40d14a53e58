"""The Models screen: the registry (one row per file), import (optionally copied into the app's library), verify,
rename, remove, set default, RAM estimate. Every change goes through ``app.core.models``, the API
``asclepius models ...`` uses too."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import AsclepiusError, Cancelled
from app.core.models import (
    CHANGED,
    MISSING,
    add_model,
    default_setting,
    human_size,
    is_default,
    is_removable,
    mark_missing,
    remove_model,
    rename_model,
    verified_label,
)
from app.core.models.gguf_scan import scan_gguf
from app.core.types import ModelInfo
from app.qt.app_context import AppContext
from app.qt.screen_fit import flow
from app.qt.widgets import Banner
from app.qt.workers import Job, Task, describe_error

COLUMNS = (
    "Name",
    "",
    "Architecture",
    "Quant",
    "Size",
    "Context",
    "sha256",
    "Verified",
    "RAM estimate",
    "Default",
    "Where",
)
VERIFIED_COL = 7


def kv_bytes(path: str, arch: str, n_ctx: int) -> int | None:
    """Bytes of an F16 KV cache for ``n_ctx`` tokens, from the GGUF's own shape keys (None if unreadable)."""
    names = ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv")
    try:
        v = scan_gguf(Path(path)).metadata
    except (OSError, ValueError):
        return None
    layers, emb, heads, kv_heads = (v.get(f"{arch}.{n}") for n in names)
    kv_heads = kv_heads or heads
    head_dim = v.get(f"{arch}.attention.key_length") or (emb // heads if emb and heads else None)
    if not (layers and kv_heads and head_dim):
        return None
    return 2 * int(layers) * n_ctx * int(kv_heads) * int(head_dim) * 2  # K and V, 2 bytes each (F16)


def ram_estimate(info: ModelInfo, n_ctx: int, kv_cache_mb: int) -> tuple[int, str]:
    """Weights (memory-mapped file) + KV cache for the context + the note-state cache budget + ~15% buffers."""
    kv = kv_bytes(info.path, info.architecture, n_ctx)
    total = int(info.size_bytes * 1.15) + (kv or 0) + kv_cache_mb * 2**20
    detail = f"weights {human_size(info.size_bytes)}, KV cache {human_size(kv) if kv else '?'} for {n_ctx:,} tokens, "
    detail += f"note-state cache up to {kv_cache_mb} MB"
    return total, detail


class ModelsTab(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.banner = Banner()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Names are shown whole; the folder column starts at a fixed width, takes any spare width and elides a
        # long path in the middle (the full path is in its tooltip and the details below). On a narrow screen the
        # table scrolls sideways rather than cutting the model names to "Gemm…".
        where = len(COLUMNS) - 1
        self.table.horizontalHeader().setSectionResizeMode(where, QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().resizeSection(where, 200)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.import_btn = QPushButton("&Import GGUF…")
        self.import_btn.clicked.connect(self.import_dialog)
        self.verify_btn = QPushButton("&Verify sha256")
        self.verify_btn.clicked.connect(self.verify_selected)
        self.default_btn = QPushButton("Set as de&fault")
        self.default_btn.clicked.connect(self.set_default_selected)
        self.rename_btn = QPushButton("Re&name…")
        self.rename_btn.clicked.connect(self.rename_dialog)
        self.remove_btn = QPushButton("Rem&ove")
        self.remove_btn.setToolTip(
            "Forget the model: your file stays; the app's library copy is deleted only if you say so"
        )
        # Not connected directly: clicked(bool) would arrive as ``confirm=False`` and skip the question.
        self.remove_btn.clicked.connect(lambda: self.remove_selected())
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.cancel_btn.hide()
        self.copy_box = QCheckBox("Copy imported models into the app's library")
        self.copy_box.setToolTip(
            "The import asks each time; this is its starting choice. For a model on removable media (a USB stick) "
            "copying is the starting choice anyway, so it stays usable when the stick is unplugged"
        )
        self.buttons = (self.import_btn, self.verify_btn, self.default_btn, self.rename_btn, self.remove_btn)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.progress_label = QLabel()
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setStyleSheet("color:#444;")
        btns = QHBoxLayout()
        btns.addWidget(self.progress_label)
        btns.addWidget(self.progress, 1)
        btns.addWidget(self.cancel_btn)
        note = QLabel(
            "Models are GGUF files produced by <i>asclepius quantize</i> or brought on removable media. Importing "
            "reads the header, checks the file is complete and computes its sha256."
        )
        note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(note)
        lay.addWidget(flow(*self.buttons, self.copy_box))
        lay.addLayout(btns)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.detail)
        self.table.itemSelectionChanged.connect(self._show_detail)
        ctx.models_changed.connect(self.refresh)
        ctx.config_changed.connect(self.refresh)
        self.models: list[ModelInfo] = []
        self._ram: dict[str, tuple[int, str]] = {}
        self.busy: Task | None = None
        self.copy_choice: QCheckBox | None = None
        self.refresh()
        if ctx.registry.notice:  # models.json was damaged and kept aside: say it here and on the Ask screen
            self.banner.show_error(ctx.registry.notice)
            QTimer.singleShot(0, lambda: ctx.notice.emit(ctx.registry.notice))

    def showEvent(self, event) -> None:
        # Files come and go outside the app (a USB stick): each visit shows their status as it is now.
        super().showEvent(event)
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        """Rebuild the table from the registry. The selection follows its model (``select``: that model's
        path instead), not its row: a rename or import re-sorts the rows, and the details below must always
        describe the highlighted row."""
        reg = self.ctx.registry
        current = self.selected()
        keep = select or (current.path if current else None)
        self.models = sorted(reg.list(), key=lambda m: (not reg.is_builtin(m), m.name.lower(), m.path))
        blocker = QSignalBlocker(self.table)
        self.table.setRowCount(len(self.models))
        for row, m in enumerate(self.models):
            ram = self._ram.get(m.path)
            cells = (
                m.name,
                "DEMO" if m.is_demo else "",
                m.architecture,
                m.file_type,
                human_size(m.size_bytes),
                f"{m.context_length:,}",
                m.short_sha,
                verified_label(m),
                human_size(ram[0]) if ram else ("—" if m.status == MISSING else "…"),
                self._default_text(m),
                "built in" if reg.is_builtin(m) else (f"library: {Path(m.path).name}" if m.in_library else m.path),
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 1 and m.is_demo:
                    item.setBackground(Qt.GlobalColor.yellow)
                    item.setToolTip("Demo model: not trained for clinical tasks")
                if col == VERIFIED_COL and m.status != "ok":
                    item.setForeground(Qt.GlobalColor.red)
                    item.setToolTip(STATUS_TIPS[m.status].format(path=m.path))
                if col == len(cells) - 1:
                    item.setToolTip(m.path)
                self.table.setItem(row, col, item)
        self.table.clearSelection()
        rows = [r for r, m in enumerate(self.models) if m.path == keep]
        if rows:
            self.table.selectRow(rows[0])
        del blocker
        self._show_detail()
        self._estimate_ram()

    def _default_text(self, m: ModelInfo) -> str:
        in_use = self.ctx.model is not None and self.ctx.model.path == m.path
        default = is_default(self.ctx.registry, m, self.ctx.config.default_model)
        if in_use:
            return "● in use" + (" (default)" if default else "")
        if default:
            return "default (missing: the demo is used)" if m.status == MISSING else "default"
        return ""

    def _estimate_ram(self) -> None:
        todo = [m for m in self.models if m.path not in self._ram and m.status != MISSING]
        if not todo:
            return
        cfg = self.ctx.config.engine

        def work(_job: Job) -> dict[str, tuple[int, str]]:
            return {m.path: ram_estimate(m, cfg.context_for(m.context_length), cfg.kv_cache_mb) for m in todo}

        task = Task(work, "estimate RAM")
        task.signals.finished.connect(lambda est: (self._ram.update(est), self.refresh()))  # keeps the selection
        self.ctx.tasks.start(task)

    def selected(self) -> ModelInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def _show_detail(self) -> None:
        m = self.selected()
        if m is None:
            self.detail.clear()
            return
        ram = self._ram.get(m.path)
        where = " (the app's library copy)" if m.in_library else ""
        text = f"<b>{m.display_name}</b><br>{m.path}{where}<br>sha256 {m.sha256}<br>prompt style: {m.prompt_style}"
        if m.status != "ok":
            text += "<br><b>" + STATUS_TIPS[m.status].format(path=m.path) + "</b>"
        if ram:
            text += f"<br>RAM estimate {human_size(ram[0])}: {ram[1]}"
        self.detail.setText(text)

    # -- long operations --------------------------------------------------------------------------
    def _run(self, fn, label: str, done) -> Task | None:
        if self.busy is not None:
            self.banner.show_error("Another model operation is still running.")
            return None
        self.banner.hide()
        task = Task(fn, label)
        task.signals.progress.connect(self._progress)
        task.signals.finished.connect(done)
        task.signals.errored.connect(lambda e: self.banner.show_error(describe_error(e)))
        task.signals.done.connect(self._idle)
        self.busy = task
        self._label = label
        self._started = time.monotonic()
        self.progress_label.setText(label + ": checking the file…")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.cancel_btn.show()
        for b in self.buttons:
            b.setEnabled(False)
        return self.ctx.tasks.start(task)

    def cancel(self) -> None:
        if self.busy is not None:
            self.busy.cancel.set()
            self.progress_label.setText("Cancelling…")

    @staticmethod
    def _checked_progress(job: Job):
        """A progress callback that also ends the work when Cancel is pressed."""

        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            job.progress(done, total)

        return progress

    def _progress(self, done: int, total: int) -> None:
        """Per mille on the bar (a QProgressBar holds an int: bytes of a 4 GB model would overflow it), the
        percentage, the bytes and the throughput in the label. The work reports ``total`` only once the
        file is on the disk (``copy_into_library`` syncs as it goes), so 100 % means done."""
        if self.busy is not None and self.busy.cancel.is_set():
            return  # "Cancelling…" stays until the work stops
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 * done // total if total else 0)
        seconds = max(time.monotonic() - self._started, 1e-3)
        self.progress_label.setText(
            f"{self._label}: {human_size(done)} of {human_size(total)}, {human_size(int(done / seconds))}/s"
        )

    def _idle(self) -> None:
        self.busy = None
        self.progress.hide()
        self.cancel_btn.hide()
        self.progress_label.clear()
        for b in self.buttons:
            b.setEnabled(True)

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import model", "", "GGUF models (*.gguf);;All files (*)")
        if not path:
            return
        box = self.import_choice(path)
        if box.exec() == QMessageBox.StandardButton.Ok:
            self.import_file(path, copy=self.copy_choice.isChecked())

    def import_choice(self, path: str | Path) -> QMessageBox:
        """The question before an import: copy into the app's library? Ticked for removable media."""
        removable = is_removable(path, library=self.ctx.paths.models_dir)
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Import model",
            f"Import {path}?",
            QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setInformativeText(
            "The file is on removable media: a copy keeps the model usable when it is unplugged."
            if removable
            else "Without a copy the model is used where it is; if the file moves or is deleted it shows as MISSING."
        )
        # Parented to the box: a parentless check box would be deleted with its Python wrapper.
        self.copy_choice = QCheckBox("Copy into the app's model library (hashed as it is copied)", box)
        self.copy_choice.setChecked(removable or self.copy_box.isChecked())
        box.setCheckBox(self.copy_choice)
        return box

    def import_file(self, path: str | Path, copy: bool | None = None) -> Task | None:
        """Import ``path``; ``copy`` None: as the checkbox says, and always for removable media."""
        reg = self.ctx.registry
        if copy is None:
            copy = self.copy_box.isChecked() or is_removable(path, library=self.ctx.paths.models_dir)
        label = "Copying into the library (hashed as it is copied)" if copy else "Importing (sha256)"
        return self._run(
            lambda job: add_model(reg, path, copy=copy, progress=self._checked_progress(job)), label, self._imported
        )

    def _imported(self, res: tuple[ModelInfo, str]) -> None:
        info, note = res
        self.banner.show_info(
            f"Imported {info.display_name} (sha256 {info.short_sha})." + (f" Note: {note}." if note else "")
        )
        self.ctx.models_changed.emit()
        self.refresh(select=info.path)

    def verify_selected(self) -> Task | None:
        m = self.selected()
        if m is None:
            self.banner.show_error("Select a model to verify.")
            return None
        reg = self.ctx.registry
        m = reg.find(m.path) or m  # the file as it is now: it may have come back since the table was drawn
        if m.status == MISSING:
            mark_missing(reg, m.path)
            self.banner.show_error(f"{m.display_name}: the file is missing ({m.path}).")
            self.refresh()
            return None
        return self._run(lambda job: reg.verify(m.path, self._checked_progress(job)), "Verifying", self._verified)

    def _verified(self, res: tuple[ModelInfo, bool]) -> None:
        info, ok = res
        if ok:
            self.banner.show_info(f"{info.display_name}: the sha256 matches.")
        else:
            self.banner.show_error(f"{info.display_name}: the file's sha256 no longer matches; it has changed.")
        self.refresh(select=info.path)
        reg, loaded = self.ctx.registry, self.ctx.model
        if ok and is_default(reg, info, self.ctx.config.default_model) and (loaded is None or loaded.path != info.path):
            # The default came back (a restored file, a re-plugged stick): use it now, not after a restart.
            self.banner.show_info(f"{info.display_name}: the sha256 matches; loading it again as the default.")
            self.ctx.load_engine()

    def rename_dialog(self) -> None:
        m = self.selected()
        if m is None:
            self.banner.show_error("Select a model to rename.")
            return
        dialog = self.rename_input(m)
        if dialog.exec() == QInputDialog.DialogCode.Accepted:
            self.rename(m, dialog.textValue())

    def rename_input(self, m: ModelInfo) -> QInputDialog:
        """The Rename dialog, wide enough that a window manager does not cut its title to "Rena…" and the
        name is shown whole."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle(f"Rename model {m.display_name}")
        dialog.setLabelText("Name shown for this model:")
        dialog.setTextValue(m.name)
        fm = dialog.fontMetrics()
        text = max(fm.horizontalAdvance(dialog.windowTitle()), fm.horizontalAdvance(m.name))
        wanted = text + 12 * fm.averageCharWidth()
        dialog.setMinimumWidth(min(wanted, 60 * fm.averageCharWidth()))
        return dialog

    def rename(self, m: ModelInfo, name: str) -> bool:
        try:
            info = rename_model(self.ctx.registry, m.path, name)
        except AsclepiusError as exc:
            self.banner.show_error(str(exc))
            return False
        self.banner.show_info(f"Renamed to {info.display_name}.")
        self.ctx.models_changed.emit()
        self.refresh(select=info.path)
        return True

    def remove_question(self, m: ModelInfo) -> QMessageBox:
        """Remove: forget the entry; a library copy is deleted only through its own button."""
        box = QMessageBox(QMessageBox.Icon.Question, "Remove model", f"Remove {m.display_name}?", parent=self)
        if m.in_library:
            box.setInformativeText(
                f"The file is the app's own copy in its model library ({m.path}, {human_size(m.size_bytes)}). "
                "Its runs stay in the evaluation log."
            )
            box.addButton("Remove and delete the copy", QMessageBox.ButtonRole.DestructiveRole)
            box.addButton("Remove, keep the file", QMessageBox.ButtonRole.AcceptRole)
        else:
            box.setInformativeText(f"The file stays where it is ({m.path}). Its runs stay in the evaluation log.")
            box.addButton("Remove", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        return box

    def remove_selected(self, confirm: bool = True, delete_copy: bool = False) -> bool:
        """Remove the selected model; ``confirm`` asks (and the answer decides ``delete_copy``)."""
        m = self.selected()
        if m is None:
            self.banner.show_error("Select a model to remove.")
            return False
        reg = self.ctx.registry
        if reg.is_builtin(m):
            self.banner.show_error("The demo model is built in and cannot be removed.")
            return False
        if confirm:
            box = self.remove_question(m)
            box.exec()
            role = box.buttonRole(box.clickedButton()) if box.clickedButton() else None
            if role not in (QMessageBox.ButtonRole.DestructiveRole, QMessageBox.ButtonRole.AcceptRole):
                return False
            delete_copy = role == QMessageBox.ButtonRole.DestructiveRole
        was_default = is_default(reg, m, self.ctx.config.default_model)
        in_use = self.ctx.model is not None and self.ctx.model.path == m.path
        try:
            _, deleted = remove_model(reg, m.path, delete_copy=delete_copy)
        except (AsclepiusError, OSError) as exc:
            self.banner.show_error(describe_error(exc))
            return False
        kept = "" if deleted else f" The file stays: {m.path}."
        self.banner.show_info(f"Removed {m.display_name}." + (" Its library copy was deleted." if deleted else kept))
        if was_default and self.ctx.config.default_model:
            self.ctx.set_default_model("")  # back to the demo model
        elif in_use:
            self.ctx.load_engine()
        self.ctx.models_changed.emit()
        return True

    def set_default_selected(self) -> None:
        m = self.selected()
        if m is None:
            self.banner.show_error("Select a model to make it the default.")
            return
        try:
            info, value = default_setting(self.ctx.registry, m.path)
            self.ctx.set_default_model(value)
        except (AsclepiusError, OSError) as exc:
            self.banner.show_error(describe_error(exc))
            return
        self.banner.show_info(f"{info.display_name} is now the default; loading it in the background.")
        self.refresh(select=info.path)


STATUS_TIPS = {
    MISSING: "The file is missing: {path} (a removed USB stick, or a moved or deleted file)",
    CHANGED: "The file's size or modification time changed since it was hashed: Verify checks it again",
}
