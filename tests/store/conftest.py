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
