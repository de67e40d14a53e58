"""app.store stays importable in a small frozen app: no Qt, torch or transformers; no import side effects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_store_imports_no_heavy_packages(tmp_path: Path) -> None:
    code = (
        "import sys, app.store, app.store.stats, app.store.export, app.store.ratings_import, app.store.queries\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'torch', 'transformers', 'llama_cpp')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []  # importing wrote nothing
