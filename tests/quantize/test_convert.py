"""Each tiny checkpoint style converts, loads in llama.cpp, and computes what transformers computes."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from quantize import convert as convert_mod
from quantize import stream as stream_mod
from quantize.convert import ConvertOptions, convert_checkpoint
from quantize.gguf_io import KEY_SOURCE_FILES, KEY_SOURCE_SHA256, inspect_gguf
from quantize.verify import TOLERANCES, load_llama, tokenizer_parity, verify_numerics
from resources.prompts import KEY_PROMPT_STYLE
from tests.fixtures_llama import SPECS

CASES = [
    # style, weight format, shards, source dtype, old-style inv_freq buffers
    ("llama1", "safetensors", 1, "float32", False),
    ("llama1", "bin", 2, "float32", True),
    ("mistral", "safetensors", 2, "float32", False),
    ("mistral", "bin", 1, "float16", False),
    ("llama3", "safetensors", 1, "float32", False),
    ("llama3", "bin", 3, "float32", False),
]


@pytest.mark.parametrize(("style", "fmt", "shards", "dtype", "inv_freq"), CASES)
def test_converts_loads_and_matches_hf(
    tiny_checkpoint, hf_cache, few_notes, tmp_path, style, fmt, shards, dtype, inv_freq
):
    ckpt = tiny_checkpoint(style, fmt, shards, dtype, inv_freq)
    out = tmp_path / "m.gguf"
    out_type = "f32" if dtype == "float32" else "f16"
    res = convert_checkpoint(ConvertOptions(ckpt, out, out_type=out_type))
    spec = SPECS[style]
    meta = inspect_gguf(out).metadata
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == spec.context
    assert meta["llama.attention.head_count"] == spec.n_heads
    assert meta["llama.attention.head_count_kv"] == spec.n_kv_heads
    assert meta["llama.rope.freq_base"] == pytest.approx(spec.rope_theta)
    assert meta[KEY_PROMPT_STYLE] == "asclepius"
    # 9 tensors per layer + embedding, final norm, lm_head; inv_freq buffers are not weights.
    assert res.n_tensors == 9 * spec.layers + 3
    assert not any("rotary" in name or "inv_freq" in name for name, *_ in inspect_gguf(out).tensors)
    assert sorted(meta[KEY_SOURCE_FILES]) == sorted(f.name for f in _sources(ckpt))
    assert all(len(h) == 64 for h in meta[KEY_SOURCE_SHA256])

    model, tok = hf_cache(ckpt)
    assert meta["tokenizer.ggml.bos_token_id"] == tok.bos_token_id
    assert meta["tokenizer.ggml.eos_token_id"] == tok.eos_token_id
    report = verify_numerics(ckpt, out, few_notes, max_tokens=96, hf=(model, tok), greedy_tokens=16)
    assert report.ok, report.format()
    assert report.worst <= TOLERANCES["ALL_F32" if out_type == "f32" else "MOSTLY_F16"]


def _sources(ckpt: Path) -> list[Path]:
    names = {"config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"}
    return [p for p in ckpt.iterdir() if p.name in names or p.suffix in (".safetensors", ".bin")]


def test_llama1_special_ids_come_from_the_tokenizer(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("llama1")
    res = convert_checkpoint(ConvertOptions(ckpt, tmp_path / "m.gguf", out_type="f32"))
    meta = inspect_gguf(tmp_path / "m.gguf").metadata
    # config.json carries LLaMA-1's wrong ids (BOS 0, EOS 1); SentencePiece says 1 and 2.
    assert (meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert any("bos_token_id=0" in n for n in res.notes)
    assert meta["tokenizer.ggml.model"] == "llama"
    assert meta["tokenizer.ggml.add_bos_token"] is True


def test_llama3_bpe_metadata(tiny_checkpoint, tmp_path):
    convert_checkpoint(ConvertOptions(tiny_checkpoint("llama3"), tmp_path / "m.gguf", out_type="f32"))
    meta = inspect_gguf(tmp_path / "m.gguf").metadata
    assert meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["tokenizer.ggml.pre"] == "llama-bpe"
    assert len(meta["tokenizer.ggml.merges"]) > 100
    assert meta["tokenizer.ggml.tokens"][meta["tokenizer.ggml.bos_token_id"]] == "<|begin_of_text|>"


def test_auto_type_and_1d_tensors_in_f32(tiny_checkpoint, tmp_path):
    f32 = convert_checkpoint(ConvertOptions(tiny_checkpoint("mistral"), tmp_path / "a.gguf"))
    bf16 = convert_checkpoint(ConvertOptions(tiny_checkpoint("mistral", dtype="bfloat16"), tmp_path / "b.gguf"))
    assert (f32.out_type, bf16.out_type) == ("f16", "bf16")
    for path, big in ((tmp_path / "a.gguf", "F16"), (tmp_path / "b.gguf", "BF16")):
        ins = inspect_gguf(path)
        for name, ttype, shape, _ in ins.tensors:
            assert ttype == ("F32" if len(shape) == 1 else big), name
    ft = inspect_gguf(tmp_path / "b.gguf").metadata["general.file_type"]
    assert ft == gguf.LlamaFileType.MOSTLY_BF16


def test_bf16_source_matches_hf(tiny_checkpoint, hf_cache, few_notes, tmp_path):
    ckpt = tiny_checkpoint("llama1", dtype="bfloat16")
    convert_checkpoint(ConvertOptions(ckpt, tmp_path / "m.gguf"))
    report = verify_numerics(
        ckpt, tmp_path / "m.gguf", few_notes[:1], max_tokens=64, hf=hf_cache(ckpt), greedy_tokens=16
    )
    assert report.file_type == "MOSTLY_BF16"
    assert report.ok, report.format()


def test_without_the_rotary_permutation_logits_diverge(tiny_checkpoint, hf_cache, few_notes, tmp_path, monkeypatch):
    """The numerics check can fail: skip the Q/K permutation and the same comparison must reject the file."""
    ckpt = tiny_checkpoint("llama1")
    monkeypatch.setattr(convert_mod, "permute_qk", lambda t, n: t)  # the .bin path
    monkeypatch.setattr(stream_mod, "interleave_rotary_halves", lambda rows, *a: rows)  # the safetensors path
    convert_checkpoint(ConvertOptions(ckpt, tmp_path / "bad.gguf", out_type="f32"))
    report = verify_numerics(
        ckpt, tmp_path / "bad.gguf", few_notes[:1], max_tokens=64, hf=hf_cache(ckpt), greedy_tokens=8
    )
    assert not report.ok
    assert report.worst > 100 * TOLERANCES["ALL_F32"]


@pytest.mark.parametrize("style", ["llama1", "mistral", "llama3"])
def test_tokenizer_parity_on_every_note(tiny_checkpoint, hf_cache, tmp_path, style):
    from quantize.notes import load_notes

    ckpt = tiny_checkpoint(style)
    convert_checkpoint(ConvertOptions(ckpt, tmp_path / "m.gguf", out_type="f16"))
    notes = load_notes()
    assert len(notes) > 1000
    report = tokenizer_parity(hf_cache(ckpt)[1], tmp_path / "m.gguf", notes)
    assert report.ok, report.format(hf_cache(ckpt)[1])
    assert report.n_tokens > 100_000


def test_tokenizer_parity_catches_a_different_tokenizer(tiny_checkpoint, hf_cache, tmp_path):
    """Parity must fail when the GGUF's vocabulary is not the HF tokenizer's (here: another style's)."""
    from quantize.notes import load_notes

    convert_checkpoint(ConvertOptions(tiny_checkpoint("llama3"), tmp_path / "other.gguf", out_type="f16"))
    report = tokenizer_parity(hf_cache(tiny_checkpoint("llama1"))[1], tmp_path / "other.gguf", load_notes(limit=20))
    assert not report.ok
    assert len(report.mismatches) == 20


def test_converted_model_generates_in_llama_cpp(tiny_checkpoint, tmp_path):
    convert_checkpoint(ConvertOptions(tiny_checkpoint("mistral"), tmp_path / "m.gguf", out_type="f16"))
    llm = load_llama(tmp_path / "m.gguf", n_ctx=256, logits_all=False)
    assert llm.n_vocab() == 512
    out = llm.create_completion("Patient is a 45-year-old", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
