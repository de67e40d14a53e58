"""The README's Statistics screen picture for a study (coordinator view):
``python -m tools.screenshot_study_stats [OUT.png]``.

A study of 12 questions about the three synthetic sample notes, answered by two arms (logged answers written
here, no model: the picture is about the statistics), is rated by three raters with overlap 2 and a
2-item calibration subset, with scripted scores that disagree now and then; one disagreement is adjudicated.
The Statistics screen of the main window shows the study at 1024x700 with a disagreement chosen for
adjudication (``…-adjudication.png``: the same page scrolled down to the disagreements). Runs in a temporary
ASCLEPIUS_HOME under the offscreen platform unless DISPLAY is set (``xvfb-run -a``); the window alone is
grabbed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from datetime import UTC, datetime

from tools.screenshot_study import QUESTIONS, settle, start, window_with_log

RATERS = ("dr_lee", "dr_okafor", "dr_silva")
ARMS = ("asclepius-7b Q4_K_M", "asclepius-7b Q8_0")
ANSWERS = (
    "Ceftriaxone 1 g IV daily and azithromycin 500 mg daily, then oral amoxicillin-clavulanate to complete 7 days.",
    "Azithromycin and levofloxacin for 10 days.",
)


def _model(label: str):  # type: ignore[no-untyped-def]
    from app.core.types import ModelInfo

    sha = hashlib.sha256(label.encode()).hexdigest()
    return ModelInfo(
        f"/models/{label}.gguf", f"{label}.gguf", sha, 1, "llama", label, 4096, label[-6:], None, "asclepius"
    )


def _answer(log, pending, model, text: str) -> None:  # type: ignore[no-untyped-def]
    from app.core.types import AnswerClock, AskRequest, FinishReason, RunResult

    req = AskRequest(pending.note, pending.task, pending.instruction)
    clock = AnswerClock(datetime.now(UTC), 0.0, 0.4, 2.0, 24 if text else 0)
    reason = FinishReason.STOP if text else FinishReason.LENGTH
    result = RunResult.of_answer(
        req, model, task=req.task, instruction=req.instruction, answer=text, finish_reason=reason,
        prompt_style="asclepius@1", clock=clock, engine="screenshot", n_ctx=4096, n_threads=2, prompt_tokens=900,
        reused_tokens=0,
    )  # fmt: skip
    log.link_study_answer(pending.uid, log.log_run(req, model, result))


def score(rater: int, answer: int) -> int:
    """Scripted: mostly close to the arm's quality, one rater now and then far off (the disagreements)."""
    base = 4 if answer % 2 == 0 else 2
    off = (answer * 7 + rater * 3) % 11
    return max(1, min(4, base + (-2 if off == 0 else 1 if off in (4, 5) else -1 if off == 7 else 0)))


def make_study(log, items: int = 12, name: str = "pneumonia-pilot") -> None:  # type: ignore[no-untyped-def]
    """``items`` questions x the two arms, rated by the three raters (the last two are not done yet)."""
    from app.store.studies import NewStudy, NewStudyArm, NewStudyItem
    from resources import load_sample
    from resources.samples import list_samples

    notes = [load_sample(sample).text for sample in list_samples()]
    rows = tuple(
        NewStudyItem(f"item-{i:02d}", notes[i % len(notes)], *QUESTIONS[i % len(QUESTIONS)]) for i in range(items)
    )
    models = [_model(a) for a in ARMS]
    arms = tuple(NewStudyArm(a, m.sha256) for a, m in zip(ARMS, models, strict=True))
    spec = NewStudy(name, rows, arms, RATERS, 2, 2 if items < 50 else 10, 11, adjudicators=("dr_chen",))
    log.create_study(spec)
    for n, p in enumerate(log.pending_study_answers(spec.name)):
        arm = ARMS.index(p.arm)
        _answer(log, p, models[arm], "" if n == 9 else ANSWERS[arm])
    for ri, rater in enumerate(RATERS):
        packet = log.packet_rows(spec.name, rater)
        for j, row in enumerate(packet[: len(packet) - 2 * ri]):  # the last rater is still rating
            s = 1 if row["failure"] else score(ri, j)
            log.rate_study_answer(spec.name, rater, row["answer_uid"], s, hallucination=s == 1)


def main(argv: list[str] | None = None) -> int:
    out, home = start(argv, "docs/screenshots/statistics-study.png")
    from app.store.agreement import study_stats

    app, ctx, win = window_with_log(home)
    make_study(ctx.log)
    first = study_stats(ctx.log.study_data("pneumonia-pilot")).disagreements[0]
    ctx.log.adjudicate("pneumonia-pilot", first.answer, "dr_chen", 3, "the note gives 7 days in total")
    tab = win.stats_tab
    win.tabs.setCurrentWidget(tab)
    shown: list[object] = []
    tab.study_view.computed.connect(shown.append)
    while tab.source.count() < 2:
        app.processEvents()
    tab.source.setCurrentIndex(1)
    deadline = time.monotonic() + 60
    while not shown and time.monotonic() < deadline:
        app.processEvents()
    view = tab.study_view
    view.disagree.selectRow(min(1, view.disagree.rowCount() - 1))
    view.adjudication.score.setCurrentIndex(1)
    view.adjudication.reason.setText("both arms miss the oral step-down")
    settle(app)
    out.parent.mkdir(parents=True, exist_ok=True)
    win.grab().save(str(out))
    print(out, f"window {win.width()}x{win.height()}")
    # The same page scrolled to the disagreements and the adjudication of the one chosen.
    tab.pages.currentWidget().ensureWidgetVisible(view.status, 0, 8)
    settle(app)
    lower = out.with_name(f"{out.stem}-adjudication{out.suffix}")
    win.grab().save(str(lower))
    print(lower)
    ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
