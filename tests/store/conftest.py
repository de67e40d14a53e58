from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store import EvalLog


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "log" / "asclepius.db"


@pytest.fixture
def log(db_path: Path) -> Iterator[EvalLog]:
    lg = EvalLog.open(db_path, timeout_s=2.0)
    yield lg
    lg.close()


@pytest.fixture
def asclepius_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ASCLEPIUS_HOME, so a CLI test never reads the user's config (``usefixtures`` it)."""
    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"
