"""The bad-input table: every input here must be refused with its documented exit code and a clear message.

One row per input, as data: ``Case(id, argv, expect, fragment, setup)``. ``argv`` is what follows
``asclepius``; ``{tmp}`` is the case's own directory, ``{db}`` the ready log (``setup`` has ``LOG``),
``{note}`` a valid note file. ``setup`` steps are tuples run before the command (see ``STEPS`` in
test_bad_inputs.py). ``absent`` lists paths that must not exist afterwards (nothing created), ``hidden``
text that must not appear in the output (SQL, patient text). A new command gets its rows here, or in a
module ``cases_<topic>.py`` beside this one (its ``CASES`` tuple, and optionally ``STEPS`` for new setup
steps), which ``all_cases()`` collects. ``deadline_s`` runs a case in a subprocess that is killed after it.

Exit codes (app/core/errors.py): 2 usage, 3 bad note, 4 model problem, 6 evaluation log. Exit 1 ("unexpected")
is never an expected code: the suite's aim is 0 inputs exit 1, 0 accepted wrongly, 0 crashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

USAGE, NOTE, MODEL, LOG_ = 2, 3, 4, 6
LOG: tuple[Any, ...] = ("log",)
ASK = ("ask", "What medications?", "--task", "qa", "--no-log", "--note")


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: int
    fragment: str
    setup: tuple[tuple[Any, ...], ...] = ()
    absent: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    drop_root: bool = False
    """Permission cases: run in a subprocess without CAP_DAC_OVERRIDE (root ignores file modes)."""
    deadline_s: float | None = None
    """Inputs that once hung (a FIFO, an endless stream): run in a subprocess killed after this many seconds,
    so a hang fails the case instead of the suite."""
    note: str = field(default="", compare=False)


def _w(name: str, data: bytes | str) -> tuple[Any, ...]:
    return ("write", name, data)


BAD_RATINGS = (
    "run_id,rater,score,comment,rated_at\n"
    "1,dr a,3,fine,0001-01-01T00:00:00+14:00\n"  # out-of-range date once in UTC
    "99999999999999999999999,dr a,3,PATIENT-SECRET-COMMENT,\n"  # a run id too large for SQLite
    "1,dr b,9,x,\n"
    "1,dr c,4,'); DROP TABLE runs; --,\n"
)

CASES: tuple[Case, ...] = (
    # -- ask: numeric flags (issue 9.5, 9.10) -------------------------------------------------------
    Case("ask-threads-0", (*ASK, "{note}", "--threads", "0"), USAGE, "threads must be 1.."),
    Case("ask-threads-huge", (*ASK, "{note}", "--threads", "100000"), USAGE, "threads must be 1.."),
    Case("ask-threads-8192", (*ASK, "{note}", "--threads", "8192"), USAGE, "threads must be 1.."),
    Case("ask-threads-text", (*ASK, "{note}", "--threads", "four"), USAGE, "threads must be a whole number"),
    Case("ask-temp-nan", (*ASK, "{note}", "--temperature", "nan"), USAGE, "temperature must be a finite number"),
    Case("ask-temp-inf", (*ASK, "{note}", "--temperature", "inf"), USAGE, "temperature must be a finite number"),
    Case("ask-temp-negative", (*ASK, "{note}", "--temperature", "-1"), USAGE, "temperature must be"),
    Case("ask-max-tokens-0", (*ASK, "{note}", "--max-tokens", "0"), USAGE, "max tokens must be 1.."),
    Case("ask-max-tokens-huge", (*ASK, "{note}", "--max-tokens", "1000000000"), USAGE, "max tokens must be 1.."),
    Case("ask-seed-negative", (*ASK, "{note}", "--seed", "-1"), USAGE, "seed must be 0.."),
    Case("ask-seed-2^63", (*ASK, "{note}", "--seed", str(2**63)), USAGE, "seed must be 0.."),
    Case("ask-seed-2^32-1", (*ASK, "{note}", "--seed", str(2**32 - 1)), USAGE, "seed must be 0.."),
    Case(
        "ask-instruction-not-utf8",
        ("ask", "bad \udcff byte", "--task", "qa", "--note", "{note}"),
        USAGE,
        "not valid UTF-8",
    ),
    Case("ask-instruction-empty", ("ask", "  ", "--task", "qa", "--note", "{note}"), USAGE, "instruction is empty"),
    Case("ask-task-unknown", ("ask", "q?", "--task", "nosuch", "--note", "{note}"), USAGE, "nosuch"),
    Case("ask-prompt-style-unknown", (*ASK, "{note}", "--prompt-style", "nosuch"), USAGE, "unknown prompt style"),
    Case(
        "batch-prompt-style-unknown",
        ("batch", "{tmp}/in.csv", "--prompt-style", "nosuch", "--db", "{tmp}/b.db"),
        USAGE,
        "unknown prompt style",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    # -- ask: notes --------------------------------------------------------------------------------
    Case("ask-note-missing", (*ASK, "{tmp}/nope.txt"), NOTE, "note file not found"),
    Case("ask-note-directory", (*ASK, "{tmp}"), NOTE, "is a directory"),
    Case("ask-note-binary", (*ASK, "{tmp}/n.bin"), NOTE, "binary", setup=(_w("n.bin", b"\x00\x01\x02" * 100),)),
    Case("ask-note-empty", (*ASK, "{tmp}/n.txt"), NOTE, "empty", setup=(_w("n.txt", b"  \n"),)),
    Case(
        "ask-note-latin1",
        (*ASK, "{tmp}/n.txt"),
        NOTE,
        "not valid UTF-8",
        setup=(_w("n.txt", "Patient: Müller, 70 y".encode("latin-1")),),
    ),
    Case("ask-note-huge", (*ASK, "{tmp}/n.txt"), NOTE, "over the", setup=(_w("n.txt", b"word " * 200_000),)),
    Case(
        "ask-note-unreadable",
        (*ASK, "{tmp}/n.txt"),
        NOTE,
        "permission denied",
        setup=(_w("n.txt", "A note."), ("chmod", "n.txt", 0o000)),
        drop_root=True,
    ),
    # -- ask: models -------------------------------------------------------------------------------
    Case("ask-model-missing", (*ASK, "{note}", "--model", "{tmp}/nope.gguf"), MODEL, "model file not found"),
    Case("ask-model-directory", (*ASK, "{note}", "--model", "{tmp}"), MODEL, "is a directory"),
    Case(
        "ask-model-text",
        (*ASK, "{note}", "--model", "{tmp}/m.gguf"),
        MODEL,
        "not a GGUF file",
        setup=(_w("m.gguf", "not a model"),),
    ),
    Case(
        "ask-model-no-vocab",
        (*ASK, "{note}", "--model", "{tmp}/toy.gguf"),
        MODEL,
        "llama.cpp cannot load",
        setup=(("toy_gguf", "toy.gguf"),),
    ),
    # -- config.json (issue 9.7) -------------------------------------------------------------------
    Case(
        "config-bool-as-text",
        ("models", "list"),
        USAGE,
        "store_note_text must be true or false",
        setup=(("config", '{"store_note_text": "no"}'),),
    ),
    Case(
        "config-threads-text",
        ("models", "list"),
        USAGE,
        "engine.n_threads must be a whole number",
        setup=(("config", '{"engine": {"n_threads": "four"}}'),),
    ),
    Case(
        "config-threads-huge",
        ("models", "list"),
        USAGE,
        "n_threads must be 1..",
        setup=(("config", '{"engine": {"n_threads": 100000}}'),),
    ),
    Case(
        "config-temperature-nan",
        ("models", "list"),
        USAGE,
        "generation.temperature must be a number",
        setup=(("config", '{"generation": {"temperature": NaN}}'),),
    ),
    Case(
        "config-seed-huge",
        ("models", "list"),
        USAGE,
        "seed must be 0..",
        setup=(("config", '{"generation": {"seed": 18446744073709551616}}'),),
    ),
    Case(
        "config-engine-not-object",
        ("models", "list"),
        USAGE,
        "engine must be an object",
        setup=(("config", '{"engine": 4}'),),
    ),
    Case(
        "config-unknown-key",
        ("models", "list"),
        USAGE,
        "unknown setting store_notes",
        setup=(("config", '{"store_notes": false}'),),
    ),
    Case("config-not-json", ("models", "list"), USAGE, "config file", setup=(("config", "{not json"),)),
    # -- models ------------------------------------------------------------------------------------
    Case("import-missing", ("models", "import", "{tmp}/nope.gguf"), MODEL, "model file not found"),
    Case("import-directory", ("models", "import", "{tmp}"), MODEL, "is a directory"),
    Case(
        "import-no-vocab",
        ("models", "import", "{tmp}/toy.gguf"),
        MODEL,
        "llama.cpp cannot load",
        setup=(("toy_gguf", "toy.gguf"),),
    ),
    Case(
        "import-bad-style",
        ("models", "import", "{tmp}/toy.gguf", "--prompt-style", "nosuch"),
        USAGE,
        "unknown prompt style 'nosuch'",
        setup=(("toy_gguf", "toy.gguf"),),
    ),
    Case("verify-unknown", ("models", "verify", "0123456789abcdef"), MODEL, "no registered model"),
    # -- log export (issue 9.2, 9.13) --------------------------------------------------------------
    Case(
        "export-db-typo",
        ("log", "export", "--db", "{tmp}/typo/x.db"),
        LOG_,
        "no evaluation log",
        absent=("{tmp}/typo",),
    ),
    Case("export-db-directory", ("log", "export", "--db", "{tmp}"), LOG_, "is not a file"),
    Case(
        "export-db-not-sqlite",
        ("log", "export", "--db", "{tmp}/x.db"),
        LOG_,
        "not a SQLite database",
        setup=(_w("x.db", b"PK\x03\x04 a zip" * 50),),
    ),
    Case(
        "export-output-directory",
        ("log", "export", "--db", "{db}", "-o", "{tmp}"),
        USAGE,
        "is a directory",
        setup=(LOG,),
    ),
    Case(
        "export-output-missing-dir",
        ("log", "export", "--db", "{db}", "-o", "{tmp}/no/x.csv"),
        USAGE,
        "does not exist",
        setup=(LOG,),
        absent=("{tmp}/no",),
    ),
    Case(
        "export-output-symlink",
        ("log", "export", "--db", "{db}", "-o", "{tmp}/link.csv"),
        USAGE,
        "symbolic link",
        setup=(LOG, _w("target.csv", "keep"), ("symlink", "link.csv", "target.csv")),
    ),
    Case(
        "export-output-read-only-dir",
        ("log", "export", "--db", "{db}", "-o", "{tmp}/ro/x.csv"),
        USAGE,
        "permission denied",
        setup=(LOG, ("mkdir", "ro"), ("chmod", "ro", 0o555)),
        drop_root=True,
        absent=("{tmp}/ro/x.csv",),
    ),
    Case(
        "export-output-read-only-file",
        ("log", "export", "--db", "{db}", "-o", "{tmp}/x.csv"),
        USAGE,
        "permission denied",
        setup=(LOG, _w("x.csv", "old"), ("chmod", "x.csv", 0o444)),
        drop_root=True,
    ),
    Case("export-format", ("log", "export", "--db", "{db}", "--format", "xml"), USAGE, "invalid choice", setup=(LOG,)),
    Case("export-since", ("log", "export", "--db", "{db}", "--since", "yesterday"), USAGE, "not a date", setup=(LOG,)),
    Case(
        "export-model-unknown",
        ("log", "export", "--db", "{db}", "--model", "nosuch.gguf"),
        USAGE,
        "no model 'nosuch.gguf' in this log",
        setup=(LOG,),
    ),
    # -- log stats (issue 9.13) --------------------------------------------------------------------
    Case(
        "stats-db-typo", ("log", "stats", "--db", "{tmp}/typo/x.db"), LOG_, "no evaluation log", absent=("{tmp}/typo",)
    ),
    Case(
        "stats-compare-unknown",
        ("log", "stats", "--db", "{db}", "--compare", "a.gguf", "b.gguf"),
        USAGE,
        "no model 'a.gguf' in this log",
        setup=(LOG,),
    ),
    Case("stats-task-unknown", ("log", "stats", "--db", "{db}", "--task", "nosuch"), USAGE, "nosuch", setup=(LOG,)),
    # -- log import-ratings (issue 9.8, 9.10) ------------------------------------------------------
    Case(
        "ratings-missing", ("log", "import-ratings", "{tmp}/nope.csv", "--db", "{db}"), USAGE, "not found", setup=(LOG,)
    ),
    Case(
        "ratings-directory",
        ("log", "import-ratings", "{tmp}/d.csv", "--db", "{db}"),
        USAGE,
        "is a directory",
        setup=(LOG, ("mkdir", "d.csv")),
    ),
    Case(
        "ratings-binary",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "binary",
        setup=(LOG, _w("r.csv", b"\x00\xff" * 64)),
    ),
    Case(
        "ratings-latin1",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "not valid UTF-8",
        setup=(LOG, _w("r.csv", "run_id,rater,score\n1,Dr Müller,3\n".encode("latin-1"))),
    ),
    Case(
        "ratings-xlsx",
        ("log", "import-ratings", "{tmp}/r.xlsx", "--db", "{db}"),
        USAGE,
        "must be .csv or .jsonl",
        setup=(LOG, _w("r.xlsx", b"PK\x03\x04")),
    ),
    Case(
        "ratings-bad-rows",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "line 2: rated_at is out of range",
        setup=(LOG, _w("r.csv", BAD_RATINGS)),
        hidden=("PATIENT-SECRET-COMMENT", "DROP TABLE", "INSERT", "SELECT", "Traceback"),
    ),
    Case(
        "ratings-huge-run-id",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "line 3: run_id is not a run id (too large)",
        setup=(LOG, _w("r.csv", BAD_RATINGS)),
        hidden=("PATIENT-SECRET-COMMENT",),
    ),
    Case(
        "ratings-json-types",
        ("log", "import-ratings", "{tmp}/r.jsonl", "--db", "{db}"),
        USAGE,
        "line 1: rater must be text",
        setup=(LOG, _w("r.jsonl", '{"run_id": 1, "score": 3, "rater": {"n": "x"}}\n')),
    ),
    Case(
        "ratings-unreadable",
        ("log", "import-ratings", "{tmp}/r.csv", "--db", "{db}"),
        USAGE,
        "permission denied",
        setup=(LOG, _w("r.csv", "run_id,score\n"), ("chmod", "r.csv", 0o000)),
        drop_root=True,
    ),
    # -- batch (issue 9.5, 9.10, 9.11, 9.14) -------------------------------------------------------
    Case(
        "batch-missing", ("batch", "{tmp}/nope.csv", "--db", "{tmp}/b.db"), USAGE, "not found", absent=("{tmp}/b.db",)
    ),
    Case(
        "batch-directory",
        ("batch", "{tmp}/d.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "is a directory",
        setup=(("mkdir", "d.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-output-directory",
        ("batch", "{tmp}/in.csv", "--output", "{tmp}/out.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "is a directory",
        setup=(("batch_input", "in.csv"), ("mkdir", "out.csv")),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-output-missing-dir",
        ("batch", "{tmp}/in.csv", "--output", "{tmp}/no/o.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "does not exist",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-output-symlink",
        ("batch", "{tmp}/in.csv", "--output", "{tmp}/l.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "symbolic link",
        setup=(("batch_input", "in.csv"), ("symlink", "l.csv", "elsewhere.csv")),
        absent=("{tmp}/b.db", "{tmp}/elsewhere.csv"),
    ),
    Case(
        "batch-output-suffix",
        ("batch", "{tmp}/in.csv", "--output", "{tmp}/o.txt", "--db", "{tmp}/b.db"),
        USAGE,
        ".csv or .jsonl",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-threads-huge",
        ("batch", "{tmp}/in.csv", "--threads", "100000", "--db", "{tmp}/b.db"),
        USAGE,
        "threads must be 1..",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-seed-2^64",
        ("batch", "{tmp}/in.csv", "--seed", str(2**64), "--db", "{tmp}/b.db"),
        USAGE,
        "seed must be 0..",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-temp-nan",
        ("batch", "{tmp}/in.csv", "--temperature", "nan", "--db", "{tmp}/b.db"),
        USAGE,
        "temperature must be a finite number",
        setup=(("batch_input", "in.csv"),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-binary",
        ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "binary",
        setup=(_w("in.csv", b"\x00" * 100),),
        absent=("{tmp}/b.db",),
    ),
    Case(
        "batch-json-types",
        ("batch", "{tmp}/in.jsonl", "--db", "{tmp}/b.db"),
        USAGE,
        "line 1: note must be text, not true/false",
        setup=(_w("in.jsonl", '{"note": true, "task": "qa", "instruction": "q?"}\n'),),
    ),
    Case(
        "batch-unreadable",
        ("batch", "{tmp}/in.csv", "--db", "{tmp}/b.db"),
        USAGE,
        "permission denied",
        setup=(("batch_input", "in.csv"), ("chmod", "in.csv", 0o000)),
        drop_root=True,
        absent=("{tmp}/b.db",),
    ),
)


def all_cases() -> tuple[Case, ...]:
    """This table and every ``cases_<topic>.py`` module's ``CASES``, in file-name order."""
    return CASES + tuple(c for module in _topic_modules() for c in getattr(module, "CASES", ()))


def all_steps() -> dict[str, Any]:
    """Setup steps the topic modules add (``STEPS``), by name."""
    return {k: v for module in _topic_modules() for k, v in getattr(module, "STEPS", {}).items()}


def _topic_modules() -> list[Any]:
    import importlib
    from pathlib import Path

    here = Path(__file__).parent
    return [importlib.import_module(f"tests.reliability.{f.stem}") for f in sorted(here.glob("cases_*.py"))]
