"""Study screen benchmark: a rating key pressed to the rating saved and the next item shown.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_study_screen.py [--items 50]
    xvfb-run -a .venv/bin/python tests/bench/bench_study_screen.py          # under a real X server

A sealed packet of ``--items`` answers over the sample notes (``tools.screenshot_study.demo_packet``) is opened
in the Study screen (a fake engine: no model is needed); then for each item a key 1-4 is sent to the focused
widget and the clock stops when the screen emits ``item_shown`` for the next item, i.e. after the rating was
written to the log (its own transaction, in a worker) and the next note and answer are on screen. The target
is a median under 100 ms. Also reported: opening the packet (scrypt key derivation + JSON + the log read).
Results go to stdout as JSON; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=50)
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="asclepius-bench-"))
    os.environ["ASCLEPIUS_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig, Paths
    from app.core.packets import write_packet
    from app.qt.app_context import AppContext
    from app.qt.study_tab import StudyTab
    from tests.fakes import FakeEngine
    from tools.screenshot_study import PASSPHRASE, _ensure_table, demo_packet

    app = QApplication(sys.argv[:1])
    ctx = AppContext(Paths.default(), AppConfig(), engine=FakeEngine())
    ctx.start()
    while ctx.log is None:
        if ctx.log_error:
            raise SystemExit(f"the log did not open: {ctx.log_error}")
        app.processEvents()
    _ensure_table(ctx.log)
    tab = StudyTab(ctx)
    tab.resize(1024, 700)
    tab.show()
    packet = home / "bench.packet"
    write_packet(packet, demo_packet(args.items + 1), PASSPHRASE)
    shown: list[int] = []
    tab.item_shown.connect(shown.append)

    def wait_shown() -> None:
        while not shown:
            app.processEvents()
        shown.clear()

    t0 = time.perf_counter()
    tab.open_packet(packet, PASSPHRASE)
    wait_shown()
    open_ms = (time.perf_counter() - t0) * 1000
    tab.answer.setFocus()
    times = []
    for i in range(args.items):
        key = (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4)[i % 4]
        t0 = time.perf_counter()
        QTest.keyClick(QApplication.focusWidget(), key)
        wait_shown()
        times.append((time.perf_counter() - t0) * 1000)
    saved = len(ctx.log.packet_responses(demo_packet(1).study_uuid, "dr_lee"))
    ctx.close()
    assert saved == args.items, f"{saved} ratings saved, not {args.items}"
    out = {
        "platform": app.platformName(),
        "items": args.items,
        "keypress_to_next_ms": {
            "median": round(statistics.median(times), 1),
            "p90": round(sorted(times)[int(0.9 * len(times)) - 1], 1),
            "max": round(max(times), 1),
        },
        "open_packet_ms": round(open_ms, 1),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
