"""Settings are saved and take effect; Statistics shows per-task means and exports private files, with and
without note text. Real demo model, real evaluation log."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog

from app.core.config import GenerationDefaults, Paths, load_config
from app.qt.app_context import State
from tests.qt.conftest import WAIT_MS, ask_and_wait, qt_config

pytestmark = pytest.mark.qt

MARKER = "Quillon-Vantreese 8213"  # a made-up name that can only come from these tests' notes


def _marked(note: str) -> str:
    return note.replace("68-year-old man", f"68-year-old man named {MARKER}")


def _private(p: Path) -> bool:
    return stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_settings_are_saved_to_the_config_file_and_take_effect(open_window, qtbot, tmp_path, paths, sample_note):
    from app.qt.app_context import AppContext
    from app.qt.settings_tab import SettingsTab

    # Own config_dir: saving must not change the session's config file that other tests read.
    app_paths = Paths(paths.data_dir, tmp_path / "config")
    cfg = qt_config(tmp_path, generation=GenerationDefaults(max_tokens=64, temperature=0.0, seed=0))
    ctx, win = open_window(cfg, app_paths=app_paths)
    s = win.settings_tab
    assert s.threads.value() == 2 and s.max_tokens.value() == 64 and s.note_text.isChecked()
    # The global maximum caps each task's own limit; the screen says which limit applies per task.
    assert "every task keeps its own" in s.caps_info.text() or "are cut to 64" in s.caps_info.text()
    s.threads.setValue(1)
    s.max_tokens.setValue(4)
    assert "8 of 8 tasks are cut to 4" in s.caps_info.text() and "Summarization 4" in s.caps_info.text()
    s.max_tokens.setValue(32768)
    assert "every task keeps its own" in s.caps_info.text() and "Question Answering 256" in s.caps_info.text()
    s.max_tokens.setValue(4)
    s.note_text.setChecked(False)
    assert s.save(), s.banner.text()

    saved = load_config(app_paths)
    assert (saved.engine.n_threads, saved.generation.max_tokens, saved.store_note_text) == (1, 4, False)
    assert _private(app_paths.config_file)
    # Threads changed: the model reloads with them.
    qtbot.waitUntil(lambda: ctx.engine_state is State.READY and ctx.engine.config.n_threads == 1, timeout=WAIT_MS)

    outcome = ask_and_wait(qtbot, win.ask_tab, _marked(sample_note), "summary", "Summarize the hospital course.")
    assert outcome.result.completion_tokens <= 4
    run = ctx.log.get_run(outcome.run_id)
    assert run.sampling["max_tokens"] == 4
    assert run.note_text is None and len(run.note_sha256) == 64, "hash-only storage keeps no note text"
    win.close()
    ctx.close()
    # Nothing under this test's directory (database, WAL, config, window state) holds the note's text.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("log.db") for p in files)
    assert [p for p in files if MARKER.encode() in p.read_bytes()] == []

    # A restarted app reads the saved settings back into the form.
    ctx2 = AppContext(app_paths)
    tab2 = SettingsTab(ctx2)
    qtbot.addWidget(tab2)
    assert (tab2.threads.value(), tab2.max_tokens.value(), tab2.note_text.isChecked()) == (1, 4, False)
    ctx2.close()


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as fh:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in fh if line.strip()]
        return list(csv.DictReader(fh))


def test_statistics_shows_per_task_means_and_exports_private_files(
    open_window, qtbot, tmp_path, sample_note, monkeypatch
):
    ctx, win = open_window(qt_config(tmp_path, generation=GenerationDefaults(max_tokens=4, temperature=0.0, seed=0)))
    note = _marked(sample_note)
    qa = ask_and_wait(qtbot, win.ask_tab, note, "qa", "What was the admission diagnosis?")
    summ = ask_and_wait(qtbot, win.ask_tab, note, "summary", "Summarize the hospital course.")
    ctx.log.add_rating(qa.run_id, "alice", 4)
    ctx.log.add_rating(qa.run_id, "bob", 2)
    ctx.log.add_rating(summ.run_id, "alice", 1, comment="too short")

    st = win.stats_tab
    win.tabs.setCurrentWidget(st)
    ctx.runs_changed.emit()
    qtbot.waitUntil(lambda: len(st.chart.means) == 2 and st.task is None, timeout=WAIT_MS)
    means = {m.task: (m.runs, m.ratings, m.mean) for m in st.chart.means}
    assert means == {"Question Answering": (1, 2, 3.0), "Summarization": (1, 1, 1.0)}
    assert st.status.text().startswith("3 current human ratings")
    # Agreement per rated task (one doubly rated run at most: not enough for alpha, said so) and the flags.
    rows = [[st.agree_tasks.item(r, c).text() for c in range(6)] for r in range(st.agree_tasks.rowCount())]
    assert [(r[0], r[3]) for r in rows] == [("Question Answering", "1"), ("Summarization", "0")]
    assert all(r[1] == "–" and "not enough data" in r[5] for r in rows)
    flags = {st.flags.item(r, 1).text(): [st.flags.item(r, c).text() for c in (2, 3, 4)] for r in range(2)}
    assert flags == {"Question Answering": ["2", "0", "0"], "Summarization": ["1", "0", "1"]}
    assert not st.chart.grab().isNull()

    out = tmp_path / "exports"
    for fmt in ("csv", "jsonl"):
        for with_text in (True, False):
            path = out / f"runs-{with_text}.{fmt}"
            st.export_to(path, "runs", with_text)
            qtbot.waitUntil(lambda p=path: f"to {p}." in st.banner.text(), timeout=WAIT_MS)
            assert _private(path), oct(os.stat(path).st_mode)
            rows = _read(path)
            assert {r["run_id"] for r in rows} == {qa.result.run_uuid, summ.result.run_uuid}
            assert ("note_text" in rows[0]) is with_text
            assert (MARKER.encode() in path.read_bytes()) is with_text, (fmt, with_text)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "no partial files left behind"

    # The buttons reach the same exports (the file dialog answered by the test).
    target = out / "from-button.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(target), "")))
    [_with_text, without_btn, ratings_btn] = st.export_btns
    without_btn.click()
    qtbot.waitUntil(lambda: f"to {target}." in st.banner.text(), timeout=WAIT_MS)
    assert _private(target) and MARKER.encode() not in target.read_bytes()
    target.unlink()
    ratings_btn.click()
    qtbot.waitUntil(lambda: target.exists() and "ratings" in st.banner.text(), timeout=WAIT_MS)
    rows = _read(target)
    assert sorted(int(r["score"]) for r in rows) == [1, 2, 4] and _private(target)
    assert MARKER.encode() not in target.read_bytes()
    # The export message does not stay once the export is done.
    qtbot.waitUntil(lambda: "Exporting" not in st.status.text(), timeout=WAIT_MS)
    # The chart names the model as the app does, with the DEMO mark; a table gives the same numbers.
    assert all("DEMO" in name for name in st.chart.names.values()), st.chart.names
    st.as_table.setChecked(True)
    assert st.views.currentWidget() is st.table and st.table.rowCount() == 2
    cells = {st.table.item(r, 1).text(): st.table.item(r, 2).text() for r in range(2)}
    assert cells == {"Question Answering": "3.00", "Summarization": "1.00"}
    assert "DEMO" in st.table.item(0, 0).text()


def test_settings_purge_button_deletes_kept_note_states(qtbot, tmp_path):
    from app.core.kvstate import STATE_DIR_NAME
    from app.qt.app_context import AppContext
    from app.qt.settings_tab import SettingsTab

    app_paths = Paths(tmp_path / "data", tmp_path / "config")
    kept = app_paths.data_dir / STATE_DIR_NAME
    kept.mkdir(parents=True)
    (kept / "a.kv").write_bytes(b"x" * 2000)
    (kept / "b.kv").write_bytes(b"x" * 2000)
    ctx = AppContext(app_paths, qt_config(tmp_path))
    tab = SettingsTab(ctx)
    qtbot.addWidget(tab)
    tab.purge_kept_states()
    assert not list(kept.iterdir())
    assert "Deleted 2 kept note state(s)" in tab.banner.text()


def test_an_export_started_before_the_previous_one_ended_leaves_no_exporting_status(
    qtbot, paths, tmp_path, monkeypatch
):
    import threading

    import app.qt.stats_tab as stats_tab
    from app.qt.app_context import AppContext
    from app.qt.stats_tab import StatsTab

    ctx = AppContext(paths, qt_config(tmp_path))  # no model: exports read the log only
    ctx.open_log()
    qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
    st = StatsTab(ctx)
    qtbot.addWidget(st)
    # Each export waits in its worker until the test lets it go: the second provably starts while the first
    # is still running (its done signal not yet delivered), and the first ends first, however loaded the machine.
    gates = {"runs.csv": threading.Event(), "ratings.csv": threading.Event()}
    real = stats_tab.export_file

    def gated(log, path, *a, **k):
        gates[path.name].wait(WAIT_MS / 1000)
        return real(log, path, *a, **k)

    monkeypatch.setattr(stats_tab, "export_file", gated)
    idle = st.status.text()
    first = st.export_to(tmp_path / "runs.csv", "runs", False)
    second = st.export_to(tmp_path / "ratings.csv", "ratings", False)
    assert first is not None and second is not None and "Exporting" in st.status.text()
    with qtbot.waitSignal(first.signals.done, timeout=WAIT_MS):
        gates["runs.csv"].set()
    between = st.status.text()
    with qtbot.waitSignal(second.signals.done, timeout=WAIT_MS):
        gates["ratings.csv"].set()
    assert (tmp_path / "runs.csv").exists() and (tmp_path / "ratings.csv").exists()
    assert "Exporting" not in st.status.text() and st.status.text() == idle
    assert "Exporting ratings" in between, "while the second export ran, the status said so"
    ctx.close()


def test_settings_set_the_abbreviation_sense_folder_and_refuse_an_unreadable_one(qtbot, tmp_path, shared_data):
    """The folder grounding checks expansions against is a Setting: an unreadable folder is refused when saving
    (the config keeps the old value), a readable one is saved and the Ask screen's checks use it."""
    from app.core.config import load_config
    from app.qt.app_context import AppContext
    from app.qt.settings_tab import SettingsTab

    app_paths = Paths(tmp_path / "data", tmp_path / "config")
    ctx = AppContext(app_paths, qt_config(tmp_path))
    tab = SettingsTab(ctx)
    qtbot.addWidget(tab)
    tab.senses.setText(str(tmp_path / "no-such-folder"))
    assert tab.is_dirty()
    assert not tab.save()
    assert "Settings not saved" in tab.banner.text() and ctx.config.abbreviation_senses == ""
    folder = str(shared_data / "abbreviations")
    tab.senses.setText(folder)
    assert tab.save()
    assert ctx.config.abbreviation_senses == folder == load_config(app_paths).abbreviation_senses
    ctx.close()


def test_settings_turn_prompt_lookup_off_and_keep_the_engine_settings_they_do_not_show(qtbot, tmp_path):
    from dataclasses import replace

    from app.qt.app_context import AppContext
    from app.qt.settings_tab import SettingsTab

    app_paths = Paths(tmp_path / "data", tmp_path / "config")
    cfg = qt_config(tmp_path)
    cfg = replace(cfg, engine=replace(cfg.engine, parallel=3, kv_disk_mb=100, lookup=True))
    ctx = AppContext(app_paths, cfg)
    tab = SettingsTab(ctx)
    qtbot.addWidget(tab)
    assert tab.lookup.isChecked() and not tab.is_dirty()
    tab.lookup.setChecked(False)
    assert tab.is_dirty()
    assert tab.save(), tab.banner.text()
    saved = load_config(app_paths).engine
    assert saved.lookup is False and ctx.config.engine.lookup is False
    assert (saved.parallel, saved.kv_disk_mb) == (3, 100)
    ctx.close()
