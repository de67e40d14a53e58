"""Issue #21 for ``quantize``: checkpoints and their files checked before any work, one message each.

The bad-input table (tests/reliability/cases_numbers.py) holds what one command line can show; these tests
need a real converted model, a look at what transformers was asked, or a file no command line can build.
"""

from __future__ import annotations

import argparse
import json

import pytest

from quantize import cli
from quantize.checkpoint import read_safetensors_header
from quantize.errors import QuantizeError


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="asclepius")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_verify_of_a_missing_checkpoint_never_asks_the_hub(tiny_llama_gguf, tmp_path, monkeypatch, capsys):
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked: list[object] = []
    for loader in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        monkeypatch.setattr(loader, "from_pretrained", lambda *a, **kw: asked.append(a))
    notes = tmp_path / "n.txt"
    notes.write_text("BP 120/80, HR 72.")
    missing = tmp_path / "no-such-dir"
    rc = run(["quantize", "verify", str(tiny_llama_gguf), "--checkpoint", str(missing), "--notes", str(notes)])
    assert rc == 4
    assert f"no such checkpoint: {missing} does not exist" in capsys.readouterr().err
    assert asked == [], "transformers was never asked (it would have tried the hub)"


def test_verify_of_another_checkpoint_fails_without_decoding(tiny_llama_gguf, tiny_checkpoint, tmp_path, monkeypatch):
    """A Llama-3 vocabulary (705 tokens) against a 512-token GGUF: llama.cpp refused the ids (llama_decode -1,
    exit 1); now the shapes are compared first and the file fails, named, with exit 4."""
    from quantize import verify

    def never(*a, **kw):
        raise AssertionError("no prompt may be evaluated against a file of another shape")

    monkeypatch.setattr(verify, "verify_numerics", never)
    notes = tmp_path / "n.txt"
    notes.write_text("BP 120/80, HR 72.")
    ckpt = tiny_checkpoint("llama3")
    rc, text = _run_out(["quantize", "verify", str(tiny_llama_gguf), "--checkpoint", str(ckpt), "--notes", str(notes)])
    assert rc == 4
    assert f"tiny-llama-f32.gguf: not converted from the checkpoint {ckpt}" in text
    assert "in the checkpoint, 512 in the file" in text and "verify: FAIL" in text


def _run_out(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = run(argv)
    return rc, buf.getvalue()


def test_a_deeply_nested_safetensors_header_is_a_damaged_file(tmp_path):
    header = b"[" * 100_000 + b"]" * 100_000
    f = tmp_path / "model.safetensors"
    f.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(QuantizeError, match=r"model\.safetensors: damaged safetensors header \(nested too deeply\)"):
        read_safetensors_header(f)


@pytest.mark.parametrize("index", ["[]", '{"weight_map": [1]}', "[" * 100_000])
def test_a_shard_index_that_is_not_a_weight_map(tmp_path, index):
    from quantize.checkpoint import checkpoint_files

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(QuantizeError, match=r"weight_map|not a readable shard index"):
        checkpoint_files(tmp_path)


BASE = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({**BASE, "num_attention_heads": 0}, "num_attention_heads must be a whole number 1.."),
        ({**BASE, "num_attention_heads": True}, "num_attention_heads must be a whole number"),
        ({**BASE, "num_attention_heads": "4"}, "num_attention_heads must be a whole number"),
        ({**BASE, "num_attention_heads": 4, "num_key_value_heads": 3}, "do not divide evenly"),
        ({**BASE, "num_attention_heads": 4, "hidden_size": 2**40}, "hidden_size must be a whole number 1.."),
        ({"num_attention_heads": 4}, "lacks vocab_size, hidden_size, intermediate_size, num_hidden_layers"),
        ([BASE], "must be a JSON object of settings, not a JSON list"),
    ],
)
def test_config_dims_refuses_what_no_model_has(config, fragment):
    from quantize.arch import config_dims

    with pytest.raises(QuantizeError, match=fragment):
        config_dims(json.loads(json.dumps(config)))


def test_config_dims_defaults_kv_heads_to_heads():
    from quantize.arch import config_dims

    assert config_dims({**BASE, "num_attention_heads": 4})["num_key_value_heads"] == 4
