"""app.store stays importable in a small frozen app: no Qt, torch or transformers; no import side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.core.config import AppConfig, Paths
from app.core.types import FinishReason
from app.store.runlog import open_run_log
from tests.store.helpers import model, request, result


def test_store_imports_no_heavy_packages(tmp_path: Path) -> None:
    code = (
        "import sys, app.store, app.store.stats, app.store.export, app.store.ratings_import, app.store.runlog\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'torch', 'transformers', 'llama_cpp')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []  # importing wrote nothing


def test_ask_adapter_logs_by_uuid(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "data", tmp_path / "config")
    rl = open_run_log(paths, AppConfig(store_note_text=False))
    ok, bad, m = request(), request(instruction="too long"), model()
    rl.start_run(ok, m)
    rl.finish_run(result(ok, m))
    rl.start_run(bad, m)
    rl.fail_run(bad.run_uuid, "prompt does not fit", FinishReason.ERROR)
    got = {r.uuid: r for r in rl.log.list_runs()}
    assert (got[ok.run_uuid].status, got[ok.run_uuid].finish_reason) == ("finished", "stop")
    assert (got[bad.run_uuid].finish_reason, got[bad.run_uuid].error) == ("error", "prompt does not fit")
    assert rl.log.get_run(ok.run_uuid).note_text is None  # type: ignore[union-attr]
    assert rl.log.path == paths.database
    rl.close()
