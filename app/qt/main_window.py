"""The main window: one tab per screen and a status bar with the model, an offline badge and the log path."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QSizePolicy, QTabWidget, QToolButton, QWidget

from app.core import netns
from app.core.config import Paths
from app.qt.app_context import AppContext, State
from app.qt.ask_tab import AskTab
from app.qt.screen_fit import FocusRing, available_size, initial_size, tab_leaves_item_views
from app.qt.uistate import UiState

BADGE = "border-radius:3px; padding:1px 6px; font-weight:bold;"
DEMO_WARNING = "⚠ DEMO MODEL: not trained for clinical tasks"


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, ui_state: UiState | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.ui_state = ui_state or UiState(ctx.paths.config_dir)
        self.setWindowTitle("Asclepius Desk")
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.ask_tab = AskTab(ctx)
        self.tabs.addTab(self.ask_tab, "&Ask")
        self._lazy: dict[int, tuple[str, type[QWidget]]] = {}
        self._add_screens()
        for i in range(self.tabs.count()):
            QShortcut(QKeySequence(f"Ctrl+{i + 1}"), self, lambda i=i: self.tabs.setCurrentIndex(i))
        # Ctrl+Q closes the window, so quitting saves pending ratings and stops a run as closing it does.
        self.quit_shortcut = QShortcut(QKeySequence("Ctrl+Q"), self, self.close)
        self._build_status_bar()
        tab_leaves_item_views(self)
        self.apply_font()
        ctx.engine_changed.connect(self._update_status)
        ctx.log_changed.connect(self._update_status)
        ctx.config_changed.connect(self._update_status)
        ctx.config_changed.connect(self.apply_font)
        ctx.notice.connect(self.ask_tab.banner.show_info)
        self._load_t0 = time.monotonic()
        self._load_timer = QTimer(self)
        self._load_timer.setInterval(500)
        self._load_timer.timeout.connect(self._update_status)
        self._update_status()
        geo = self.ui_state.geometry()
        if geo is None or not self.restoreGeometry(geo):
            self.resize(initial_size(available_size(self)))
        self._split_state = self.ui_state.splitter()
        self.tabs.setCurrentIndex(min(self.ui_state.last_tab(), self.tabs.count() - 1))
        self._tab = self.tabs.currentIndex()
        self.tabs.currentChanged.connect(self._tab_changed)
        self.focus_ring = FocusRing(self)

    def _add_screens(self) -> None:
        from app.qt.compare_tab import CompareTab
        from app.qt.history_tab import HistoryTab
        from app.qt.models_tab import ModelsTab
        from app.qt.settings_tab import SettingsTab
        from app.qt.stats_tab import StatsTab
        from app.qt.study_tab import StudyTab

        self.history_tab = HistoryTab(self.ctx)
        self.history_tab.open_run.connect(self._open_run)
        self.history_tab.rerun.connect(self._rerun)
        self.compare_tab = CompareTab(self.ctx, self.ask_tab)
        self.models_tab = ModelsTab(self.ctx)
        self.stats_tab = StatsTab(self.ctx)
        self.study_tab = StudyTab(self.ctx)
        self.settings_tab = SettingsTab(self.ctx)
        self.tabs.addTab(self.history_tab, "&History")
        self.tabs.addTab(self.compare_tab, "Co&mpare")
        self.tabs.addTab(self.models_tab, "Mo&dels")
        self.tabs.addTab(self.stats_tab, "S&tatistics")
        self.tabs.addTab(self.study_tab, "Stud&y")
        self.tabs.addTab(self.settings_tab, "Settin&gs")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Column widths are restored once the window has its size, or the first resize would redistribute them.
        if self._split_state is not None:
            state, self._split_state = self._split_state, None
            self.layout().activate()
            self.ask_tab.split.restoreState(state)

    def _tab_changed(self, index: int) -> None:
        """Leaving Settings with unsaved changes asks: save, discard, or stay."""
        prev, self._tab = self._tab, index
        if self.tabs.widget(prev) is not self.settings_tab or not self.settings_tab.is_dirty():
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Unsaved settings",
            "The settings have changes that are not saved.",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            if not self.settings_tab.save():
                self._back_to(prev)
        elif answer == QMessageBox.StandardButton.Discard:
            self.settings_tab.load()
        else:
            self._back_to(prev)

    def _back_to(self, index: int) -> None:
        self.tabs.blockSignals(True)
        self.tabs.setCurrentIndex(index)
        self.tabs.blockSignals(False)
        self._tab = index

    def _open_run(self, view) -> None:
        self.ask_tab.show_run(view)
        self.tabs.setCurrentWidget(self.ask_tab)
        # The History table, which had the focus, is hidden now: Qt would hand the focus on to the next
        # control in the chain, a rating radio button, where Space would rate the run unasked.
        self.ask_tab.answer.setFocus(Qt.FocusReason.OtherFocusReason)

    def _rerun(self, view) -> None:
        self.tabs.setCurrentWidget(self.ask_tab)
        self.ask_tab.rerun(view)

    # -- status bar -------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.model_label = QLabel()
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Long labels must not set the window's minimum width: they are cut, the tooltip has it all.
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.model_label.setMinimumWidth(60)
        self.cancel_load = QToolButton()
        self.cancel_load.setText("Cancel")
        self.cancel_load.setToolTip("Stop loading the model")
        self.cancel_load.clicked.connect(self.ctx.cancel_load)
        self.cancel_load.hide()
        # Its own label, never cut: when the bar is short, the model's name gives way, not the warning.
        self.demo_badge = QLabel(DEMO_WARNING)
        self.demo_badge.setStyleSheet(BADGE + "background:#f6c343; color:#3b2a00;")
        self.demo_badge.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
        self.demo_badge.hide()
        self.offline = QLabel()
        self.show_protection(netns.protection())
        self.db_label = QLabel()
        self.db_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.db_label.setMaximumWidth(320)  # the file name only; the full path is in the tooltip
        # At 14 pt the bar is full: the log's name (in the tooltip too) gives way before the demo warning does.
        self.db_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.db_label.setMinimumWidth(60)
        sb.addWidget(self.model_label, 1)
        sb.addWidget(self.demo_badge)
        sb.addWidget(self.cancel_load)
        self.policy_label = QLabel("Managed by policy")
        self.policy_label.setObjectName("policy-badge")
        self.policy_label.setStyleSheet(BADGE + "background:#34495e; color:white;")
        sb.addPermanentWidget(self.db_label)
        sb.addPermanentWidget(self.policy_label)
        sb.addPermanentWidget(self.offline)

    def show_protection(self, shield: netns.Protection) -> None:
        """The badge says which network protection is in force, not a constant "offline"."""
        colour = "#1e6b2a" if shield.isolation.namespace else "#8a5a00"
        self.offline.setText(shield.badge)
        self.offline.setStyleSheet(BADGE + f"background:{colour}; color:white;")
        notes = "".join(f"\n{n}" for n in shield.isolation.notes)
        self.offline.setToolTip(f"Network protection: {shield.label}{notes}")

    def _update_status(self) -> None:
        ctx = self.ctx
        if ctx.engine_state is State.READY and ctx.model is not None:
            m = ctx.model
            text = f"Model: {m.name} ({m.file_type})"
        elif ctx.engine_state is State.FAILED:
            text = f"<span style='color:#b3261e'>Model failed to load: {ctx.engine_message}</span>"
        else:
            text = f"Model: {ctx.engine_message or 'not loaded'}"
        loading = ctx.engine_state is State.LOADING
        if loading and not self._load_timer.isActive():
            self._load_t0 = time.monotonic()
            self._load_timer.start()
        elif not loading:
            self._load_timer.stop()
        if loading:
            text += f" · {time.monotonic() - self._load_t0:.0f} s"
        self.cancel_load.setVisible(loading)
        self.demo_badge.setVisible(ctx.engine_state is State.READY and ctx.model is not None and ctx.model.is_demo)
        self.model_label.setText(text)
        self.model_label.setToolTip(text)
        if ctx.log_state is State.FAILED:
            self.db_label.setText(f"<span style='color:#b3261e'>Log unavailable: {ctx.log_error}</span>")
        else:
            self.db_label.setText(f"Log: {ctx.database_path.name}")
        self.db_label.setToolTip(str(ctx.database_path))
        self._show_policy()

    def _show_policy(self) -> None:
        """A badge while a policy file sets anything; its tooltip lists each value and who set it."""
        policy = self.ctx.config.policy
        self.policy_label.setVisible(policy.in_force)
        rows = [f"{key}: {value} ({source})" for key, value, source in policy.rows() if policy.sets(key)]
        self.policy_label.setToolTip("Settings fixed by policy (asclepius policy shows them):\n" + "\n".join(rows))

    def apply_font(self) -> None:
        f = QFont(self.font())
        f.setPointSize(self.ctx.config.font_size)
        self.setFont(f)
        # A widget with its own style sheet (banners, hints, the rubric's definitions) no longer follows its
        # parent's font: the size must come through a style sheet too, or those texts stay at the old size.
        self.setStyleSheet(f"QWidget {{ font-size: {self.ctx.config.font_size}pt; }}")

    # -- closing ----------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.ask_tab.rate.flush()
        self.ask_tab.stop()
        self.compare_tab.flush()
        self.study_tab.flush()
        self.ui_state.save(self.saveGeometry(), self.tabs.currentIndex(), self.ask_tab.split.saveState())
        super().closeEvent(event)


def build_window(paths: Paths | None = None) -> tuple[AppContext, MainWindow]:
    """The app object and its window, with background loading started (used by run_gui and tests)."""
    ctx = AppContext(paths or Paths.default())
    win = MainWindow(ctx)
    for msg in (ctx.config_error, ctx.registry_error):
        if msg:
            win.ask_tab.banner.show_error(msg)
    ctx.start()
    return ctx, win
