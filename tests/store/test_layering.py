"""app.store stays importable in a small frozen app: no Qt, torch, transformers, llama.cpp or training; no
import side effects. The modules are the package's files, so a module that is removed is not checked and a
new one is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "app" / "store"


def _store_modules() -> list[str]:
    return sorted(f"app.store.{p.stem}" for p in STORE.glob("*.py") if p.stem != "__init__")


def test_store_imports_no_heavy_packages(tmp_path: Path) -> None:
    modules = _store_modules()
    assert {"app.store.log", "app.store.stats", "app.store.export"} <= set(modules)  # the list is live
    code = (
        f"import importlib, sys\nfor m in {['app.store', *modules]!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('PySide6', 'torch', 'transformers', 'llama_cpp', 'training')]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []  # importing wrote nothing
