"""Fixtures for the desktop app tests: a real window over the real demo model and a per-test log."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.config import AppConfig, EngineConfig, GenerationDefaults

WAIT_MS = 180_000
"""Generous: the test machine is shared with heavy jobs; waits end on a signal, not on this."""


def qt_config(tmp_path: Path, **changes) -> AppConfig:
    # Small answers and two threads keep each ask to a second or two on a 2-core machine.
    cfg = AppConfig(
        engine=EngineConfig(n_threads=2, max_ctx=1024, kv_cache_mb=64),
        generation=GenerationDefaults(max_tokens=12, temperature=0.0, seed=0),
        database=str(tmp_path / "log.db"),
        # Off unless a test is about it (tests/qt/test_preread.py): a note read ahead would make the prompt
        # progress other tests watch depend on how long they took to press Ask.
        preread_note=False,
    )
    return replace(cfg, **changes)


@pytest.fixture(autouse=True)
def _collect_qt_garbage_on_the_gui_thread() -> Iterator[None]:
    """After each test, collect cyclic garbage here, on the GUI thread. A closed window or context caught in a
    reference cycle is otherwise freed whenever the collector next runs, which may be inside a worker thread of
    a later test (opening the log, loading a model): deleting Qt objects there crashed the suite once
    (a segfault in test_tab_walk's fixture, with the log's migration and a model load running in workers)."""
    yield
    gc.collect()


@pytest.fixture
def open_window(qtbot, tmp_path: Path, paths, demo_model) -> Iterator[Callable[..., object]]:
    """Build (ctx, window) like run_gui does, wait for the model and the log, close both at teardown."""
    from app.qt.app_context import AppContext, State
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState

    made = []

    def make(config: AppConfig | None = None, wait: bool = True, app_paths=None):
        # app_paths: a test that saves settings passes its own config_dir, so the session's config file stays put.
        ctx = AppContext(app_paths or paths, config or qt_config(tmp_path))
        win = MainWindow(ctx, UiState(tmp_path / "ui"))
        qtbot.addWidget(win)
        ctx.start()
        win.show()
        made.append((ctx, win))
        if wait:
            qtbot.waitUntil(lambda: ctx.engine_state is State.READY and ctx.log is not None, timeout=WAIT_MS)
        return ctx, win

    yield make
    for ctx, win in made:
        win.close()
        ctx.close()


@pytest.fixture
def fake_window(qtbot, paths, tmp_path):
    """A whole window at 1024x700 over a fake engine (``tests.fakes.FakeEngine``: no model file, fast)."""
    from app.qt.app_context import AppContext
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState
    from tests.fakes import FakeEngine

    made = []

    def make(engine=None, **config):
        ctx = AppContext(paths, qt_config(tmp_path, **config), engine=engine or FakeEngine())
        win = MainWindow(ctx, UiState(tmp_path / "ui"))
        qtbot.addWidget(win)
        ctx.start()
        win.resize(1024, 700)
        win.show()
        qtbot.waitUntil(lambda: ctx.log is not None, timeout=WAIT_MS)
        made.append((ctx, win))
        return ctx, win

    yield make
    for ctx, win in made:
        win.close()
        ctx.close()


@pytest.fixture(scope="session")
def sample_note() -> str:
    from resources import load_sample

    return load_sample("pneumonia").text


# A second, real model for Compare and import: a tiny LLaMA GGUF converted in the session (about a second).
from tests.fixtures_llama import tiny_llama_gguf  # noqa: E402, F401


def ask_and_wait(qtbot, tab, note: str, task: str, instruction: str):
    """Ask on the Ask screen and return the single ScreenOutcome."""
    tab.editor.setPlainText(note)
    tab.set_task(task)
    tab.instruction.setPlainText(instruction)
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        assert tab.ask() is not None
    [outcome] = done.args[0]
    return outcome


def choose_rater(qtbot, ctx, chooser, name: str) -> None:
    """Add ``name`` to the log's rater list and rate as them (what Settings' Add rater does); wait until
    ``chooser`` (a ``RaterChooser``) shows it."""
    ctx.log.add_rater(name)
    ctx.raters_changed.emit()
    ctx.set_rater(name)
    qtbot.waitUntil(lambda: chooser.name == name, timeout=WAIT_MS)


def import_model(qtbot, ctx, models, path, **kw) -> None:
    """Import ``path`` through the Models screen (``kw``: ``import_file``'s choices) and wait until it is done."""
    with qtbot.waitSignal(ctx.models_changed, timeout=WAIT_MS):
        assert models.import_file(path, **kw) is not None
    qtbot.waitUntil(lambda: models.busy is None, timeout=WAIT_MS)


def ask_and_stop(qtbot, tab, note: str, task: str, stop: Callable[[], None], after_tokens: int = 2):
    """Ask ``task``'s instruction about ``note``, call ``stop`` once ``after_tokens`` pieces have streamed, and
    return the single ScreenOutcome (the run is stopped mid-answer, not before it started)."""
    tab.editor.setPlainText(note)
    tab.set_task(task)
    tokens: list[str] = []
    with qtbot.waitSignal(tab.run_finished, timeout=WAIT_MS) as done:
        started = tab.ask()
        started.signals.token.connect(tokens.append)
        qtbot.waitUntil(lambda: len(tokens) >= after_tokens, timeout=WAIT_MS)
        stop()
    [outcome] = done.args[0]
    return outcome


def answer_next_dialog(button) -> list[str]:
    """Click ``button`` on the next modal question; returns its text, so the test sees what was asked."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    seen: list[str] = []

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)  # not open yet: look again from the event loop the dialog runs
            return
        seen.append(box.text())
        box.button(button).click()

    QTimer.singleShot(0, click)
    return seen
