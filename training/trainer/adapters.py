"""LoRA and QLoRA (PEFT, bitsandbytes): the model a recipe trains, its checkpoints and its memory plan.

With ``adapter: lora`` the base is frozen and low-rank pairs (A: r x in, B: out x r, B initialised to zero)
are added to the recipe's ``lora.target_modules``; only they are trained, and the optimizer holds only them.
``qlora`` loads the frozen base in 4 bits (bitsandbytes NF4, CUDA only) with the same adapters on top.

* Resumable checkpoints hold the adapter, not the frozen base: accelerate's save/load hooks cut the model's
  state dict to the trainable tensors (and check, on loading, that it is exactly them), while the optimizer,
  scheduler, RNG and counters are saved as for full fine-tuning. Under FSDP/DeepSpeed accelerate writes the
  model its own way (sharded), and the hooks stay out of it.
* The run's output is the merged checkpoint (``model/``) with the adapter in ``model/adapter/``
  (``adapter_config.json``, ``adapter_model.safetensors``; a subfolder, because transformers would load a
  folder holding ``adapter_config.json`` as an adapter). The merge reloads the base in fp32 on the CPU and
  folds the adapter in through ``quantize.adapter`` (the one merge, also behind ``quantize convert
  --adapter``). For QLoRA it uses the full-precision base, not its 4-bit copy: GGUF conversion needs float
  weights, and the adapter's correction was learned on the dequantized ones, so the merged model differs from
  the trained one by the base's quantization error.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from training.trainer.recipe import LoraSettings, Recipe

ADAPTER_DIR = "adapter"
"""The adapter's subfolder in each checkpoint folder the run writes (``model/adapter``)."""
PEFT_MESSAGE = "pip install 'asclepius-desk[train]' (or: pip install peft)"

NF4_BITS = 4
BLOCK = 64
"""bitsandbytes' 4-bit block size: one scale per 64 weights."""
SCALE_BYTES = {True: 1 / BLOCK + 4 / (BLOCK * 256), False: 4 / BLOCK}
"""Bytes of scales per quantized weight: double quantization stores each block's scale in 8 bits (plus one
fp32 scale per 256 blocks); without it every block's scale is fp32."""


class AdapterError(ValueError):
    """An adapter cannot be trained here (no CUDA for qlora, peft or bitsandbytes missing, an unsupported
    launch); raised before the model loads. A ValueError: the CLI exits 2."""


def check_adapter(recipe: Recipe, cuda: bool) -> None:
    """Refuse what cannot run, before anything loads. QLoRA first: bitsandbytes' 4-bit layers have no CPU
    kernels, and that is the one thing a CPU user needs to hear."""
    if recipe.adapter == "none":
        return
    if recipe.adapter == "qlora":
        if not cuda:
            raise AdapterError(
                "adapter qlora needs a CUDA GPU (bitsandbytes' 4-bit weights have no CPU kernels); "
                "on this machine use --set adapter=lora"
            )
        if _launched_sharded():
            raise AdapterError(
                "adapter qlora runs on one GPU or under DDP (torchrun); FSDP and DeepSpeed would need the "
                "4-bit weights stored in a shardable dtype, which this trainer does not set up"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise AdapterError("adapter qlora needs bitsandbytes on a CUDA machine: pip install bitsandbytes")
    if importlib.util.find_spec("peft") is None:
        raise AdapterError(f"adapter {recipe.adapter} needs peft: {PEFT_MESSAGE}")


def _launched_sharded() -> bool:
    env = os.environ
    return any(env.get(k, "false").lower() == "true" for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))


def load_model(recipe: Recipe, model_dir: Path, attn: str, mixed_precision: str, device_index: int) -> Any:
    """The model to train: the full model in fp32 (master weights), or a frozen base with adapters.

    LoRA's frozen base is held in the compute dtype (bf16 under bf16 mixed precision: nothing updates it,
    so fp32 master weights would only cost memory); the adapters are fp32 (PEFT upcasts them)."""
    import torch
    from transformers import AutoModelForCausalLM

    check_adapter(recipe, torch.cuda.is_available())
    if recipe.adapter == "none":
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attn)
    kwargs: dict[str, Any] = {"attn_implementation": attn}
    if recipe.adapter == "qlora":
        from transformers import BitsAndBytesConfig

        compute = getattr(torch, recipe.lora.compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=recipe.lora.quant_type,
            bnb_4bit_use_double_quant=recipe.lora.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
        kwargs.update(dtype=compute, device_map={"": device_index})
    else:
        kwargs["dtype"] = torch.bfloat16 if mixed_precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if recipe.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        # Checkpointing is switched on by the loop (non-reentrant), as for the other paths.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return with_lora(model, recipe.lora)


def with_lora(model: Any, lora: LoraSettings) -> Any:
    """``model`` frozen, with the recipe's adapters (a ``PeftModel``); an unknown target module is an
    AdapterError naming it."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise AdapterError(f"lora.target_modules {list(lora.target_modules)}: {exc}") from None


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; PEFT counts a 4-bit weight as the parameters it packs, not its bytes."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def describe_parameters(model: Any) -> str:
    trainable, total = parameter_counts(model)
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.3f}%)"


def install_checkpoint_hooks(acc: Any, model: Any, recipe: Recipe) -> None:
    """Checkpoints of an adapter run hold the trainable tensors only (a 7B base would add 13-27 GB to each).

    Not under FSDP/DeepSpeed: accelerate saves those models through their own sharded writers, which the
    hooks never see."""
    from accelerate.utils import DistributedType

    if recipe.adapter == "none" or acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return
    names = {n for n, p in model.named_parameters() if p.requires_grad}

    def save_hook(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
        for i, sd in enumerate(weights):
            weights[i] = {k: v for k, v in sd.items() if k in names}

    def load_hook(models: list[Any], input_dir: str) -> None:
        from safetensors.torch import load_file

        path = Path(input_dir) / "model.safetensors"
        state = load_file(str(path))
        if set(state) != names:
            raise AdapterError(f"{path} does not hold this run's adapter tensors (another adapter or recipe?)")
        for m in models:
            m.load_state_dict(state, strict=False)  # strict=False: the frozen base is not in the file
        models.clear()  # loaded here; accelerate would load them again, strictly, and fail on the base

    acc.register_save_state_pre_hook(save_hook)
    acc.register_load_state_pre_hook(load_hook)


def save_adapter(unwrapped: Any, state_dict: dict[str, Any], out: Path) -> Path:
    """``adapter_config.json`` + ``adapter_model.safetensors`` from the gathered state dict (the main process
    only); the config's base path is the directory trained from."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    unwrapped.save_pretrained(str(out), state_dict=state_dict, safe_serialization=True)
    return out


def merged_model(base_dir: Path, adapter_dir: Path) -> Any:
    """The base with the adapter merged in (fp32, CPU): what ``model/`` and conversion get."""
    from quantize.adapter import merge_adapter

    return merge_adapter(base_dir, adapter_dir)


# -- memory plan (``train plan``) ------------------------------------------------------------------------


def module_dims(shape: Any) -> dict[str, tuple[int, int]]:
    """(in, out) features of each linear layer of a LLaMA/Mistral decoder layer."""
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    return {
        "q_proj": (h, h),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (h, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }


def _targets(shape: Any, lora: LoraSettings) -> list[tuple[int, int]]:
    dims = module_dims(shape)
    unknown = sorted(set(lora.target_modules) - set(dims))
    if unknown:
        raise ValueError(f"train plan knows the LLaMA projections only ({', '.join(dims)}), not {', '.join(unknown)}")
    return [dims[m] for m in lora.target_modules]


def adapter_params(shape: Any, lora: LoraSettings) -> int:
    """Trainable parameters: r x (in + out) per adapted linear layer."""
    return shape.layers * sum(lora.r * (i + o) for i, o in _targets(shape, lora))


def adapter_activation_bytes(recipe: Recipe, shape: Any, a: int) -> int:
    """Extra activation bytes per token and layer: each adapter keeps its r-wide intermediate, and with
    dropout its dropped-out input (plus a one-byte mask)."""
    if recipe.adapter == "none":
        return 0
    lora = recipe.lora
    return sum(a * lora.r + ((a + 1) * i if lora.dropout > 0 else 0) for i, _ in _targets(shape, lora))


def adapter_memory(recipe: Recipe, shape: Any, a: int, shard: int) -> tuple[float, float, float, float, int]:
    """(weights, gradients, optimizer, gathered) bytes per GPU and the trainable parameters, for an adapter run.

    Frozen base: LoRA in the compute dtype; QLoRA 4 bits + block scales for the decoder's linear layers, fp32
    for the rest (``prepare_model_for_kbit_training`` upcasts norms, embeddings and lm_head). Adapters: fp32
    weights, fp32 gradients, two fp32 AdamW moments. Gathered: LoRA under FSDP gathers two layers and the
    root unit of the frozen base; QLoRA dequantizes one weight at a time to the compute dtype."""
    n = adapter_params(shape, recipe.lora)
    p = shape.params
    if recipe.adapter == "qlora":
        if shard > 1:
            raise ValueError("adapter qlora plans one GPU or DDP (--strategy ddp); it does not run under FSDP")
        linear = shape.layers * sum(i * o for i, o in module_dims(shape).values())
        frozen = linear * (NF4_BITS / 8 + SCALE_BYTES[recipe.lora.double_quant]) + (p - linear) * 4
        gathered = 2 * max(i * o for i, o in module_dims(shape).values()) * a
    else:
        frozen = p * a / shard
        gathered = (2 * shape.layer_params + shape.root_params) * a if shard > 1 else (n * a if a != 4 else 0)
    return frozen + 4 * n / shard, 4 * n / shard, 8 * n / shard, gathered, n
