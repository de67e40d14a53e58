"""Dependencies run one way, and the desktop app never needs torch or transformers (it must freeze small).

The static rules are data (``RULES``); each applies to a package that exists in this tree and is skipped,
visibly, where it does not (``training/`` is optional in a desktop bundle). The checker itself is tested on a
synthetic tree, so a rule that silently matched nothing would be caught there.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "accelerate", "safetensors", "sentencepiece", "tokenizers")
STORE_PUBLIC = ("app.store", "app.store.export", "app.store.ratings_import", "app.store.stats")
"""The evaluation log's public API (its ``__init__`` names the rest as internal)."""


@dataclass(frozen=True)
class Rule:
    package: str
    """Directory relative to the repository root."""
    forbidden: tuple[str, ...]
    """Module prefixes that no file of the package may import."""
    public_only: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(package, its public modules): importing any other module under that package is a violation."""
    exempt: tuple[str, ...] = ()
    """Files (relative paths) allowed to break ``forbidden``: each with its reason in ``EXEMPTIONS``."""


EXEMPTIONS = {
    "app/cli/main.py": "registers the `train`, `data` and `judge` command groups lazily, the same seam as "
    "`quantize` (argparse only; torch, openai and datasets load when one of those commands runs)",
}

RULES = (
    Rule("resources", ("app", "training", "quantize", "PySide6")),
    Rule("app/core", ("app.store", "app.service", "app.qt", "app.cli", "training", "PySide6", *HEAVY)),
    Rule("app/store", ("app.service", "app.qt", "app.cli", "training", "PySide6", *HEAVY)),
    Rule("app/service", ("app.qt", "app.cli", "training", "PySide6", *HEAVY)),
    Rule("app/qt", ("app.cli", "training", *HEAVY)),
    Rule("app/cli", ("training",), exempt=("app/cli/main.py",)),
    Rule("quantize", ("app.qt", "app.cli", "training", "PySide6")),
    Rule("training", ("app.qt", "app.cli", "PySide6"), public_only=(("app.store", STORE_PUBLIC),)),
)


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path, rule: Rule) -> list[str]:
    """Every import (at any depth, lazy ones included) in ``rule.package`` that breaks the rule."""
    bad = []
    for path in sorted((root / rule.package).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from app.store import stats" imports the module app.store.stats; "import EvalLog" a name
                names = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names if _is_module(root, node.module, a.name)
                ]
            else:
                continue
            for n in names:
                if any(_matches(n, f) for f in rule.forbidden) and rel not in rule.exempt:
                    bad.append(f"{rel}: imports {n}")
                for pkg, public in rule.public_only:
                    if _matches(n, pkg) and n not in public:
                        bad.append(f"{rel}: imports {n}, not the public API of {pkg}")
    return sorted(set(bad))


def _is_module(root: Path, package: str, name: str) -> bool:
    base = root.joinpath(*package.split("."), name)
    return base.with_suffix(".py").is_file() or base.is_dir()


@pytest.mark.parametrize("rule", RULES, ids=[r.package for r in RULES])
def test_static_imports_follow_the_layering(rule: Rule) -> None:
    if not (ROOT / rule.package).is_dir():
        pytest.skip(f"{rule.package}/ is not in this tree")
    assert violations(ROOT, rule) == []


def test_every_exemption_is_explained_and_used() -> None:
    exempt = {f for r in RULES for f in r.exempt}
    assert exempt == set(EXEMPTIONS)


def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_the_checker_on_a_synthetic_tree(tmp_path: Path) -> None:
    _write(tmp_path, "training/ok.py", "from app.core.errors import UsageError\nimport quantize.verify\n")
    _write(tmp_path, "training/store_ok.py", "from app.store import EvalLog, stats\nimport app.store.export\n")
    _write(tmp_path, "training/qt.py", "def f():\n    from app.qt import workers\n")
    _write(tmp_path, "training/private.py", "from app.store.db import connect\nfrom app.store import log\n")
    _write(tmp_path, "app/store/log.py", "")
    _write(tmp_path, "app/store/stats.py", "")
    _write(tmp_path, "app/core/x.py", "import training.trainer\n")
    _write(tmp_path, "app/cli/main.py", "def plugins():\n    from training.trainer import cli\n")
    _write(tmp_path, "app/cli/other.py", "from training import data\n")
    by_package = {r.package: violations(tmp_path, r) for r in RULES if (tmp_path / r.package).is_dir()}
    assert by_package["training"] == [
        "training/private.py: imports app.store.db, not the public API of app.store",
        "training/private.py: imports app.store.log, not the public API of app.store",
        "training/qt.py: imports app.qt",
    ]
    assert by_package["app/store"] == []
    assert by_package["app/core"] == ["app/core/x.py: imports training.trainer"]
    assert by_package["app/cli"] == ["app/cli/other.py: imports training"]


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
    loaded = _imported([*modules, "app.cli.main", "app.cli.ask", "app.cli.batch", *_modules("app/cli/batch")])
    assert not loaded & {*HEAVY, "PySide6", "training"}, loaded & {*HEAVY, "PySide6", "training"}


def test_desktop_app_imports_no_training_stack():
    if not (ROOT / "app" / "qt").is_dir() or not _modules("app/qt"):
        pytest.fail("app/qt is missing")
    loaded = _imported(_modules("app/qt"))
    assert "PySide6" in loaded  # the check is live: it sees what the modules import
    assert not loaded & {*HEAVY, "training"}, loaded & {*HEAVY, "training"}
