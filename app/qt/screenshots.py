"""Render every screen with a sample note and real answers: ``python -m app.qt.screenshots DIR``.

Meant to run under a real X server with a window manager (``tools/screenshots.sh`` starts Xvfb and
openbox at 1024x700, 1440x900 and 2880x1800 with ``QT_SCALE_FACTOR=2``): the window is maximized by the window
manager and the whole screen is captured from the X server, frame and all, so what is off-screen or cut is
visible in the picture. Under the offscreen platform it falls back to grabbing the window at 1024x700.

Runs in a temporary ASCLEPIUS_HOME (the user's own data is never touched) on the demo model. The Compare
screen needs a second model: a tiny random-weight LLaMA GGUF is built with the test helpers when the
``quantize`` extra is installed (its answer is gibberish, which is what a blind comparison should expose).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SIZE = (1024, 700)
"""The window size under the offscreen platform (under X the window manager maximizes it)."""


def wait_until(app, cond: Callable[[], bool], timeout_s: float = 1800.0, what: str = "") -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what or cond}")
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path, nargs="?", default=Path("docs/screenshots"))
    ap.add_argument("--suffix", default="", help="added to each file name, e.g. -2x")
    ap.add_argument("--only", default="", help="comma-separated screen names to save (default: all)")
    ap.add_argument("--font-size", type=int, default=None, help="the Settings font size in points (e.g. 14)")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="asclepius-shots-"))
    os.environ["ASCLEPIUS_HOME"] = str(home)
    from app.core import netguard

    netguard.install(block=True)
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    only = {n for n in args.only.split(",") if n}
    shoot(app, home, args.out, suffix=args.suffix, only=only, font_size=args.font_size)
    return 0


def _second_model(home: Path) -> Path | None:
    try:
        from tests.fixtures_llama import build_tiny_llama_gguf
    except ImportError:
        return None
    return build_tiny_llama_gguf(home / "tiny")


def shoot(
    app, home: Path, out: Path, suffix: str = "", only: set[str] | None = None, font_size: int | None = None
) -> list[Path]:
    from dataclasses import replace

    from app.core.config import AppConfig, GenerationDefaults, Paths
    from app.qt.app_context import AppContext, State
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState
    from resources import load_sample

    out.mkdir(parents=True, exist_ok=True)
    paths = Paths.default()
    cfg = replace(AppConfig(), generation=GenerationDefaults(max_tokens=64))
    if font_size is not None:
        cfg = replace(cfg, font_size=font_size)
    ctx = AppContext(paths, cfg)
    win = MainWindow(ctx, UiState(home / "ui"))
    offscreen = app.platformName() == "offscreen"
    ctx.start()
    if offscreen:
        win.resize(*SIZE)
        win.show()
    else:
        win.showMaximized()
    wait_until(app, lambda: ctx.engine_state is State.READY and ctx.log is not None, what="the model")
    saved: list[Path] = []
    screen = win.screen()

    def snap(name: str) -> None:
        if only and name not in only:
            return
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        p = out / f"{name}{suffix}.png"
        if offscreen:
            if (win.width(), win.height()) != SIZE:
                raise RuntimeError(f"the window is {win.width()}x{win.height()}, not {SIZE}")
            win.grab().save(str(p))
        else:
            # The whole screen from the X server: the window manager's frame and anything off-screen show.
            screen.grabWindow(0).save(str(p))
        saved.append(p)
        print(
            p,
            f"window {win.width()}x{win.height()}, minimum {win.minimumSizeHint().width()}x"
            f"{win.minimumSizeHint().height()}, screen {screen.size().width()}x{screen.size().height()}",
        )

    tab = win.ask_tab
    note = load_sample("pneumonia").text

    def ask(task: str, instruction: str):
        tab.editor.setPlainText(note)
        tab.set_task(task)
        tab.instruction.setPlainText(instruction)
        got = []
        tab.run_finished.connect(got.append)
        tab.ask()
        wait_until(app, lambda: bool(got), what="an answer")
        tab.run_finished.disconnect(got.append)
        return got[0][0]

    first = ask("summary", "Summarize this discharge summary in three sentences.")
    ctx.log.add_rating(first.run_id, "dr-lee", 2, comment="misses the AKI")
    ctx.log.add_rating(first.run_id, "dr-osei", 3)
    second = ask("temporal", "When was the patient admitted and when were they discharged?")
    ctx.log.add_rating(second.run_id, "dr-lee", 4)
    ctx.log.add_rating(second.run_id, "dr-osei", 4)
    o = ask("qa", "What was the patient's creatinine on admission?")
    ctx.log.add_rater("dr-lee")
    ctx.raters_changed.emit()
    ctx.set_rater("dr-lee")
    wait_until(app, lambda: tab.rate.rater_name == "dr-lee", what="the rater")
    tab.rate.scores.button(3).click()
    tab.rate.comment.setText("correct value; baseline not asked for")
    tab.rate.flush()
    wait_until(app, lambda: bool(ctx.log.current_ratings(o.run_id)), what="the rating")
    wait_until(app, lambda: tab.meter.budget is not None, what="the context meter")
    win.tabs.setCurrentWidget(tab)
    snap("ask")

    # A note far too long for the context: the meter turns red with the choices.
    tab.editor.setPlainText((note + "\n") * 60)
    wait_until(app, lambda: tab.meter.budget is not None and not tab.meter.budget.fits, what="the long-note meter")
    tab.ask()
    wait_until(app, lambda: tab.banner.kind == "error" and tab.task is None, what="the refusal")
    snap("ask-note-too-long")
    tab.banner.hide()

    # A long note while it is processed: tokens, percent and elapsed time (llama.cpp reports per batch).
    tab.editor.setPlainText((note + "\n") * 5)
    wait_until(app, lambda: tab.meter.budget is not None and tab.meter.budget.fits, what="the meter")
    got: list = []
    tab.run_finished.connect(got.append)
    tab.ask()
    wait_until(app, lambda: "tokens (" in tab.metrics.text() or bool(got), what="prompt progress")
    if not got:
        snap("ask-progress")
    wait_until(app, lambda: bool(got), what="the long note's answer")
    tab.run_finished.disconnect(got.append)

    # Run all tasks: one pane per task, streaming side by side.
    tab.editor.setPlainText(note)
    got = []
    tab.run_finished.connect(got.append)
    tab.run_all()
    wait_until(app, lambda: bool(got), what="run all tasks")
    tab.run_finished.disconnect(got.append)
    tab.run_all_panel.panes[1].open_btn.click()  # rating one pane beside the grid
    wait_until(app, lambda: tab.rate.run_id is not None and not tab.rate_area.isHidden(), what="the pane's rating")
    snap("ask-run-all")
    tab.show_single()

    tiny = _second_model(home)
    if tiny is not None:
        task = win.models_tab.import_file(tiny)
        wait_until(app, lambda: task.finished_flag.is_set() and win.models_tab.busy is None, what="the import")
    win.tabs.setCurrentWidget(win.models_tab)
    wait_until(app, lambda: all(m.path in win.models_tab._ram for m in win.models_tab.models), what="RAM")
    win.models_tab.table.selectRow(0)
    snap("models")

    cmp_ = win.compare_tab
    win.tabs.setCurrentWidget(cmp_)
    if tiny is not None:
        cmp_.model_a.setCurrentIndex(cmp_.model_a.findData(ctx.model.sha256))
        cmp_.model_b.setCurrentIndex(1 - cmp_.model_a.currentIndex())
        tab.editor.setPlainText(note[:900])
        cmp_.run()
        wait_until(app, lambda: cmp_.pair is not None and cmp_.task is None, what="both answers")
        snap("compare-blind")
        side = "A" if cmp_.pair[0].model.is_demo else "B"
        for box, o in zip(cmp_.scores, cmp_.pair, strict=True):
            box.setCurrentIndex(box.findData(3 if o.model.is_demo else 1))
        cmp_.vote(side)
        wait_until(app, lambda: "Saved" in cmp_.reveal.text(), what="the vote")
        snap("compare-revealed")
        tab.editor.setPlainText(note)
    else:
        snap("compare")

    ctx.log.name_note(first.result.note_sha256, "Pneumonia, sample note")
    ctx.runs_changed.emit()
    win.tabs.setCurrentWidget(win.history_tab)
    wait_until(app, lambda: win.history_tab.model.rowCount() > 0, what="history rows")
    win.history_tab.select_row(0)
    snap("history")
    win.tabs.setCurrentWidget(win.stats_tab)
    wait_until(app, lambda: win.stats_tab.task is None and bool(win.stats_tab.chart.means), what="statistics")
    snap("statistics")
    win.tabs.setCurrentWidget(win.settings_tab)
    snap("settings")
    win.close()
    ctx.close()
    return saved


if __name__ == "__main__":
    raise SystemExit(main())
