"""Write a random-weights LLaMA checkpoint with a real model's shape (fp16 safetensors, sharded).

    .venv/bin/python tests/bench/make_llama_fixture.py --shape 7b --out /tmp/asclepius-bench/llama7b-hf

For benchmarks only: the weights are noise, so the model's text is meaningless, but every byte the
converter and llama.cpp move is real. The tokenizer is a SentencePiece model trained on the shared notes
(4,000 pieces; the converter pads the vocabulary to the embedding's 32,000 rows, as it does for any
checkpoint whose embedding was resized). Written outside the repository: a 7B checkpoint is ~13.5 GB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHAPES = {
    # TinyLlama-1.1B (LLaMA architecture, grouped-query attention), LLaMA-7B, LLaMA-13B.
    "1b": dict(
        hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4
    ),
    "7b": dict(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32
    ),
    "13b": dict(
        hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40
    ),
}
VOCAB = 32000
SHARD_BYTES = 2 << 30  # 2 GiB shards, like save_pretrained's usual max_shard_size


def tensor_shapes(s: dict) -> list[tuple[str, tuple[int, ...]]]:
    h, f, kv = s["hidden_size"], s["intermediate_size"], s["num_key_value_heads"]
    hd = h // s["num_attention_heads"]
    out = [("model.embed_tokens.weight", (VOCAB, h))]
    for i in range(s["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "self_attn.q_proj.weight", (h, h)),
            (p + "self_attn.k_proj.weight", (kv * hd, h)),
            (p + "self_attn.v_proj.weight", (kv * hd, h)),
            (p + "self_attn.o_proj.weight", (h, h)),
            (p + "mlp.gate_proj.weight", (f, h)),
            (p + "mlp.up_proj.weight", (f, h)),
            (p + "mlp.down_proj.weight", (h, f)),
            (p + "input_layernorm.weight", (h,)),
            (p + "post_attention_layernorm.weight", (h,)),
        ]
    return [*out, ("model.norm.weight", (h,)), ("lm_head.weight", (VOCAB, h))]


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    from tests.fixtures_llama import train_sentencepiece

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shape = SHAPES[args.shape]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_sentencepiece(out, vocab_size=4000, n_texts=1400)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float16",
        **shape,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    gen = torch.Generator().manual_seed(args.seed)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    weight_map: dict[str, str] = {}
    names = tensor_shapes(shape)
    total = sum(2 * torch.Size(s).numel() for _, s in names)
    n_shards = -(-total // SHARD_BYTES)
    written = 0

    def flush(i: int) -> None:
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        save_file(shards[-1], str(out / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shards[-1], fname))
        shards[-1] = {}

    for name, s in names:
        if len(s) == 1:
            t = torch.ones(s, dtype=torch.float16)
        else:
            # std 0.02: LLaMA's init; large enough that activations are not all zero, small enough to stay finite.
            t = (torch.randn(s, generator=gen) * 0.02).to(torch.float16)
        if size + 2 * t.numel() > SHARD_BYTES and shards[-1]:
            flush(len(set(weight_map.values())))
            size = 0
        shards[-1][name] = t
        size += 2 * t.numel()
        written += 2 * t.numel()
        print(f"\r{written / 1e9:6.2f} / {total / 1e9:.2f} GB", end="", file=sys.stderr)
    flush(len(set(weight_map.values())))
    actual = len(set(weight_map.values()))
    if actual != n_shards:  # names were planned with n_shards; rename to the real count
        for i in range(actual):
            old = out / f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
            new = out / f"model-{i + 1:05d}-of-{actual:05d}.safetensors"
            old.rename(new)
        weight_map = {k: v.replace(f"-of-{n_shards:05d}", f"-of-{actual:05d}") for k, v in weight_map.items()}
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    print(f"\n{out}: {total / 1e9:.2f} GB in {actual} shards, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
