"""``asclepius ground``: check an answer made anywhere against its note (no model, no log).

The note and the answer are read by the rules ``ask`` reads a note by (``app.core.notes``: a regular
file, UTF-8, not binary, at most 200,000 characters, not empty; bad input is exit 3). Offsets index the
texts as read and validated: line endings normalised to ``\\n`` and outer whitespace removed, which is
also the note text the app shows and logs. The check is ``app.service.ground``, the one every front end
uses. A completed check exits 0 whatever it found: a flagged claim is a finding, not an error (scripts
read ``--json``: ``partly``, ``not_found``, ``omissions``).

``report_lines`` is the plain-text form of a report shared with ``ask`` and ``log show``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from app.core.config import Paths, load_config
from app.core.errors import UsageError
from app.core.grounding import Claim, ClaimStatus, GroundingReport, describe_summary
from app.core.notes import read_note_file
from app.service import SenseSource, ground
from resources import get_task

STATUS_LABEL = {
    ClaimStatus.SUPPORTED: "supported",
    ClaimStatus.PARTLY: "partly supported",
    ClaimStatus.NOT_FOUND: "not found",
    ClaimStatus.UNCHECKED: "not checked",
}


def _spans(spans: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in spans)


def claim_lines(c: Claim, parts: bool = True) -> list[str]:
    """One claim: status, text, offsets and reason; with ``parts``, each part on its own line."""
    where = f"answer {c.answer_start}-{c.answer_end}" + (f", note {_spans([c.note_unit])}" if c.note_unit else "")
    head = f"[{STATUS_LABEL[c.status]}] {c.text} ({where})" + (f": {c.reason}" if c.reason else "")
    out = [head]
    for p in c.parts if parts else ():
        state = "found" if p.found else "missing"
        if not p.found and p.belongs_to:
            state += f" (with {p.belongs_to} in the note)"
        at = f"; note {_spans(p.note_spans)}" if p.note_spans else ""
        out.append(f"    {p.role}: {p.text} - {state} (answer {p.answer_start}-{p.answer_end}{at})")
    return out


def report_lines(report: GroundingReport, flagged_only: bool = False) -> list[str]:
    """The report in lines of plain text: claims (flagged only: partly and not found, parts left out),
    items, possible omissions and what was not done. The summary line is ``report.headline()``."""
    out: list[str] = []
    for c in report.claims:
        if not flagged_only:
            out += claim_lines(c)
        elif c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND):
            out += claim_lines(c, parts=False)
    for i in report.items if not flagged_only else report.unaligned:
        sense = f", {i.sense} sense of {i.abbreviation}" if i.sense else ""
        where = f"note {_spans(i.note_spans)}" if i.note_spans else "not in the note"
        out.append(f"[item, {i.match}{sense}] {i.text} (answer {i.answer_start}-{i.answer_end}; {where})")
    for o in report.omissions:
        out.append(f"[possible omission] {o.text} (a {o.kind} in the note at {o.note_start}-{o.note_end})")
    out += [f"[note] {n}" for n in report.notes]
    return out


def _task_name(task: str | None) -> str | None:
    if task is None:
        return None
    try:
        return get_task(task).name
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def _senses(folder: str | None) -> SenseSource:
    """``--senses DIR`` (refused now when it cannot be read: the user asked for it), else the configured
    folder (read as the app reads it: a problem becomes a note in the report)."""
    if folder is None:
        try:
            return SenseSource(load_config(Paths.default()).abbreviation_senses)
        except ValueError as exc:  # a damaged config: the same refusal as every command that reads it
            raise UsageError(str(exc)) from None
    source = SenseSource(folder)
    _, problem = source.get()
    if problem:
        raise UsageError(problem)
    return source


def cmd_ground(args: argparse.Namespace) -> int:
    task = _task_name(args.task)
    note = read_note_file(args.note)
    answer = read_note_file(args.answer, kind="answer")
    report = ground(answer, note, None, task, args.instruction or "", _senses(args.senses))
    if args.json:
        print(json.dumps(report.summary(), indent=2))
        return 0
    for line in report_lines(report):
        print(line)
    print(f"-- grounding: {describe_summary(report.summary())}")
    return 0


def register(subparsers: Any) -> None:
    g = subparsers.add_parser(
        "ground", help="check an answer made anywhere against its note, claim by claim (no model, no log)"
    )
    g.add_argument("--note", required=True, help="the note file the answer is about")
    g.add_argument("--answer", required=True, help="the answer file to check")
    g.add_argument("--task", help="task name or slug: the extraction tasks also align each item to the note")
    g.add_argument("--instruction", help='the instruction (e.g. "list every medication": omissions are reported)')
    g.add_argument("--senses", help="folder of abbreviation sense inventories (default: the Settings value)")
    g.add_argument("--json", action="store_true", help="print the stored form of the report (schema 2) as JSON")
    g.set_defaults(func=cmd_ground)
