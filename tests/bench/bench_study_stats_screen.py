"""The Statistics screen's study page: how long from choosing a study to its numbers on screen, and how long
the GUI thread is held while they are put on screen (not collected by pytest; run it by hand).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_study_stats_screen.py [--items 100] [--repeat 5]

A study of ``--items`` questions x 2 arms, 3 raters, k = 2, 10 calibration items (scripted ratings, logged
answers, no model) is written to a temporary log with the store API (``tools/screenshot_study_stats.py``).
Then, median of ``--repeat``: the worker's part (``log.study_data`` + ``study_stats``, bootstrap intervals
included) and the GUI thread's part (filling the tables), each timed; the second is the one that could make the
window stutter.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["ASCLEPIUS_HOME"] = tempfile.mkdtemp(prefix="asclepius-bench-")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig, Paths
    from app.qt.app_context import AppContext
    from app.qt.stats_tab import StatsTab
    from app.qt.study_stats_view import compute_study
    from tools.screenshot_study_stats import make_study

    app = QApplication(sys.argv[:1])
    ctx = AppContext(Paths.default(), AppConfig())
    ctx.open_log()
    while ctx.log is None:
        if ctx.log_error:
            raise SystemExit(ctx.log_error)
        app.processEvents()
    make_study(ctx.log, items=args.items, name="bench")
    tab = StatsTab(ctx)
    tab.resize(1024, 700)
    tab.show()
    worker, gui = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = compute_study(ctx.log, "bench")
        worker.append(time.perf_counter() - t)
        t = time.perf_counter()
        tab.study_view._show(result)
        app.processEvents()  # the layout and paint that follow
        gui.append(time.perf_counter() - t)
    st = result.stats
    print(f"machine: {platform.machine()}, {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    print(f"study: {args.items} items x 2 arms, 3 raters, k = 2: {st.ratings} ratings, {len(st.disagreements)} "
          f"disagreements")  # fmt: skip
    print(f"worker (study_data + study_stats): {statistics.median(worker) * 1000:.0f} ms (median of {args.repeat})")
    print(f"GUI thread (tables filled, laid out): {statistics.median(gui) * 1000:.1f} ms (median of {args.repeat})")
    ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
