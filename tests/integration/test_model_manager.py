"""Model manager functions of the registry: identical copies keep the entry, library copies, rename,
remove, missing files."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from app.core.config import Paths
from app.core.errors import ModelError
from app.core.registry import (
    Registry,
    add_model,
    is_missing,
    is_removable,
    mark_missing,
    remove_model,
    rename_model,
)
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401  (the fixture: a tiny real GGUF)


def test_add_copy_rename_remove_and_missing(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(Paths(tmp_path / "data", tmp_path / "cfg"))
    first = tmp_path / "a" / "tiny.gguf"
    first.parent.mkdir()
    shutil.copy(tiny_llama_gguf, first)
    info, note = add_model(reg, first)
    assert note == "" and info.path == str(first.resolve())
    # The same bytes elsewhere: the existing entry stays as it was.
    twin = tmp_path / "b" / "tiny-copy.gguf"
    twin.parent.mkdir()
    shutil.copy(tiny_llama_gguf, twin)
    same, note = add_model(reg, twin)
    assert same.path == info.path and "identical" in note and len(reg.list()) == 1
    # Its file gone, the entry moves to the new path.
    first.unlink()
    assert is_missing(reg.find(info.sha256))
    mark_missing(reg, info.sha256)
    assert not Registry(reg.paths).find(info.sha256).verified
    moved, _ = add_model(reg, twin)
    assert moved.path == str(twin.resolve()) and not is_missing(moved)
    # A library copy: private, in the models directory, same sha256 (the source is then the duplicate).
    twin.unlink()
    src = tmp_path / "usb" / "tiny.gguf"
    src.parent.mkdir()
    shutil.copy(tiny_llama_gguf, src)
    copied, note = add_model(reg, src, copy=True)
    assert os.path.dirname(copied.path) == str(reg.paths.models_dir.resolve()) and "copied" in note
    assert stat.S_IMODE(os.stat(copied.path).st_mode) == 0o600
    renamed = rename_model(reg, info.sha256, "  My model ")
    assert renamed.name == "My model" and Registry(reg.paths).find(info.sha256).name == "My model"
    with pytest.raises(ModelError):
        rename_model(reg, info.sha256, " ")
    remove_model(reg, info.sha256)
    assert reg.find(info.sha256) is None and not os.path.exists(copied.path), "the library copy goes with it"
    assert src.exists(), "a file outside the library is never deleted"
    assert is_removable("/media/u/STICK/m.gguf") and is_removable("/run/media/u/S/m.gguf")
    assert not is_removable(str(src))
