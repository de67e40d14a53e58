"""``asclepius models import/list/remove/rename/set-default`` over the path-keyed registry (issue #10 item 5):
the same API as the Models screen, run through ``app.cli.main.main`` in a home of the test's own."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest

from app.cli.main import main
from app.core.config import Paths, load_config
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401  (the fixture: a tiny real GGUF)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, demo_model):
    """Run ``asclepius ...`` in-process in a fresh home (the demo GGUF hard-linked in); returns (code, out, err)."""
    home = tmp_path / "home"
    models = home / "data" / "models"
    models.mkdir(parents=True)
    os.link(demo_model.path, models / os.path.basename(demo_model.path))
    monkeypatch.setenv("ASCLEPIUS_HOME", str(home))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: nothing is asked

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv), isolate=False)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _listed(run) -> dict[str, dict]:
    code, out, _ = run("models", "list", "--json")
    assert code == 0
    return {m["id"]: m for m in json.loads(out)}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_models_commands_share_the_model_managers_behaviour(cli, tmp_path, monkeypatch, tiny_llama_gguf):  # noqa: F811
    paths = Paths.default()
    stick = Path(shutil.copy(tiny_llama_gguf, tmp_path / "tiny.gguf"))
    mine = tmp_path / "mine" / "tiny.gguf"
    mine.parent.mkdir()
    shutil.copy(tiny_llama_gguf, mine)
    code, out, err = cli("models", "import", str(stick), "--copy", "--name", "Stick model")
    lib = paths.models_dir.resolve() / "tiny.gguf"
    assert code == 0 and str(lib) in out and "copied into the model library" in err
    code, out, err = cli("models", "import", str(mine), "--no-copy")
    assert code == 0 and "identical" in err and str(lib) in err
    listed = _listed(cli)
    demo = next(m for m in listed.values() if m["builtin"])
    assert set(listed) == {demo["id"], str(lib), str(mine.resolve())}, "one entry per file, the demo kept"
    assert listed[str(lib)]["in_library"] and not listed[str(mine.resolve())]["in_library"]
    assert listed[str(lib)]["name"] == "Stick model" and demo["is_default"]
    assert {m["status"] for m in listed.values()} == {"ok"}
    # set-default saves the entry's id (its path); the list marks it.
    code, out, _ = cli("models", "set-default", str(mine))
    assert code == 0 and load_config(paths).default_model == str(mine.resolve())
    code, out, _ = cli("models", "list")
    [row] = [line for line in out.splitlines() if line.endswith(str(mine.resolve()))]
    assert row.startswith("*") and "verified yes" in row
    # The file goes away: MISSING, never "verified yes"; the default falls back to the demo with a notice.
    mine.unlink()
    code, out, err = cli("models", "list")
    [row] = [line for line in out.splitlines() if line.endswith(str(mine.resolve()))]
    assert "MISSING" in row and "verified yes" not in row and "-- notice:" in err
    code, out, err = cli("models", "info", "--json")
    assert code == 0 and json.loads(out)["is_demo"]
    assert "-- notice: the default model" in err and "missing" in err and "demo model" in err
    assert load_config(paths).default_model == str(mine.resolve()), "the saved default is unchanged"
    code, _, err = cli("models", "set-default", str(mine))
    assert code == 4 and "cannot be the default" in err
    # Rename: by name; the id stays.
    code, out, _ = cli("models", "rename", "Stick model", "Ward 3 model")
    assert code == 0 and str(lib) in out
    assert _listed(cli)[str(lib)]["name"] == "Ward 3 model"
    code, _, err = cli("models", "rename", str(lib), "  ")
    assert code == 2 and "1 to 120" in err
    # Remove: never the user's file; a library copy only when asked to.
    code, out, _ = cli("models", "remove", "Ward 3 model")  # stdin is not a terminal: the copy is kept
    assert code == 0 and lib.exists() and "stays" in out
    code, out, _ = cli("models", "import", str(stick), "--copy")
    lib2 = paths.models_dir.resolve() / "tiny-1.gguf"
    assert code == 0 and str(lib2) in out, "the kept copy is not overwritten"
    code, out, _ = cli("models", "remove", str(lib2), "--delete-copy")
    assert code == 0 and not lib2.exists() and "deleted the library copy" in out and stick.exists()
    cli("models", "import", str(stick), "--copy")
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))  # a person at a terminal answers the question
    code, out, _ = cli("models", "remove", str(lib2))
    assert code == 0 and not lib2.exists() and "deleted the library copy" in out
    code, out, _ = cli("models", "remove", str(mine))  # the default, file gone: back to the demo
    assert code == 0 and "now the demo model" in out and load_config(paths).default_model == ""
    code, _, err = cli("models", "remove", demo["id"])
    assert code == 2 and "built in" in err
    assert set(_listed(cli)) == {demo["id"]}
