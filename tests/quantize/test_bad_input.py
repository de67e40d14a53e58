"""Every bad input gets a specific message and leaves nothing half-written behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantize.convert import ConvertOptions, convert_checkpoint
from quantize.errors import QuantizeError
from quantize.gguf_io import inspect_gguf
from quantize.stream import TensorDataWriter
from tests.fixtures_llama import write_state_dict


@pytest.fixture
def ckpt(tiny_checkpoint, tmp_path) -> Path:
    """A private copy of the tiny LLaMA checkpoint that a test may damage."""
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("llama1"), dst)
    return dst


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".gguf") or ".partial-" in p.name)


def _convert(ckpt: Path, out: Path, **kw) -> None:
    convert_checkpoint(ConvertOptions(ckpt, out, out_type="f32", **kw))


def test_missing_config(ckpt, tmp_path):
    (ckpt / "config.json").unlink()
    with pytest.raises(QuantizeError, match=r"config\.json is missing"):
        _convert(ckpt, tmp_path / "o.gguf")
    assert _leftovers(tmp_path) == []


def test_missing_tokenizer(ckpt, tmp_path):
    (ckpt / "tokenizer.model").unlink()
    (ckpt / "tokenizer.json").unlink()
    with pytest.raises(QuantizeError, match=r"no tokenizer: expected tokenizer\.model"):
        _convert(ckpt, tmp_path / "o.gguf")
    assert _leftovers(tmp_path) == []


def test_unsupported_architecture_lists_supported(ckpt, tmp_path):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuantizeError) as exc:
        _convert(ckpt, tmp_path / "o.gguf")
    msg = str(exc.value)
    assert "unsupported architecture: GPT2LMHeadModel" in msg
    assert "LlamaForCausalLM" in msg and "MistralForCausalLM" in msg
    assert _leftovers(tmp_path) == []


def test_shapes_inconsistent_with_config(ckpt, tmp_path):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["intermediate_size"] = 256  # the weights were built with 128
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(QuantizeError) as exc:
        _convert(ckpt, tmp_path / "o.gguf")
    msg = str(exc.value)
    assert "model.layers.0.mlp.up_proj.weight: shape [128, 64] but config.json implies [256, 64]" in msg
    assert _leftovers(tmp_path) == []


def test_missing_layer_tensor(ckpt, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(ckpt / "model.safetensors"))
    del state["model.layers.1.mlp.down_proj.weight"]
    write_state_dict(state, ckpt, "safetensors")
    with pytest.raises(QuantizeError, match=r"found 17 per-layer tensors; config\.json.s 2 layers need 18"):
        _convert(ckpt, tmp_path / "o.gguf")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf_names_the_tensor_and_removes_the_partial(ckpt, tmp_path, bad):
    from safetensors.torch import load_file

    state = load_file(str(ckpt / "model.safetensors"))
    state["model.layers.1.self_attn.v_proj.weight"][3, 5] = bad
    write_state_dict(state, ckpt, "safetensors")
    out = tmp_path / "out" / "o.gguf"
    with pytest.raises(QuantizeError, match=r"model\.layers\.1\.self_attn\.v_proj\.weight \(blk\.1\.attn_v\.weight\)"):
        _convert(ckpt, out)
    assert _leftovers(out.parent) == []


def test_output_exists_needs_force(ckpt, tmp_path):
    out = tmp_path / "o.gguf"
    out.write_bytes(b"precious")
    with pytest.raises(QuantizeError, match="already exists; pass --force"):
        _convert(ckpt, out)
    assert out.read_bytes() == b"precious"
    _convert(ckpt, out, force=True)
    assert inspect_gguf(out).metadata["general.architecture"] == "llama"


def test_input_already_gguf(tiny_llama_gguf, tmp_path):
    with pytest.raises(QuantizeError, match="is already a GGUF file"):
        _convert(tiny_llama_gguf, tmp_path / "o.gguf")
    renamed = tmp_path / "model.bin"  # a GGUF under another name is still recognised by its magic
    shutil.copy(tiny_llama_gguf, renamed)
    with pytest.raises(QuantizeError, match="is already a GGUF file"):
        _convert(renamed, tmp_path / "o.gguf")


def test_disk_full_while_writing_removes_the_temp_file(ckpt, tmp_path, monkeypatch):
    real = TensorDataWriter.end_tensor
    calls = {"n": 0}

    def failing(self, nbytes):
        calls["n"] += 1
        if calls["n"] == 5:  # fail mid-file, after real bytes were written
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, nbytes)

    monkeypatch.setattr(TensorDataWriter, "end_tensor", failing)
    with pytest.raises(QuantizeError, match=r"disk full while writing o\.gguf; the partial file was removed"):
        _convert(ckpt, tmp_path / "o.gguf")
    assert calls["n"] == 5
    assert _leftovers(tmp_path) == []


def test_not_enough_free_space_is_refused_up_front(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 1000, 1000))
    with pytest.raises(QuantizeError, match="not enough disk space"):
        _convert(ckpt, tmp_path / "o.gguf")
    assert _leftovers(tmp_path) == []


def test_interrupt_leaves_nothing_and_rerun_works(ckpt, tmp_path, monkeypatch):
    real = TensorDataWriter.end_tensor

    def interrupted(self, nbytes):
        real(self, nbytes)
        raise KeyboardInterrupt

    monkeypatch.setattr(TensorDataWriter, "end_tensor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _convert(ckpt, tmp_path / "o.gguf")
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    _convert(ckpt, tmp_path / "o.gguf")
    assert _leftovers(tmp_path) == ["o.gguf"]


def test_killed_run_leftover_is_not_a_gguf_and_rerun_cleans_it(ckpt, tmp_path):
    """SIGKILL mid-write: the partial file has a name no one takes for a model; the next run removes it."""
    out = tmp_path / "o.gguf"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from quantize.convert import ConvertOptions, convert_checkpoint\n"
        "from quantize.stream import TensorDataWriter\n"
        "real = TensorDataWriter.end_tensor\n"
        "n = [0]\n"
        "def w(self, nbytes):\n"
        "    n[0] += 1\n"
        "    if n[0] == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, nbytes)\n"
        "TensorDataWriter.end_tensor = w\n"
        f"convert_checkpoint(ConvertOptions(Path({str(ckpt)!r}), Path({str(out)!r}), out_type='f32'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=False)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    left = _leftovers(tmp_path)
    assert not out.exists()
    assert len(left) == 1 and left[0].startswith(".o.gguf.partial-")
    _convert(ckpt, out)
    assert _leftovers(tmp_path) == ["o.gguf"]


def test_bad_output_type_and_prompt_style_are_reported_together(ckpt, tmp_path):
    with pytest.raises(QuantizeError) as exc:
        ConvertOptions(ckpt, tmp_path / "o.bin", out_type="q4", prompt_style="nope")
    msg = str(exc.value)
    assert "output type 'q4'" in msg and "unknown prompt style 'nope'" in msg and "should end in .gguf" in msg
