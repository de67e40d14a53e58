"""Dependencies run one way, and the desktop app never needs torch or transformers (it must freeze small)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "accelerate", "safetensors", "sentencepiece", "tokenizers")


def _imported(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, cwd=ROOT)
    return set(json.loads(out.stdout))


def _modules(package: str) -> list[str]:
    return [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts and p.name != "__init__.py"
    ]


def test_core_store_and_cli_import_no_qt_and_no_training_stack():
    modules = _modules("app/core") + _modules("app/store") + _modules("app/service")
    loaded = _imported([*modules, "app.cli.main", "app.cli.ask", "app.cli.batch"])
    assert not loaded & {*HEAVY, "PySide6"}, loaded & {*HEAVY, "PySide6"}


def test_desktop_app_imports_no_training_stack():
    if not (ROOT / "app" / "qt").is_dir() or not _modules("app/qt"):
        pytest.fail("app/qt is missing")
    loaded = _imported(_modules("app/qt"))
    assert "PySide6" in loaded  # the check is live: it sees what the modules import
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("resources", ("app", "training", "quantize", "PySide6")),
        ("app/core", ("app.store", "app.service", "app.qt", "app.cli", "PySide6", *HEAVY)),
        ("app/store", ("app.service", "app.qt", "app.cli", "PySide6", *HEAVY)),
        ("app/service", ("app.qt", "app.cli", "PySide6", *HEAVY)),
        ("quantize", ("app.qt",)),
        ("training", ("app.qt",)),
    ],
)
def test_static_imports_follow_the_layering(package, forbidden):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if any(n == f or n.startswith(f + ".") for f in forbidden)
            ]
    assert bad == []
