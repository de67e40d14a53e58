"""A rater's packet ratings on their own workstation: saved whole per rating, read back to resume and export."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.core.errors import UsageError
from app.core.packets import ResponseRow
from app.store import EvalLog
from app.store.models import PacketResponse

STUDY = "11111111-2222-3333-4444-555555555555"


def with_table(log: EvalLog) -> EvalLog:
    # Until revision 0005 (the "core" slice) creates it, the table comes from the models.
    PacketResponse.__table__.create(log.engine, checkfirst=True)
    return log


def row(uid: str, score: int, at: str = "2026-12-01T10:00:00+00:00", **kw) -> ResponseRow:
    return ResponseRow(uid, score, kw.get("hallucination", False), kw.get("comment"), kw.get("corrected"), at)


def test_save_replace_and_read_back(log: EvalLog) -> None:
    with_table(log)
    log.save_packet_response(STUDY, "dr_a", row("a1", 3, comment="fine"))
    log.save_packet_response(STUDY, "dr_a", row("a2", 1, hallucination=True))
    log.save_packet_response(STUDY, "dr_b", row("a1", 4))
    log.save_packet_response(STUDY, "dr_a", row("a1", 2, "2026-12-01T11:00:00+00:00", corrected="better"))
    mine = {r.answer_uid: r for r in log.packet_responses(STUDY, "dr_a")}
    assert set(mine) == {"a1", "a2"}
    assert (mine["a1"].score, mine["a1"].comment, mine["a1"].corrected_answer) == (2, None, "better")
    assert mine["a1"].rated_at == "2026-12-01T11:00:00.000000+00:00" and mine["a2"].hallucination is True
    assert [r.score for r in log.packet_responses(STUDY, "dr_b")] == [4]
    assert log.packet_responses("another", "dr_a") == []


@pytest.mark.parametrize("bad", [0, 5, True, "3"])
def test_a_score_outside_the_rubric_is_refused(log: EvalLog, bad: object) -> None:
    with_table(log)
    with pytest.raises(UsageError, match="score must be 1, 2, 3 or 4"):
        log.save_packet_response(STUDY, "dr_a", row("a1", bad))  # type: ignore[arg-type]
    assert log.packet_responses(STUDY, "dr_a") == []


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from app.core.packets import ResponseRow
    from app.store import EvalLog

    log = EvalLog.open(sys.argv[1])
    if sys.argv[2] == "kill":
        # The row is written into the open transaction, then the process dies before COMMIT (an app killed
        # mid-save): SQLite must roll the half-done transaction back when the log is next opened.
        @event.listens_for(Session, "after_flush")
        def die(session, ctx):
            os.kill(os.getpid(), signal.SIGKILL)
    log.save_packet_response(
        "S", "dr_a", ResponseRow(sys.argv[3], 2, True, "a long comment " * 200, "corrected " * 300,
        "2026-12-01T10:00:00+00:00"))
    print("saved")
    """
)


def test_an_app_killed_while_saving_leaves_the_whole_rating_or_none(log: EvalLog, db_path: Path) -> None:
    with_table(log)
    log.close()
    root = Path(__file__).resolve().parents[2]

    def run(mode: str, uid: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", KILLER, str(db_path), mode, uid]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=120)

    killed = run("kill", "a1")
    assert killed.returncode == -9 and "saved" not in killed.stdout
    done = run("save", "a2")
    assert done.returncode == 0, done.stderr
    reopened = EvalLog.open(db_path)
    try:
        rows = reopened.packet_responses("S", "dr_a")
    finally:
        reopened.close()
    assert [r.answer_uid for r in rows] == ["a2"]
    assert rows[0].comment == "a long comment " * 200 and rows[0].corrected_answer == "corrected " * 300
