"""Bad-input rows for ``asclepius eval`` (issue #24): a suite that does not exist, a suite file with an unknown
scorer or a missing field, gold data that is missing or malformed, answers files with missing or duplicate
ids. Each is a usage or data error naming the file and the problem; nothing is created."""

from __future__ import annotations

import json

from tests.reliability.cases import USAGE, Case, _w

_PQA = json.dumps({"1": {"QUESTION": "Is it?", "CONTEXTS": ["A note."], "final_decision": "yes"}})
_SUITE_BAD_SCORER = json.dumps(
    {"name": "x", "task": "qa", "loader": "pubmedqa", "instructions": ["{question}"], "scorer": "bleu", "seed": 0}
)
_SUITE_NO_LOADER = json.dumps({"name": "x", "task": "qa", "instructions": ["{question}"], "scorer": "decision"})

_ALWAYS: tuple[Case, ...] = (
    Case(
        "eval-run-stray-remote-flag",
        ("eval", "run", "pubmedqa", "--data", "{tmp}/d.json", "--concurrency", "2"),
        USAGE,
        "only apply with --endpoint",
    ),
    Case(
        "eval-run-parallel-zero",
        ("eval", "run", "pubmedqa", "--data", "{tmp}/d.json", "--parallel", "0"),
        USAGE,
        "parallel",
    ),
)

_WITH_CORE: tuple[Case, ...] = (
    Case(
        "eval-suite-unknown",
        ("eval", "items", "nosuch", "--data", "{tmp}/d.json"),
        USAGE,
        "nosuch",
        setup=(_w("d.json", _PQA),),
    ),
    Case(
        "eval-suite-bad-scorer",
        ("eval", "items", "{tmp}/s.json", "--data", "{tmp}/d.json"),
        USAGE,
        "bleu",
        setup=(_w("s.json", _SUITE_BAD_SCORER), _w("d.json", _PQA)),
    ),
    Case(
        "eval-suite-missing-field",
        ("eval", "items", "{tmp}/s.json", "--data", "{tmp}/d.json"),
        USAGE,
        "loader",
        setup=(_w("s.json", _SUITE_NO_LOADER), _w("d.json", _PQA)),
    ),
    Case(
        "eval-answers-duplicate-id",
        ("eval", "score", "pubmedqa", "--data", "{tmp}/d.json", "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "line 2",
        setup=(_w("d.json", _PQA), _w("a.jsonl", '{"id": "1", "answer": "yes"}\n{"id": "1", "answer": "no"}\n')),
    ),
    Case(
        "eval-answers-missing-id",
        ("eval", "score", "pubmedqa", "--data", "{tmp}/d.json", "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "id",
        setup=(_w("d.json", _PQA), _w("a.jsonl", '{"answer": "yes"}\n')),
    ),
    Case(
        "eval-score-no-answer-for-any-item",
        ("eval", "score", "pubmedqa", "--data", "{tmp}/d.json", "--answers", "{tmp}/a.jsonl"),
        USAGE,
        "no answer",
        setup=(_w("d.json", _PQA), _w("a.jsonl", '{"id": "999", "answer": "yes"}\n')),
    ),
)

CASES: tuple[Case, ...] = _ALWAYS + _WITH_CORE
