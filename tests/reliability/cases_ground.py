"""Bad-input rows for ``asclepius ground`` (issue #22): its note and answer files are read by the rules
``ask`` reads a note by (exit 3 for bad text, naming which file), and a bad task or senses folder is a
usage error. Nothing is written: the command keeps no log."""

from __future__ import annotations

from tests.reliability.cases import NOTE, USAGE, Case, _w

_GOOD_ANSWER = _w("a.txt", "Creatinine 1.4 mg/dL.")


def _note_case(id_: str, path: str, fragment: str, *setup: tuple) -> Case:
    return Case(f"ground-note-{id_}", ("ground", "--note", path, "--answer", "{tmp}/a.txt"), NOTE, fragment,
                setup=(_GOOD_ANSWER, *setup))  # fmt: skip


def _answer_case(id_: str, path: str, fragment: str, *setup: tuple) -> Case:
    return Case(f"ground-answer-{id_}", ("ground", "--note", "{note}", "--answer", path), NOTE, fragment,
                setup=setup)  # fmt: skip


CASES: tuple[Case, ...] = (
    _note_case("missing", "{tmp}/nope.txt", "note file not found"),
    _note_case("directory", "{tmp}", "is a directory"),
    _note_case("empty", "{tmp}/n.txt", "the note is empty", _w("n.txt", b" \n")),
    _note_case("binary", "{tmp}/n.bin", "not a plain-text note", _w("n.bin", b"\x00\x01\x02" * 100)),
    _note_case("huge", "{tmp}/n.txt", "over the", _w("n.txt", b"word " * 200_000)),
    _answer_case("missing", "{tmp}/nope.txt", "answer file not found"),
    _answer_case("directory", "{tmp}", "is a directory"),
    _answer_case("empty", "{tmp}/a.txt", "the answer is empty", _w("a.txt", "\u200b \n")),
    _answer_case("binary", "{tmp}/a.bin", "not a plain-text answer", _w("a.bin", b"\x00\x01\x02" * 100)),
    _answer_case("huge", "{tmp}/a.txt", "limit for one answer", _w("a.txt", b"word " * 200_000)),
    _answer_case("latin1", "{tmp}/a.txt", "save the answer as UTF-8", _w("a.txt", "Müller".encode("latin-1"))),
    Case(
        "ground-task-unknown",
        ("ground", "--note", "{note}", "--answer", "{tmp}/a.txt", "--task", "nosuch"),
        USAGE,
        "unknown task",
        setup=(_GOOD_ANSWER,),
    ),
)
