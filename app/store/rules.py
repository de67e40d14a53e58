"""What may be rated: the one rule every front end (Ask screen, History, Compare, `log import-ratings`,
`log stats`) asks, so the GUI, the CLI and the importers refuse the same runs.

A run ends ``finished`` whatever happened; its ``finish_reason`` says how (``stop``, ``length``,
``cancelled``, ``error``). Only an answer the model completed, or cut at the length limit (shown as
incomplete), is rated: a stopped or failed attempt has nothing a rater could judge, and an empty answer
neither.

The rule has two forms that must agree: :func:`why_not_rateable` on one run's values (the Qt screens,
``EvalLog.add_rating``, the import) and :func:`rateable_clause` in SQL (``log stats`` leaves out ratings
of runs it rejects, which an older log may hold).

In a study the rule is wider (:func:`why_not_rateable_in_study`): every ended run is rated, failures
included, and :func:`study_failure` says what the rater is told about an incomplete one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_

from app.store.models import Run

RATEABLE_FINISH = ("stop", "length")
"""Finish reasons of a run that produced an answer (a batch item with one is done, too)."""

WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What ``str.strip()`` removes (every character for which ``str.isspace()`` is true), spelled out for
SQLite's ``trim``, which by default removes plain spaces only."""


def why_not_rateable(status: str | None, finish_reason: str | None, answer: str | None) -> str | None:
    """Why a run cannot be rated, as a phrase for "Not rateable: …"; None when it can."""
    if status != "finished":
        return f"this run {status or 'has not started'}" if status != "started" else "this run has not finished"
    if finish_reason == "cancelled":
        return "this run was stopped before the answer ended"
    if finish_reason == "error":
        return "this run failed"
    if finish_reason not in RATEABLE_FINISH:
        return f"this run ended with finish reason {finish_reason!r}"
    if not (answer or "").strip():
        return "the answer is empty"
    return None


def rateable(status: str | None, finish_reason: str | None, answer: str | None) -> bool:
    return why_not_rateable(status, finish_reason, answer) is None


def not_rateable_message(run: object, why: str) -> str:
    """The store's refusal of a rating, naming the run (its id or uuid: no patient data)."""
    return f"run {run} cannot be rated: {why}; only finished runs with an answer (stop or length) can be rated"


def rateable_clause() -> Any:
    """:func:`rateable` as a SQL condition on ``runs``, true or false, never NULL, so that its negation
    (``~rateable_clause()``) selects exactly the runs that cannot be rated."""
    return and_(
        Run.status == "finished",
        func.coalesce(Run.finish_reason, "").in_(RATEABLE_FINISH),
        func.coalesce(func.trim(Run.answer, WHITESPACE), "") != "",
    )


def answered_or_running() -> Any:
    """Runs still going or ended with an answer (finish reason stop or length), as a SQL condition: what a
    batch claim counts as holding its item, and what History lists when failed attempts are hidden."""
    return or_(Run.status == "started", and_(Run.status == "finished", Run.finish_reason.in_(RATEABLE_FINISH)))


# -- in a study ------------------------------------------------------------------------------------------
# A study measures the arms, failures included: an arm that errored, was stopped, ran into the length limit
# or answered nothing is shown to its raters as such and rated (typically 1, "unacceptable"), so a model
# that fails often cannot look better by having its failures drop out of the means. Only a run that has
# not ended (still running, or its process died) has nothing to rate yet.


def why_not_rateable_in_study(status: str | None, finish_reason: str | None, answer: str | None) -> str | None:
    """Why a study answer's run cannot be rated yet, as a phrase; None when it can (any ended run)."""
    if status is None:
        return "its answer has not been generated yet"
    if status != "finished":
        return "its run has not finished" if status == "started" else f"its run was {status}"
    return None


def study_failure(finish_reason: str | None, answer: str | None) -> str | None:
    """What a rater is told about an answer that is not a complete one (None: a complete answer)."""
    if finish_reason == "error":
        return "the model failed to answer (error)"
    if finish_reason == "cancelled":
        return "the answer was stopped before it ended"
    if not (answer or "").strip():
        return "the model's answer is empty"
    if finish_reason == "length":
        return "the answer was cut at the length limit (incomplete)"
    if finish_reason not in RATEABLE_FINISH:
        return f"the run ended with finish reason {finish_reason!r}"
    return None


def study_failed(finish_reason: str | None, answer: str | None) -> bool:
    """No usable answer at all (error, stopped, empty): the ``failed`` mark of the study's statistics. An
    answer cut at the length limit is incomplete but has text to judge, so it is not counted as failed."""
    if finish_reason == "length" and (answer or "").strip():
        return False
    return study_failure(finish_reason, answer) is not None
