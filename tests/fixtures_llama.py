"""Tiny LLaMA-family checkpoints built in the test session, and a converted tiny-LLaMA GGUF fixture.

Everything is built here from random weights and from tokenizers trained on a few notes in
``shared/data/notes``: nothing is downloaded. Shapes are tiny (2 layers, hidden 64) so a checkpoint builds
and converts in well under a second, but the layout is the real one (HF tensor names, rotary layout,
grouped-query attention, SentencePiece byte fallback, Llama-3 byte-level BPE with its pre-tokenizer).

The root conftest imports ``tiny_llama_gguf`` from here so every test can run a real LLaMA-architecture
model with the Asclepius prompt style in llama.cpp.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from quantize.notes import load_notes

Style = Literal["llama1", "mistral", "llama3"]
WeightFormat = Literal["safetensors", "bin"]

LLAMA3_PRETOKENIZER_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
"""The split regex of the Llama-3 tokenizer (what llama.cpp calls the ``llama-bpe`` pre-tokenizer)."""

LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")

SEED = 1234


@dataclass(frozen=True)
class TinySpec:
    """One tiny architecture variant; the numbers are the smallest that keep every code path honest."""

    style: Style
    n_heads: int
    n_kv_heads: int
    context: int
    rope_theta: float
    hidden: int = 64
    """64 / 4 heads = head_dim 16: even (rotary pairs) and > 2 so a wrong Q/K permutation shows."""
    intermediate: int = 128
    layers: int = 2


SPECS: dict[Style, TinySpec] = {
    "llama1": TinySpec("llama1", n_heads=4, n_kv_heads=4, context=2048, rope_theta=10000.0),
    "mistral": TinySpec("mistral", n_heads=4, n_kv_heads=2, context=4096, rope_theta=1_000_000.0),
    "llama3": TinySpec("llama3", n_heads=4, n_kv_heads=2, context=8192, rope_theta=500_000.0),
}


def training_texts(n: int = 300) -> list[str]:
    """The first ``n`` notes: enough text for a few hundred merges, quick to train on."""
    return [text for _, text in load_notes(limit=n)]


def train_sentencepiece(out_dir: Path, vocab_size: int = 512, n_texts: int = 300) -> Path:
    """A LLaMA-style SentencePiece BPE model: unk 0, BOS 1, EOS 2, byte fallback, digits split,
    whitespace kept as is (LLaMA's ``tokenizer.model`` does not collapse whitespace runs either)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_texts(n_texts)),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        max_sentence_length=1 << 20,
        minloglevel=2,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(buf.getvalue())
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    # Real LLaMA/Mistral checkpoints ship the fast tokenizer.json beside tokenizer.model; transformers
    # picks its tokenizer class from config.json's model_type, and for ``mistral`` it would otherwise
    # rebuild the SentencePiece model without the dummy prefix space.
    from transformers import LlamaTokenizer

    LlamaTokenizer.from_pretrained(out_dir).save_pretrained(out_dir)
    return out_dir / "tokenizer.model"


def train_llama3_bpe(out_dir: Path, vocab_size: int = 700, n_texts: int = 300) -> int:
    """A Llama-3-style byte-level BPE ``tokenizer.json``; returns the total vocabulary size."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PRETOKENIZER_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(training_texts(n_texts), trainer)
    tok.add_special_tokens(list(LLAMA3_SPECIALS))
    bos = tok.token_to_id(LLAMA3_SPECIALS[0])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{LLAMA3_SPECIALS[0]} $A",
        pair=f"{LLAMA3_SPECIALS[0]} $A {LLAMA3_SPECIALS[0]} $B",
        special_tokens=[(LLAMA3_SPECIALS[0], bos)],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": LLAMA3_SPECIALS[0],
        "eos_token": LLAMA3_SPECIALS[1],
        "model_max_length": 8192,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tok.get_vocab_size(with_added_tokens=True)


def write_state_dict(
    state: dict, out_dir: Path, fmt: WeightFormat, shards: int = 1, metadata: dict | None = None
) -> list[Path]:
    """Write ``state`` the way ``save_pretrained`` does: one file, or ``shards`` files plus an index."""
    import torch
    from safetensors.torch import save_file

    names = list(state)
    per = -(-len(names) // shards)
    groups = [names[i : i + per] for i in range(0, len(names), per)]
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    files = []
    weight_map = {}
    for i, group in enumerate(groups):
        fname = f"{stem}.{ext}" if len(groups) == 1 else f"{stem}-{i + 1:05d}-of-{len(groups):05d}.{ext}"
        part = {k: state[k].contiguous() for k in group}
        if fmt == "safetensors":
            save_file(part, str(out_dir / fname), metadata={"format": "pt", **(metadata or {})})
        else:
            torch.save(part, out_dir / fname)
        files.append(out_dir / fname)
        weight_map.update(dict.fromkeys(group, fname))
    if len(groups) > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / f"{stem}.{ext}.index.json").write_text(json.dumps(index, indent=2))
    return files


def build_tiny_checkpoint(
    out_dir: Path,
    style: Style = "llama1",
    fmt: WeightFormat = "safetensors",
    shards: int = 1,
    dtype: str = "float32",
    with_inv_freq: bool = False,
    seed: int = SEED,
) -> Path:
    """A random-weights HF checkpoint of the given style; deterministic for a given seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    spec = SPECS[style]
    out_dir.mkdir(parents=True, exist_ok=True)
    if style == "llama3":
        vocab_size = train_llama3_bpe(out_dir)
        bos, eos = vocab_size - len(LLAMA3_SPECIALS), vocab_size - len(LLAMA3_SPECIALS) + 1
    else:
        train_sentencepiece(out_dir)
        vocab_size, bos, eos = 512, 1, 2
    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_kv_heads,
        max_position_embeddings=spec.context,
        rope_theta=spec.rope_theta,
        rms_norm_eps=1e-5 if style != "llama1" else 1e-6,
        tie_word_embeddings=False,
        # 0.02 (the HF default) gives near-flat logits on a 64-wide model, so a greedy argmax would
        # turn on noise; 0.08 gives top-1 margins that a correct conversion keeps.
        initializer_range=0.08,
        bos_token_id=bos,
        eos_token_id=eos,
    )
    if style == "llama1":
        # Original LLaMA-1 HF configs carry these wrong ids; the converter must trust the tokenizer.
        common.update(bos_token_id=0, eos_token_id=1)
    torch.manual_seed(seed)
    if style == "mistral":
        config = MistralConfig(sliding_window=None, **common)
        model = MistralForCausalLM(config)
    else:
        config = LlamaConfig(**common)
        model = LlamaForCausalLM(config)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    config.dtype = torch_dtype
    config.architectures = [type(model).__name__]
    config.save_pretrained(out_dir)
    state = {k: v.detach().to(torch_dtype).clone() for k, v in model.state_dict().items()}
    if with_inv_freq:
        # Checkpoints saved by transformers < 4.31 carry these buffers; they are not weights.
        head_dim = spec.hidden // spec.n_heads
        inv = 1.0 / (spec.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        for i in range(spec.layers):
            state[f"model.layers.{i}.self_attn.rotary_emb.inv_freq"] = inv.clone()
    write_state_dict(state, out_dir, fmt, shards)
    return out_dir


def build_tiny_llama_gguf(out_dir: Path, out_type: str = "f32") -> Path:
    """A tiny LLaMA-1-style GGUF (SentencePiece vocab 512, BOS 1, EOS 2, context 2048, prompt style
    ``asclepius``) converted through ``quantize.convert``; takes about a second."""
    from quantize.convert import ConvertOptions, convert_checkpoint

    ckpt = build_tiny_checkpoint(out_dir / "tiny-llama-hf", "llama1")
    out = out_dir / f"tiny-llama-{out_type}.gguf"
    convert_checkpoint(ConvertOptions(ckpt, out, out_type=out_type, name="tiny-llama", prompt_style="asclepius"))
    return out


@pytest.fixture(scope="session")
def tiny_llama_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a converted tiny LLaMA GGUF (F32) with the Asclepius prompt style in its metadata.
    Skips (rather than errors) where the quantize extra is not installed, since building it needs torch."""
    for module in ("torch", "transformers", "sentencepiece", "safetensors"):
        pytest.importorskip(module, reason="building the tiny LLaMA GGUF needs the quantize extra")
    return build_tiny_llama_gguf(tmp_path_factory.mktemp("tiny-llama"))
