"""What may be rated: the one rule every front end (Ask screen, History, Compare, `log import-ratings`,
`log stats`) asks, so the GUI, the CLI and the importers refuse the same runs.

A run ends ``finished`` whatever happened; its ``finish_reason`` says how (``stop``, ``length``,
``cancelled``, ``error``). Only an answer the model completed, or cut at the length limit (shown as
incomplete), is rated: a stopped or failed attempt has nothing a rater could judge, and an empty answer
neither.
"""

from __future__ import annotations

RATEABLE_FINISH = ("stop", "length")


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
