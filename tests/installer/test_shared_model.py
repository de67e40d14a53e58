"""The demo model shipped once, read-only, with an installed program: every user's registry uses that file in
place (no ~242 MB copy each), and the per-user copy an older version joined can be purged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import Paths
from app.core.errors import ModelError
from app.core.models import Registry
from app.core.models import demo as demo_module
from tests.installer.stage import env, stage


def du_bytes(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*"))


@pytest.fixture
def shared_dir(demo_model, tmp_path) -> Path:
    """``share/models`` of an installed program holding the demo GGUF (a hard link to the session's copy)."""
    shared = tmp_path / "opt" / "share" / "models"
    shared.mkdir(parents=True)
    os.link(demo_model.path, shared / Path(demo_model.path).name)
    return shared


def test_every_user_uses_the_shipped_demo_in_place(shared_dir, tmp_path, monkeypatch):
    shipped = next(shared_dir.iterdir())
    before = sorted(p.name for p in shared_dir.iterdir())
    users = [Paths(tmp_path / u / "data", tmp_path / u / "config", shared_dir) for u in ("alice", "bob")]
    for paths in users:
        reg = Registry(paths)
        info = reg.resolve(None, on_fallback=lambda _: None)
        assert info.path == str(shipped) and reg.is_builtin(info) and info.is_demo
        assert not list(paths.data_dir.rglob("*.gguf")), "no per-user copy of the model"
        assert du_bytes(paths.data_dir) < 64 * 1024, du_bytes(paths.data_dir)
    assert sorted(p.name for p in shared_dir.iterdir()) == before, "nothing is written beside the shipped model"

    # Known to the user's registry: later starts compare the fingerprint and never hash or join again.
    def no_hashing(*_a, **_k):
        raise AssertionError("hashed or joined again")

    monkeypatch.setattr(demo_module, "sha256_file", no_hashing)
    monkeypatch.setattr(demo_module, "join_demo_parts", no_hashing)
    assert Registry(users[0]).ensure_demo().path == str(shipped)


def test_an_upgrade_replaces_the_users_entry_of_the_shipped_demo(demo_model, tmp_path):
    user = tmp_path / "alice"
    shipped = []
    for version in ("0.1.0", "0.2.0"):  # install.sh keeps each version in its own directory
        shared = tmp_path / "opt" / version / "share" / "models"
        shared.mkdir(parents=True)
        shipped.append(shared / Path(demo_model.path).name)
        os.link(demo_model.path, shipped[-1])
        info = Registry(Paths(user / "data", user / "config", shared)).ensure_demo()
        assert info.path == str(shipped[-1])
        shipped[0].unlink(missing_ok=True)  # the upgrade removes the older version
    listed = [m.path for m in Registry(Paths(user / "data", user / "config", shared)).list()]
    assert listed == [str(shipped[-1])], "no missing demo entry left behind by the upgrade"


def test_a_damaged_shipped_demo_is_an_error_to_reinstall(demo_model, tmp_path):
    shared = tmp_path / "share" / "models"
    shared.mkdir(parents=True)
    (shared / Path(demo_model.path).name).write_bytes(b"GGUF but not the demo")
    reg = Registry(Paths(tmp_path / "d", tmp_path / "c", shared))
    with pytest.raises(ModelError, match="installation is damaged"):
        reg.ensure_demo()
    assert not list((tmp_path / "d").rglob("*.gguf"))


def test_without_a_shipped_model_the_user_copy_is_used(demo_model, tmp_path):
    paths = Paths(tmp_path / "d", tmp_path / "c", tmp_path / "no-such-dir")
    assert Registry(paths).demo_path() == paths.models_dir / Path(demo_model.path).name


def test_the_frozen_program_finds_share_models_beside_itself(tmp_path, monkeypatch):
    exe = tmp_path / "asclepius-desk" / "asclepius"
    exe.parent.mkdir()
    exe.write_text("")
    monkeypatch.setattr(sys, "executable", str(exe))
    monkeypatch.delenv("ASCLEPIUS_HOME", raising=False)
    assert Paths.default().shared_models_dir is None, "not frozen: a source checkout ships none"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert Paths.default().shared_models_dir is None, "a release without share/models"
    (exe.parent / "share" / "models").mkdir(parents=True)
    assert Paths.default().shared_models_dir == exe.parent / "share" / "models"
    monkeypatch.setenv("ASCLEPIUS_HOME", str(tmp_path / "portable"))
    assert Paths.default().shared_models_dir == exe.parent / "share" / "models"


def test_uninstall_purges_only_a_byte_identical_copy_of_the_shipped_model(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "share" / "models").mkdir(parents=True)
    (bundle / "asclepius").write_text("#!/bin/sh\necho stand-in\n")
    (bundle / "asclepius").chmod(0o755)
    (bundle / "share" / "models" / "demo.gguf").write_bytes(b"the shipped demo")
    home = tmp_path / "home"
    home.mkdir()
    r = subprocess.run([str(stage(tmp_path, "0.1.0") / "install.sh"), "--user"], env=env(home), capture_output=True)
    assert r.returncode == 0, r.stderr
    models = home / ".local/share/asclepius-desk/models"
    models.mkdir(parents=True)
    (models / "demo.gguf").write_bytes(b"the shipped demo")  # joined by an older version
    (models / "mine.gguf").write_bytes(b"a model the user imported")
    (models.parent / "asclepius.db").write_bytes(b"the log")
    script = home / ".local/opt/asclepius-desk/uninstall.sh"
    r = subprocess.run(
        [str(script), "--purge-model-copy", "--keep-program"], env=env(home), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert not (models / "demo.gguf").exists() and "Removed: " in r.stdout
    assert (models / "mine.gguf").exists() and (models.parent / "asclepius.db").read_bytes() == b"the log"
    assert (home / ".local/opt/asclepius-desk/current/asclepius").exists(), "the program stays"
    (models / "demo.gguf").write_bytes(b"same name, other bytes")
    r = subprocess.run(
        [str(script), "--purge-model-copy", "--keep-program"], env=env(home), capture_output=True, text=True
    )
    assert (models / "demo.gguf").exists() and "No copy of the shipped demo model" in r.stdout
