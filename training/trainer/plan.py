"""``asclepius train plan``: memory per GPU before a cluster is booked.

Per GPU, for a model of P parameters on W GPUs with per-device micro-batch b of s tokens:

* FSDP full shard (or ZeRO-3): fp32 master weights 4P/W, fp32 gradients 4P/W, AdamW moments 8P/W, plus the
  gathered units: two decoder layers in the compute dtype (the current one and the prefetched one), the
  unsharded gradients of one layer, and the root unit (embeddings, lm_head) which stays gathered.
* DDP: 4P + 4P + 8P per GPU (plus a bf16 copy of the weights under autocast).
* Activations, per layer and token, counted tensor by tensor for a LLaMA/Mistral decoder layer (RMSNorm
  upcasts to fp32; SDPA/flash attention stores no s x s scores; q/k are kept before and after rotary;
  grouped-query k/v are expanded to all heads; SwiGLU keeps gate, up, silu(gate) and their product).
  With activation checkpointing only each layer's input is kept, plus one layer's full set during its
  recomputation. The logits add (compute dtype + fp32 upcast + fp32 log-softmax) x vocab per token.
* ``attention="math"`` (PyTorch's fallback SDPA kernel: CPU with a mask, old GPUs) also keeps the
  heads x s x s softmax of every layer; the flash / memory-efficient kernels of a GPU run do not.
* A fixed allowance for the CUDA context, NCCL buffers and allocator fragmentation (``overhead_gb``).
* Adapters (``adapter: lora|qlora``): the frozen base in the compute dtype (LoRA) or in 4 bits plus block
  scales (QLoRA), gradients and AdamW moments for the adapters only, and each adapter's activations
  (``training.trainer.adapters.adapter_memory``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quantize.arch import config_dims
from quantize.checkpoint import read_json
from training.trainer.recipe import Recipe

GB = 1e9


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool = False

    @classmethod
    def from_config(cls, path: Path) -> ModelShape:
        """The shape a checkpoint's ``config.json`` gives, through the converter's one config check: a file
        that is not JSON, not an object, or has a missing or zero dimension is a ``QuantizeError`` naming it
        (a zero head count once divided by zero)."""
        cfg = read_json(Path(path), "Hugging Face config")
        dims = config_dims(cfg, str(path))
        return cls(
            layers=dims["num_hidden_layers"],
            hidden=dims["hidden_size"],
            intermediate=dims["intermediate_size"],
            heads=dims["num_attention_heads"],
            kv_heads=dims["num_key_value_heads"],
            vocab=dims["vocab_size"],
            tied=bool(cfg.get("tie_word_embeddings", False)),
        )

    @classmethod
    def for_base(cls, base_model: str) -> ModelShape:
        try:
            return BASE_SHAPES[base_model]
        except KeyError:
            known = ", ".join(sorted(BASE_SHAPES))
            raise ValueError(f"no built-in shape for {base_model!r}; pass --model DIR (known: {known})") from None

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def layer_params(self) -> int:
        h = self.hidden
        return 2 * h * h + 2 * h * self.kv_dim + 3 * h * self.intermediate + 2 * h

    @property
    def root_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params


# The published configs of the reference base models (config.json of each checkpoint).
BASE_SHAPES: dict[str, ModelShape] = {
    "huggyllama/llama-7b": ModelShape(32, 4096, 11008, 32, 32, 32000),
    "huggyllama/llama-13b": ModelShape(40, 5120, 13824, 40, 40, 32000),
    "meta-llama/Llama-2-7b-hf": ModelShape(32, 4096, 11008, 32, 32, 32000),
    "meta-llama/Llama-2-13b-hf": ModelShape(40, 5120, 13824, 40, 40, 32000),
    "meta-llama/Meta-Llama-3-8B": ModelShape(32, 4096, 14336, 32, 8, 128256),
    "mistralai/Mistral-7B-v0.3": ModelShape(32, 4096, 14336, 32, 8, 32768),
}


@dataclass
class Plan:
    recipe: str
    strategy: str
    gpus: int
    gpu_mem_gb: float
    params: int
    compute_bytes: int
    tokens_per_micro_batch: int
    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    gathered_gb: float
    activations_checkpointed_gb: float
    activations_full_gb: float
    overhead_gb: float
    gradient_checkpointing: bool
    adapter: str = "none"
    """``none`` (full fine-tuning), ``lora`` or ``qlora``: what ``weights_gb`` and the rest count."""
    trainable_params: int = 0
    """Parameters the optimizer updates (all of them without an adapter)."""

    @property
    def static_gb(self) -> float:
        return self.weights_gb + self.grads_gb + self.optimizer_gb + self.gathered_gb + self.overhead_gb

    @property
    def total_gb(self) -> float:
        act = self.activations_checkpointed_gb if self.gradient_checkpointing else self.activations_full_gb
        return self.static_gb + act

    @property
    def total_without_checkpointing_gb(self) -> float:
        return self.static_gb + self.activations_full_gb

    @property
    def total_with_checkpointing_gb(self) -> float:
        return self.static_gb + self.activations_checkpointed_gb

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.gpu_mem_gb

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("static_gb", "total_gb", "total_with_checkpointing_gb", "total_without_checkpointing_gb", "fits"):
            d[k] = getattr(self, k)
        return d


def activation_bytes_per_token_layer(shape: ModelShape, a: int) -> int:
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    norms = 2 * 8 * h  # two RMSNorms, each keeps an fp32 input copy and the fp32 normalised tensor
    attn = a * (h + 2 * (h + kv) + kv + h + h)  # norm out, q/k before+after rotary, v, SDPA out, o_proj input
    if kv != h:
        attn += a * 2 * h  # repeat_kv expands k and v to every head
    mlp = a * (h + 4 * i)  # norm out, gate, up, silu(gate), silu(gate) * up
    return norms + attn + mlp


def estimate(
    recipe: Recipe,
    shape: ModelShape,
    gpus: int,
    gpu_mem_gb: float,
    strategy: str = "fsdp",
    compute_dtype_bytes: int | None = None,
    overhead_gb: float | None = None,
    attention: str = "flash",
) -> Plan:
    if not (gpus > 0 and gpu_mem_gb > 0):  # written so that nan fails too; the CLI checks the ranges
        raise ValueError("--gpus and --gpu-mem must be > 0")
    from training.trainer.adapters import adapter_activation_bytes, adapter_memory

    recipe.grad_accum(gpus)
    a = compute_dtype_bytes or (4 if recipe.precision == "fp32" else 2)
    p = shape.params
    shard = gpus if strategy == "fsdp" else 1
    tokens = recipe.per_device_batch_size * recipe.max_length
    per_tok_layer = activation_bytes_per_token_layer(shape, a) + adapter_activation_bytes(recipe, shape, a)
    logits = (a + 8) * shape.vocab + a * shape.hidden
    if attention not in ("flash", "math"):
        raise ValueError(f"attention must be flash or math, not {attention!r}")
    scores = recipe.per_device_batch_size * shape.heads * recipe.max_length**2 * a if attention == "math" else 0
    full = tokens * (shape.layers * per_tok_layer + logits) + shape.layers * scores
    ckpt = tokens * (shape.layers * a * shape.hidden + per_tok_layer + logits) + scores
    if strategy == "fsdp" and gpus > 1:
        gathered = 2 * shape.layer_params * a + shape.layer_params * 4 + shape.root_params * (a + 4)
    else:
        gathered = p * a if a != 4 else 0  # autocast's low-precision weight copies
    weights, grads, optimizer, trainable = 4 * p / shard, 4 * p / shard, 8 * p / shard, p
    if recipe.adapter != "none":
        weights, grads, optimizer, gathered, trainable = adapter_memory(recipe, shape, a, shard)
    return Plan(
        recipe=recipe.name,
        strategy=strategy,
        gpus=gpus,
        gpu_mem_gb=gpu_mem_gb,
        params=p,
        compute_bytes=a,
        tokens_per_micro_batch=tokens,
        weights_gb=weights / GB,
        grads_gb=grads / GB,
        optimizer_gb=optimizer / GB,
        gathered_gb=gathered / GB,
        activations_checkpointed_gb=ckpt / GB,
        activations_full_gb=full / GB,
        overhead_gb=(2.0 if overhead_gb is None else overhead_gb),
        gradient_checkpointing=recipe.gradient_checkpointing,
        adapter=recipe.adapter,
        trainable_params=trainable,
    )


WEIGHTS_LABEL = {
    "none": "weights (fp32 master)",
    "lora": "weights (base + adapter)",
    "qlora": "weights (4-bit base+adapt)",
}


def format_plan(plan: Plan) -> str:
    rows = [
        f"{plan.recipe}: {plan.params / 1e9:.2f} B parameters, {plan.strategy} on {plan.gpus} GPU(s) "
        f"of {plan.gpu_mem_gb:g} GB, micro-batch {plan.tokens_per_micro_batch} tokens",
        *(
            [f"  trainable (adapter)        {plan.trainable_params / 1e6:8.2f} M parameters"]
            if plan.adapter != "none"
            else []
        ),
        f"  {WEIGHTS_LABEL[plan.adapter]:27s}{plan.weights_gb:8.2f} GB",
        f"  gradients (fp32)           {plan.grads_gb:8.2f} GB",
        f"  AdamW moments (fp32)       {plan.optimizer_gb:8.2f} GB",
        f"  gathered/compute copies    {plan.gathered_gb:8.2f} GB",
        f"  activations, checkpointed  {plan.activations_checkpointed_gb:8.2f} GB",
        f"  activations, full          {plan.activations_full_gb:8.2f} GB",
        f"  overhead (context, buffers){plan.overhead_gb:8.2f} GB",
        f"  total with checkpointing   {plan.total_with_checkpointing_gb:8.2f} GB",
        f"  total without              {plan.total_without_checkpointing_gb:8.2f} GB",
        f"  recipe uses checkpointing: {'yes' if plan.gradient_checkpointing else 'no'} -> "
        f"{plan.total_gb:.2f} GB per GPU: " + ("fits" if plan.fits else f"does NOT fit in {plan.gpu_mem_gb:g} GB"),
    ]
    return "\n".join(rows)
