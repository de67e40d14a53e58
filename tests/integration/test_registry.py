from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest

from app.core.config import Paths
from app.core.errors import ModelError, UsageError
from app.core.hashing import sha256_file
from app.core.models import Registry, read_gguf
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401 - a fixture


def _write_gguf(path, arch="gpt2", ctx=1024):
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("toy")
    w.add_context_length(ctx)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_demo_model_is_registered_with_metadata_and_label(demo_model, paths):
    assert demo_model.is_demo and "not trained for clinical tasks" in demo_model.display_name
    assert demo_model.architecture == "gemma3"
    assert demo_model.file_type == "Q4_K_M"
    assert demo_model.context_length == 32768
    assert 250e6 < demo_model.parameter_count < 300e6
    assert demo_model.prompt_style == "plain-qa"
    assert stat.S_IMODE(os.stat(demo_model.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.registry_file).st_mode) == 0o600
    # A second registry reads it back without re-assembling or re-hashing.
    again = Registry(paths).resolve(None)
    assert again == demo_model


def _loadable(tmp_path, tiny_llama_gguf, name="toy.gguf"):  # noqa: F811
    """A private copy of the tiny LLaMA GGUF (llama.cpp loads it; the test may change it)."""
    return shutil.copyfile(tiny_llama_gguf, tmp_path / name)


def test_import_hashes_once_and_verify_detects_changes(tmp_path, tiny_llama_gguf):  # noqa: F811
    paths = Paths(tmp_path / "d", tmp_path / "c")
    model = _loadable(tmp_path, tiny_llama_gguf)
    reg = Registry(paths)
    calls = []
    info = reg.import_model(model, progress=lambda d, t: calls.append(d))
    assert calls, "the sha256 is computed with progress"
    assert info.prompt_style == "asclepius"
    calls.clear()
    assert reg.import_model(model, progress=lambda d, t: calls.append(d)) == info
    assert calls == [], "unchanged (path, size, mtime) reuses the cached sha256"
    assert reg.verify(info.sha256[:10])[1] is True
    with model.open("r+b") as fh:  # same size, different bytes, mtime restored: only verify can tell
        st = os.stat(model)
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x01")
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert reg.verify(info.sha256[:10])[1] is False
    assert Registry(paths).find(info.sha256).verified is False
    saved = json.loads(paths.registry_file.read_text())
    assert saved["models"][0]["verified"] is False


def test_prompt_style_override_persists(tmp_path, tiny_llama_gguf):  # noqa: F811
    paths = Paths(tmp_path / "d", tmp_path / "c")
    info = Registry(paths).import_model(_loadable(tmp_path, tiny_llama_gguf))
    Registry(paths).set_prompt_style(info.sha256, "plain-qa")
    assert Registry(paths).find(info.sha256).prompt_style == "plain-qa"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "not found"),
        (lambda p: (p.write_text("just some text, not a model"), p)[1], "not a GGUF file"),
        (lambda p: (p.write_bytes(b"GGUF\x03\x00\x00\x00garbage"), p)[1], "damaged or truncated"),
        (lambda p: _write_gguf(p, arch="gpt2"), "architecture 'gpt2' is not supported"),
    ],
    ids=["missing", "text-file", "garbage-header", "unsupported-arch"],
)
def test_bad_model_files_are_refused_specifically(tmp_path, make, message):
    path = make(tmp_path / "model.gguf")
    with pytest.raises(ModelError, match=message):
        read_gguf(path)


def test_truncated_gguf_is_caught_before_llama_cpp(tmp_path, demo_model):
    cut = tmp_path / "cut.gguf"
    with open(demo_model.path, "rb") as src, cut.open("wb") as dst:
        dst.write(src.read(40 << 20))
    with pytest.raises(ModelError, match="truncated"):
        read_gguf(cut)


def test_damaged_registry_file_is_reported_and_kept_aside(tmp_path):
    paths = Paths(tmp_path / "d", tmp_path / "c")
    paths.data_dir.mkdir()
    paths.registry_file.write_text("[]")
    reg = Registry(paths)
    assert "damaged" in reg.notice and reg.list() == []
    assert [p.read_text() for p in paths.data_dir.glob("models.json.damaged-*")] == ["[]"]


def _rewrite_in_place(path, offset: int) -> None:
    """Change one byte, keeping the size and the mtime (what a careless copy tool can do)."""
    st = os.stat(path)
    with path.open("r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("where", ["first-tensor", "middle", "end"])
def test_model_changed_in_place_is_rehashed_before_use(tmp_path, tiny_llama_gguf, where):  # noqa: F811
    """Issue 9.1: the sha256 a run is logged with is always the file's current one."""
    paths = Paths(tmp_path / "d", tmp_path / "c")
    model = _loadable(tmp_path, tiny_llama_gguf)
    info = Registry(paths).import_model(model)
    size = model.stat().st_size
    import gguf

    first = min(t.data_offset for t in gguf.GGUFReader(str(model), "r").tensors)
    _rewrite_in_place(model, {"first-tensor": first + 3, "middle": size // 2, "end": size - 1}[where])
    used = Registry(paths).resolve(info.sha256[:12])
    assert used.sha256 == sha256_file(model) != info.sha256
    assert Registry(paths).find(info.sha256) is None, "the old content is no longer registered at that path"
    assert Registry(paths).resolve(str(model)).sha256 == used.sha256
    assert [m.sha256 for m in Registry(paths).list()] == [used.sha256], "one entry per file"


def test_reimporting_a_changed_file_leaves_one_entry(tmp_path, tiny_llama_gguf):  # noqa: F811
    paths = Paths(tmp_path / "d", tmp_path / "c")
    model = _loadable(tmp_path, tiny_llama_gguf)
    Registry(paths).import_model(model)
    _rewrite_in_place(model, model.stat().st_size - 1)
    os.utime(model)  # a copy tool that does set the time
    again = Registry(paths).import_model(model)
    assert [m.sha256 for m in Registry(paths).list()] == [again.sha256] == [sha256_file(model)]


def test_touched_model_keeps_its_sha256_and_is_not_rehashed_twice(tmp_path, tiny_llama_gguf, monkeypatch):  # noqa: F811
    paths = Paths(tmp_path / "d", tmp_path / "c")
    model = _loadable(tmp_path, tiny_llama_gguf)
    info = Registry(paths).import_model(model)
    os.utime(model, ns=(1, 1))
    assert Registry(paths).resolve(info.sha256[:12]).sha256 == info.sha256
    import app.core.models.registry as registry

    monkeypatch.setattr(registry, "sha256_file", lambda *a, **k: pytest.fail("re-hashed an unchanged file"))
    assert Registry(paths).resolve(info.sha256[:12]).sha256 == info.sha256


def test_import_refuses_a_gguf_llama_cpp_cannot_load(tmp_path):
    """Issue 9.14: gguf-py reads this header, but it has no vocabulary: llama.cpp cannot load it."""
    paths = Paths(tmp_path / "d", tmp_path / "c")
    toy = _write_gguf(tmp_path / "toy.gguf", arch="llama")
    read_gguf(toy)
    with pytest.raises(ModelError, match=r"llama\.cpp cannot load"):
        Registry(paths).import_model(toy)
    assert Registry(paths).list() == []


def test_unknown_prompt_style_is_refused_and_reimport_repairs_a_stored_one(tmp_path, tiny_llama_gguf):  # noqa: F811
    """Issue 9.6."""
    paths = Paths(tmp_path / "d", tmp_path / "c")
    model = _loadable(tmp_path, tiny_llama_gguf)
    with pytest.raises(UsageError, match="unknown prompt style 'nosuch'; known styles: "):
        Registry(paths).import_model(model, prompt_style="nosuch")
    assert not paths.registry_file.exists()
    info = Registry(paths).import_model(model)
    saved = json.loads(paths.registry_file.read_text())
    saved["models"][0]["style_override"] = "nosuch"  # what an older version let in
    paths.registry_file.write_text(json.dumps(saved))
    assert Registry(paths).import_model(model).prompt_style == info.prompt_style == "asclepius"
    assert json.loads(paths.registry_file.read_text())["models"][0]["style_override"] == ""
