"""``asclepius ground``: check an answer made anywhere against its note (no model, no log).

The note and the answer are read by the rules ``ask`` reads a note by (``app.core.notes``: a regular
file, UTF-8, not binary, at most 200,000 characters, not empty; bad input is exit 3). Offsets index the
texts as read and validated: line endings normalised to ``\\n`` and outer whitespace removed, which is
also the note text the app shows and logs. The check is ``app.service.ground``, the one every front end
uses. A completed check exits 0 whatever it found: a flagged claim is a finding, not an error (scripts
read ``--json``: ``partly``, ``not_found``, ``omissions``).

The lines are ``app.core.grounding.text.report_lines``, shared with ``ask``, ``log show`` and the copied
answer's provenance footer.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.core.config import Paths, load_config
from app.core.errors import UsageError
from app.core.grounding import describe_summary
from app.core.grounding.text import report_lines
from app.core.notes import read_note_file
from app.service import SenseSource, ground
from resources import get_task


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
