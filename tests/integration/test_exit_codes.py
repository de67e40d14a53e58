"""One exit-code table (app.core.errors.EXIT_CODES, printed into docs/cli.md) for every command group.

Each group's typical failures are rows of data: the command, the code the table gives that failure, and a
fragment of the message. All rows run through ``app.cli.main.main`` in one subprocess (a fresh
``ASCLEPIUS_HOME``), so the whole table costs one interpreter start. Every command group the parser knows
must have rows: a new group fails ``test_every_command_group_has_rows`` until its failures are listed here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import EXIT_CODES
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]

_DATA = ["data"]
_REMOTE = ["--endpoint", "http://127.0.0.1:9/v1"]
_EP = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--no-progress"]
# (group, argv with {tmp} / {tiny} placeholders, expected code, message fragment)
ROWS: list[tuple[str, list[str], int, str]] = [
    ("ask", ["ask", "--task", "qa", "q"], 2, "--note"),
    ("ask", ["ask", "--note", "{tmp}/note.txt", "--task", "nosuch", "q"], 2, "nosuch"),
    ("ask", ["ask", "--note", "{tmp}/empty.txt", "--task", "qa", "q"], 3, "empty"),
    ("ask", ["ask", "--note", "{tmp}/binary.txt", "--task", "qa", "q"], 3, ""),
    ("ask", ["ask", "--note", "{tmp}/note.txt", "--task", "qa", "--model", "{tmp}/none.gguf", "q"], 4, "not found"),
    ("ask", ["ask", "--note", "{tmp}/note.txt", "--task", "qa", "--model", "{tmp}/fake.gguf", "q"], 4, "GGUF"),
    ("ask", ["ask", "--note", "{tmp}/long.txt", "--task", "qa", "--model", "{tiny}", "--no-log", "q"], 5, "context"),
    ("tasks", ["tasks", "--bogus"], 2, "unrecognized"),
    ("ground", ["ground", "--note", "{tmp}/none.txt", "--answer", "{tmp}/note.txt"], 3, "not found"),
    ("ground", ["ground", "--note", "{tmp}/note.txt", "--answer", "{tmp}/empty.txt"], 3, "answer is empty"),
    ("ground", ["ground", "--note", "{tmp}/note.txt", "--answer", "{tmp}/note.txt", "--task", "nosuch"], 2, "nosuch"),
    ("models", ["models", "frobnicate"], 2, "invalid choice"),
    ("models", ["models", "import", "{tmp}/fake.gguf"], 4, "GGUF"),
    ("models", ["models", "info", "{tmp}/none.gguf"], 4, "not found"),
    ("models", ["models", "verify", "0123456789abcdef"], 4, "no registered model"),
    ("models", ["models", "remove", "{tmp}/none.gguf"], 4, "no registered model"),
    ("models", ["models", "remove", "{tiny}", "--delete-copy", "--keep-copy"], 2, "not allowed with"),
    ("models", ["models", "rename", "{tmp}/none.gguf", " "], 2, "1 to 120 characters"),
    ("models", ["models", "rename", "{tmp}/none.gguf", "New name"], 4, "no registered model"),
    ("models", ["models", "set-default", "{tmp}/none.gguf"], 4, "no registered model"),
    ("models", ["models", "set-default"], 2, "required"),
    ("models", ["models", "import", "{tiny}", "--copy", "--no-copy"], 2, "not allowed with"),
    ("log", ["log", "stats", "--since", "yesterday-ish"], 2, "not a date"),
    ("log", ["log", "stats", "--db", "{tmp}/corrupt.db"], 6, ""),
    ("log", ["log", "import-ratings", "{tmp}/none.csv"], 2, "not found"),
    ("log", ["log", "show", "99999"], 2, "no run"),
    ("batch", ["batch", "{tmp}/none.csv"], 2, "not found"),
    ("batch", ["batch", "{tmp}/items.csv", "--output", "{tmp}/out.txt"], 2, "--output"),
    # batch --endpoint: a closed loopback port (8), a URL carrying a password, a missing or stray remote flag (2)
    ("batch", ["batch", "{tmp}/items.csv", *_REMOTE, "--endpoint-model", "m", "--endpoint-attempts", "1"], 8, "reach"),
    ("batch", ["batch", "{tmp}/items.csv", "--endpoint", "http://u:pw@127.0.0.1:9/v1"], 2, "user or password"),
    ("batch", ["batch", "{tmp}/items.csv", *_REMOTE], 2, "--endpoint-model"),
    ("batch", ["batch", "{tmp}/items.csv", "--concurrency", "4"], 2, "only apply with --endpoint"),
    ("study", ["study", "create", "s", "--items", "{tmp}/none.csv", "--model", "m", "--raters", "a"], 2, "not found"),
    ("study", ["study", "status", "nope"], 2, "no study 'nope'"),
    ("study", ["study", "status", "s", "--db", "{tmp}/corrupt.db"], 6, ""),
    (
        "study",
        ["study", "packet", "s", "--rater", "a", "-o", "{tmp}/a.packet", "--passphrase-env", "NO_SUCH_VAR_23"],
        2,
        "not set",
    ),
    ("quantize", ["quantize", "convert", "{tmp}"], 4, "config.json"),
    ("quantize", ["quantize", "convert", "{ckpt}", "-o", "{tiny}"], 2, "already exists"),
    ("quantize", ["quantize", "quantize", "{tmp}/fake.gguf"], 4, "not a GGUF"),
    ("quantize", ["quantize", "quantize", "{tiny}", "-t", "Q9_9"], 2, "invalid choice"),
    ("quantize", ["quantize", "quantize", "{tiny}", "-o", "{tiny}", "-t", "Q8_0"], 2, "already exists"),
    ("quantize", ["quantize", "verify", "{tiny}", "--notes", "{tmp}/note.txt"], 2, "not checked"),
    ("quantize", ["quantize", "verify", "{tiny}", "--notes", "{tmp}/emptydir"], 3, "no notes"),
    ("quantize", ["quantize", "inspect", "{tmp}/none.gguf"], 4, "no such file"),
    ("gui", ["gui", "--bogus"], 2, "unrecognized"),
    ("selftest", ["selftest", "--threads", "many"], 2, "must be a whole number"),
    # train: a recipe name that does not exist, a missing model directory or config (4), missing data, bad --set.
    (
        "train",
        ["train", "sft", "no-such-recipe", "--model", "{ckpt}", "--data", "{tmp}/note.txt", "--out", "{tmp}/t"],
        2,
        "no recipe",
    ),
    (
        "train",
        ["train", "sft", "asclepius-7b-sft", "--model", "{tmp}/none", "--data", "{tmp}/note.txt", "--out", "{tmp}/t"],
        4,
        "does not exist",
    ),
    (
        "train",
        ["train", "sft", "asclepius-7b-sft", "--model", "{tmp}", "--data", "{tmp}/note.txt", "--out", "{tmp}/t"],
        4,
        "config.json",
    ),
    (
        "train",
        ["train", "sft", "asclepius-7b-sft", "--model", "{ckpt}", "--data", "{tmp}/none.jsonl", "--out", "{tmp}/t"],
        2,
        "does not exist",
    ),
    ("train", ["train", "plan", "asclepius-7b-sft", "--set", "learning_rat=1"], 2, "unknown field"),
    # data and judge: every row fails before any request (the URL is a closed port on loopback)
    ("data", [*_DATA, "notes", "{tmp}/none.csv", *_EP, "--out", "{tmp}/d1"], 2, "not found"),
    ("data", [*_DATA, "notes", "{tmp}/items.csv", *_EP, "--out", "{tmp}/d1"], 2, "no column 'patient'"),
    ("data", [*_DATA, "notes", "{tmp}/binary.txt", *_EP, "--out", "{tmp}/d1"], 2, ".csv or .jsonl"),
    (
        "data",
        [*_DATA, "notes", "{tmp}/items.csv", "--base-url", "ftp://x", "--model", "m", "--out", "{tmp}/d1"],
        2,
        "http",
    ),
    ("data", [*_DATA, "instructions", *_EP, "--out", "{tmp}/emptydir"], 2, "asclepius data notes"),
    ("data", [*_DATA, "build", "--out", "{tmp}/emptydir"], 2, "no finished notes stage"),
    # eval: refusals made before a suite is read, the data loaded or the log opened
    ("eval", ["eval"], 2, "required"),
    ("eval", ["eval", "run", "pubmedqa"], 2, "--data"),
    ("eval", ["eval", "run", "pubmedqa", "--data", "{tmp}/none.json", "--concurrency", "4"], 2, "only apply with"),
    ("eval", ["eval", "run", "pubmedqa", "--data", "{tmp}/none.json", *_REMOTE], 2, "--endpoint-model"),
    ("eval", ["eval", "score", "pubmedqa", "--data", "{tmp}/none.json"], 2, "--answers"),
    ("eval", ["eval", "score", "pubmedqa", "--data", "x", "--answers", "y", "--limit", "0"], 2, "limit"),
    ("cache", ["cache"], 2, "{clear,info}"),
    ("cache", ["cache", "purge"], 2, "invalid choice"),
    ("judge", ["judge", "--answers", "{tmp}/none.jsonl", *_EP], 2, "not found"),
    ("judge", ["judge", "--answers", "{tmp}/items.csv", *_EP], 2, ".jsonl"),
    ("judge", ["judge", "--orders", "0", "--answers", "{tmp}/none.jsonl", *_EP], 2, "--orders"),
    # policy: the home's own policy.toml allows 127.0.0.1 only (every other row's endpoint), so localhost is refused
    ("policy", ["policy", "--bogus"], 2, "unrecognized"),
    ("batch", ["batch", "{tmp}/items.csv", "--endpoint", "http://localhost:9/v1", "--endpoint-model", "m"], 9, "host"),
]
"""Groups whose other failures need a real generation or a broken llama.cpp (7) are covered elsewhere."""

DRIVER = r"""
import contextlib, io, json, sys
from app.cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    results.append({"code": code, "stderr": err.getvalue()[-2000:], "stdout": out.getvalue()[-2000:]})
print(json.dumps(results))
"""


def _setup(tmp: Path, ckpt: Path) -> None:
    (tmp / "note.txt").write_text("Patient admitted with pneumonia. Started ceftriaxone 1 g daily.\n")
    (tmp / "empty.txt").write_text("   \n")
    (tmp / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    (tmp / "long.txt").write_text("Creatinine 1.9 mg/dL, BP 132/84, started lisinopril 10 mg daily. " * 600)
    (tmp / "fake.gguf").write_bytes(b"PK\x03\x04 this is a zip, not a model")
    (tmp / "corrupt.db").write_bytes(b"this is not an sqlite database" * 100)
    (tmp / "items.csv").write_text("note,task,instruction\nPatient stable.,qa,How is the patient?\n")
    (tmp / "emptydir").mkdir()
    shutil.copytree(ckpt, tmp / "ckpt")
    # The default log `log show` reads: commands that need a log refuse a missing one (an earlier row's
    # `log import-ratings` used to create it by mistake, issue 21).
    from app.store import EvalLog

    EvalLog.open(tmp / "home" / "data" / "asclepius.db").close()
    (tmp / "home" / "config").mkdir(parents=True, exist_ok=True)
    (tmp / "home" / "config" / "policy.toml").write_text('allowed_endpoint_hosts = ["127.0.0.1"]\n')


@pytest.fixture(scope="module")
def results(tmp_path_factory, tiny_llama_gguf):  # noqa: F811
    tmp = tmp_path_factory.mktemp("exit-codes")
    _setup(tmp, tiny_llama_gguf.parent / "tiny-llama-hf")  # the checkpoint the fixture was converted from
    tiny = tmp / "tiny.gguf"
    shutil.copy(tiny_llama_gguf, tiny)
    argvs = [[a.format(tmp=tmp, tiny=tiny, ckpt=tmp / "ckpt") for a in argv] for _, argv, _, _ in ROWS]
    env = {**os.environ, "ASCLEPIUS_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    env.pop("ASCLEPIUS_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argvs)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("i", range(len(ROWS)), ids=[f"{g}:{' '.join(a[:3])}" for g, a, _, _ in ROWS])
def test_failure_exits_with_the_code_the_table_gives(results, i):
    _, argv, expected, fragment = ROWS[i]
    got = results[i]
    assert expected in EXIT_CODES
    assert got["code"] == expected, f"{argv}: exit {got['code']}, expected {expected}\n{got['stderr']}"
    assert fragment.lower() in (got["stderr"] + got["stdout"]).lower()
    assert "Traceback" not in got["stderr"]


def test_every_command_group_has_rows():
    from app.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # argparse's subparsers action
    groups = set(sub.choices)
    assert groups - {g for g, _, _, _ in ROWS} == set(), "add the new command group's failures to ROWS"


def test_codes_are_the_documented_ones():
    assert set(EXIT_CODES) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 130, 143}
    assert all(code != 1 for _, _, code, _ in ROWS)  # no expected failure is an "internal error"
