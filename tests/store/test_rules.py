"""The rateable rule (app/store/rules.py): its Python and SQL forms agree on every kind of run."""

from __future__ import annotations

import sys

import pytest
from sqlalchemy import select

from app.core.types import FinishReason
from app.store import EvalLog
from app.store.models import Run
from app.store.rules import WHITESPACE, rateable, rateable_clause, why_not_rateable
from tests.store.helpers import logged, model, request


def test_whitespace_is_what_str_strip_removes() -> None:
    assert set(WHITESPACE) == {c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()}


@pytest.mark.parametrize(
    ("status", "reason", "answer", "ok"),
    [
        ("finished", "stop", "amoxicillin", True),
        ("finished", "length", "amoxicillin 500 mg three", True),
        ("finished", "stop", "", False),
        ("finished", "stop", None, False),
        ("finished", "stop", " \u00a0\u3000\n", False),
        ("finished", "cancelled", "amoxi", False),
        ("finished", "error", None, False),
        ("started", None, None, False),
    ],
)
def test_rule_in_python(status: str, reason: str | None, answer: str | None, ok: bool) -> None:
    assert rateable(status, reason, answer) is ok
    assert (why_not_rateable(status, reason, answer) is None) is ok


def test_sql_clause_selects_exactly_the_rateable_runs(log: EvalLog) -> None:
    m = model()
    for answer, reason in [
        ("amoxicillin", FinishReason.STOP),
        ("amoxicillin 500", FinishReason.LENGTH),
        ("", FinishReason.STOP),
        (" \u00a0\u2003\n", FinishReason.STOP),
        ("amoxi", FinishReason.CANCELLED),
        ("amoxi", FinishReason.ERROR),
    ]:
        logged(log, request(instruction=f"{answer!r} {reason}"), m, answer=answer, reason=reason)
    failed = log.start_run(request(instruction="failed"), m)
    log.fail_run(failed, "crashed")
    log.start_run(request(instruction="running"), m)
    with log.read_session() as s:
        rows = s.execute(select(Run.id, Run.status, Run.finish_reason, Run.answer)).all()
        in_sql = set(s.scalars(select(Run.id).where(rateable_clause())))
        not_in_sql = set(s.scalars(select(Run.id).where(~rateable_clause())))
    in_python = {r.id for r in rows if rateable(r.status, r.finish_reason, r.answer)}
    assert in_sql == in_python and len(in_python) == 2
    assert not_in_sql == {r.id for r in rows} - in_python
