"""Settings and the status bar under the organisation's policy (app/core/policy.py): locked controls are
disabled and name the file; saving keeps the user's own values on disk; the badge shows a policy is in force."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Paths, load_config, read_config
from app.core.policy import POLICY_FILE_ENV


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    f = tmp_path / "etc" / "policy.toml"
    f.parent.mkdir()
    monkeypatch.setenv(POLICY_FILE_ENV, str(f))
    return f


def _window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState

    app_paths = Paths(tmp_path / "data", tmp_path / "config")
    ctx = AppContext(app_paths, load_config(app_paths))  # no start(): no model, no log needed here
    win = MainWindow(ctx, UiState(tmp_path / "ui"))
    qtbot.addWidget(win)
    return ctx, win


def test_settings_disable_locked_controls_and_name_the_policy_file(qtbot, tmp_path, policy_file):
    from app.qt.settings_tab import SettingsTab

    fixed = tmp_path / "srv" / "log.db"
    policy_file.write_text(f'log_path = "{fixed}"\nstore_note_text = false\nnote_state_cache = false\n')
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text('{"database": "/home/me/mine.db", "store_note_text": true}')
    ctx, win = _window(qtbot, tmp_path)
    try:
        tab = win.findChild(SettingsTab)
        note = f"Set by your organisation's policy ({policy_file})"
        for control in (tab.database, tab.db_browse, tab.note_text):
            assert not control.isEnabled() and control.toolTip() == note
        assert tab.database.text() == str(fixed) and not tab.note_text.isChecked()  # the values in force
        assert "Note states are not kept on disk" in tab.purge.toolTip() and tab.purge.isEnabled()
        assert tab.policy_info.isVisibleTo(tab) and str(policy_file) in tab.policy_info.text()
        assert not tab.is_dirty()
        assert win.policy_label.isVisibleTo(win) and "log_path" in win.policy_label.toolTip()
        # Saving other settings keeps the user's own log location and note-text choice on disk.
        tab.font_size.setValue(tab.font_size.value() + 1)
        assert tab.save()
        own = read_config(ctx.paths)
        assert own.database == "/home/me/mine.db" and own.store_note_text is True
        assert own.font_size == ctx.config.font_size and ctx.config.database == str(fixed)
        assert not ctx.config.store_note_text and ctx.config.engine.kv_disk_mb == 0
    finally:
        win.close()
        ctx.close()


def test_without_a_policy_every_control_is_the_users(qtbot, tmp_path, policy_file):
    from app.qt.settings_tab import SettingsTab

    policy_file.write_text("")
    ctx, win = _window(qtbot, tmp_path)
    try:
        tab = win.findChild(SettingsTab)
        assert tab.database.isEnabled() and tab.note_text.isEnabled() and tab.db_browse.isEnabled()
        assert tab.note_text.toolTip() == "Off: the log keeps only each note's sha256 and length"
        assert not tab.policy_info.isVisibleTo(tab) and not win.policy_label.isVisibleTo(win)
    finally:
        win.close()
        ctx.close()


def test_a_broken_config_file_does_not_lift_the_policy(qtbot, tmp_path, policy_file):
    from app.qt.app_context import AppContext

    policy_file.write_text("store_note_text = false\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{not json")
    ctx = AppContext(Paths(tmp_path / "data", tmp_path / "config"))
    try:
        assert ctx.config_error and ctx.config.store_note_text is False
    finally:
        ctx.close()


def test_a_gui_start_refused_by_a_broken_policy_says_so_in_a_dialog(qapp, policy_file, monkeypatch, capsys):
    """Started from the desktop menu nobody reads stderr: the refusal is shown in a dialog where a display is."""
    from PySide6.QtWidgets import QMessageBox

    from app.cli.main import main
    from app.qt import main as qt_main

    policy_file.write_text("endpoint_commands = maybe\n")  # not TOML: every command refuses, exit 9
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: shown.append(box.text()) or 0)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["gui"]) == 9 and shown == [], "no dialog on an offscreen display (it would block unseen)"
    assert "policy" in capsys.readouterr().err
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    assert main(["gui"]) == 9
    assert len(shown) == 1 and str(policy_file) in shown[0], "the dialog names the broken file"
    assert not qt_main.show_startup_error("x", environ={"QT_QPA_PLATFORM": "xcb"}), "no display: no dialog"
