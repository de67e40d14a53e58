"""Runs the bad-input table (cases.py): each input is refused with its exit code and message, never exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.cases import Case, all_cases, all_steps

CASES = all_cases()

ROOT = Path(__file__).resolve().parents[2]
NOTE_TEXT = "Discharge summary.\nThe patient took aspirin 81 mg daily and was discharged home on day 3.\n"


def _toy_gguf(path: Path) -> None:
    """A GGUF gguf-py reads (llama architecture, context length) but with no vocabulary: llama.cpp refuses it."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("toy")
    w.add_context_length(1024)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _ready_log(path: Path) -> None:
    from app.store import EvalLog
    from tests.store.helpers import logged

    with EvalLog.open(path) as log:
        logged(log)


STEPS: dict[str, Any] = {
    "write": lambda tmp, name, data: (tmp / name).write_bytes(data if isinstance(data, bytes) else data.encode()),
    "mkdir": lambda tmp, name: (tmp / name).mkdir(),
    "chmod": lambda tmp, name, mode: (tmp / name).chmod(mode),
    "symlink": lambda tmp, name, target: (tmp / name).symlink_to(tmp / target),
    "config": lambda tmp, text: (
        (tmp / "home" / "config").mkdir(parents=True) or (tmp / "home" / "config" / "config.json").write_text(text)
    ),
    "toy_gguf": lambda tmp, name: _toy_gguf(tmp / name),
    "log": lambda tmp: _ready_log(tmp / "log" / "asclepius.db"),
    "batch_input": lambda tmp, name: (tmp / name).write_text(
        f"note,task,instruction\n{NOTE_TEXT.splitlines()[1]},qa,What medication?\n", encoding="utf-8"
    ),
    "fifo": lambda tmp, name: os.mkfifo(tmp / name),
    **all_steps(),
}


def _home(tmp: Path, demo_model: Any, paths: Any) -> Path:
    """A fresh ASCLEPIUS_HOME that already holds the session's prepared demo model (no re-assembly)."""
    home = tmp / "home"
    data = home / "data"
    data.mkdir(parents=True)
    (data / "models").symlink_to(paths.models_dir)
    shutil.copyfile(paths.registry_file, data / "models.json")
    return home


def _argv(case: Case, tmp: Path) -> list[str]:
    subs = {"{tmp}": str(tmp), "{db}": str(tmp / "log" / "asclepius.db"), "{note}": str(tmp / "note.txt")}
    out = []
    for a in case.argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        out.append(a)
    return out


def _run_in_subprocess(argv: list[str], home: Path, *, drop_root: bool, deadline_s: float) -> tuple[int, str]:
    code = "import sys\nfrom app.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *argv]
    if drop_root and os.geteuid() == 0:
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("running as root without capsh: cannot make a file unreadable for root")
        cmd = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", 'exec "$0" "$@"', *cmd]
    env = {**os.environ, "ASCLEPIUS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    try:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=deadline_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung: no exit within {deadline_s:.0f} s ({' '.join(argv)}); output so far: {exc.stdout!r}")
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused(case: Case, tmp_path: Path, demo_model: Any, paths: Any, monkeypatch, capsys) -> None:
    from app.cli.main import main

    tmp = tmp_path
    (tmp / "note.txt").write_text(NOTE_TEXT, encoding="utf-8")
    home = _home(tmp, demo_model, paths)
    for step in case.setup:
        STEPS[step[0]](tmp, *step[1:])
    argv = _argv(case, tmp)
    if case.drop_root or case.deadline_s is not None:
        rc, output = _run_in_subprocess(argv, home, drop_root=case.drop_root, deadline_s=case.deadline_s or 120)
        err = output
    else:
        monkeypatch.setenv("ASCLEPIUS_HOME", str(home))
        monkeypatch.chdir(tmp)
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse refusals
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        output = out + err
    assert rc == case.expect, f"exit {rc}, expected {case.expect}: {output[-2000:]}"
    assert case.fragment.lower() in err.lower(), err[-2000:]
    assert "Traceback" not in output and "unexpected" not in err, output[-2000:]
    for text in case.hidden:
        assert text not in output, f"{text!r} leaked into the output"
    for p in case.absent:
        assert not Path(p.replace("{tmp}", str(tmp))).exists(), f"{p} was created"


def test_the_table_covers_every_command_group() -> None:
    groups = {c.argv[0] if c.argv[0] != "log" else f"log {c.argv[1]}" for c in CASES}
    assert {"ask", "ground", "models", "batch", "log export", "log stats", "log import-ratings"} <= groups
    assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"
    assert all(c.expect not in (0, 1) for c in CASES), "no bad input may succeed or exit 1 (internal error)"
