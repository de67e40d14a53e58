"""Training recipes: one typed dataclass, loaded from versioned YAML and validated up front.

A recipe states the global batch once; the gradient-accumulation steps are derived from it, the
per-device batch and the world size (``grad_accum``), so 8 GPUs or 16 keep the same 128 sequences per
optimizer step. Every problem in a recipe is reported in one error (unknown fields, wrong types, values out
of range, cross-field conflicts).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Stage = Literal["pretrain", "sft"]
Family = Literal["llama1", "llama2", "llama3", "mistral"]
Precision = Literal["auto", "bf16", "fp32"]
SaveDtype = Literal["float32", "bfloat16"]
Attention = Literal["auto", "sdpa", "eager", "flash_attention_2", "asclepius_packed_sdpa"]
StripText = Literal["newlines", "whitespace"]
Tracker = Literal["tensorboard", "mlflow"]
EvalMetric = Literal["loss"]
Adapter = Literal["none", "lora", "qlora"]
QuantType = Literal["nf4", "fp4"]
ComputeDtype = Literal["bfloat16", "float16", "float32"]

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"

FAMILY_CONTEXT: dict[str, int] = {"llama1": 2048, "llama2": 4096, "llama3": 8192, "mistral": 32768}
"""Positions each family's base model was trained on (its ``max_position_embeddings``; Mistral-7B-v0.3's is
32,768, though Asclepius-Mistral trained at 8,192): ``max_length`` may not exceed it."""
FAMILY_PROMPT: dict[str, str] = {
    "llama1": "asclepius-train",
    "llama2": "asclepius-train",
    "llama3": "asclepius",
    "mistral": "asclepius",
}
"""The SFT training prompt of each family's Asclepius variant (REFERENCE.md section 2): LLaMA-1/2 without the
space after ``[Instruction End]``, the ``llama3_mistral`` branch with it."""


class RecipeError(ValueError):
    """A recipe file or override is invalid; the message lists every problem."""


LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""Every linear layer of a LLaMA/Mistral decoder layer: the QLoRA paper found adapters on all of them needed
to match full fine-tuning (attention-only adapters fell short)."""


@dataclass(frozen=True)
class LoraSettings:
    """Low-rank adapters: the recipe's nested ``lora:`` section (``--set lora.r=16``); used when ``adapter`` is
    ``lora`` or ``qlora``. Defaults: the QLoRA paper's for 7B-13B models (r 64, alpha 16, dropout 0.1)."""

    r: int = 64
    """Rank of each adapter pair (A: r x in, B: out x r); trainable parameters grow linearly with it."""
    alpha: float = 16.0
    """Scale numerator: the adapter's update is multiplied by alpha / r."""
    dropout: float = 0.1
    """Dropout on the adapter's input (0 disables it)."""
    target_modules: tuple[str, ...] = LLAMA_PROJECTIONS
    """Names of the linear layers that get an adapter (default: every projection of the decoder layers)."""
    quant_type: QuantType = "nf4"
    """``qlora`` only: 4-bit data type of the frozen base weights (bitsandbytes; NormalFloat4 in the paper)."""
    double_quant: bool = True
    """``qlora`` only: quantize the per-block scales too (about 0.37 bits less per parameter)."""
    compute_dtype: ComputeDtype = "bfloat16"
    """``qlora`` only: dtype the 4-bit weights are dequantized to for each matmul."""

    def problems(self) -> list[str]:
        p = []
        if self.r <= 0:
            p.append("lora.r must be > 0")
        if not self.alpha > 0:
            p.append("lora.alpha must be > 0")
        if not 0 <= self.dropout < 1:
            p.append("lora.dropout must be in [0, 1)")
        if not self.target_modules:
            p.append("lora.target_modules must name at least one module")
        return p


QLORA_ONLY = ("quant_type", "double_quant", "compute_dtype")
"""``LoraSettings`` fields that only a 4-bit base uses."""


@dataclass(frozen=True)
class EvalSettings:
    """Evaluation while training: the recipe's nested ``eval:`` section (``--set eval.split=0.02``)."""

    split: float = 0.0
    """Fraction of the data held out before tokenization or packing, by seed: whole notes for pretraining,
    all instructions on a note for SFT (a note is never on both sides). 0 without ``file``: no evaluation."""
    file: str | None = None
    """A held-out data file or folder (same formats as ``--data``) instead of a split."""
    every_steps: int = 200
    """Optimizer steps between evaluations (the last step is always evaluated); 0: only at the end."""
    max_batches: int = 0
    """Evaluate only the first N held-out micro-batches (the same ones every time); 0: all of them."""
    early_stopping_patience: int = 0
    """Stop after this many evaluations in a row without a lower held-out loss; 0: never stop early."""
    metric: EvalMetric = "loss"
    """What picks the best checkpoint: the held-out loss (mean over tokens; perplexity is its exp)."""

    @property
    def enabled(self) -> bool:
        return self.split > 0 or self.file is not None

    def problems(self) -> list[str]:
        p = [
            f"eval.{f} must be >= 0"
            for f in ("every_steps", "max_batches", "early_stopping_patience")
            if getattr(self, f) < 0
        ]
        if not 0 <= self.split < 1:
            p.append("eval.split must be in [0, 1)")
        if self.split > 0 and self.file is not None:
            p.append("eval.split and eval.file exclude each other (a split of --data, or a held-out file)")
        if self.early_stopping_patience and not self.enabled:
            p.append("eval.early_stopping_patience needs an evaluation set (eval.split or eval.file)")
        return p


NESTED: dict[str, type] = {"eval": EvalSettings, "lora": LoraSettings}
"""Recipe fields that are sections of their own: a YAML mapping, overridden field by field as ``section.field``."""


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of one training stage for one model variant (REFERENCE.md §2 for the reference)."""

    name: str
    """Recipe id, e.g. ``asclepius-7b-sft``; recorded in the manifest."""
    stage: Stage
    """``pretrain``: causal LM on packed note blocks; ``sft``: instruction fine-tuning, loss on answers only."""
    family: Family
    """Base-model family: bounds ``max_length`` (``FAMILY_CONTEXT``) and, for SFT, decides the training prompt
    (``FAMILY_PROMPT``: ``prompt_style`` defaults to it, and another style is refused)."""
    base_model: str
    """The base checkpoint the reference started from (provenance; ``--model`` gives the actual directory)."""
    max_length: int
    """Tokens per sequence: 2048 (LLaMA-1), 4096 (Llama-2), 8192 (Llama-3, Mistral as trained); at most the
    family's context, and checked against the model's ``max_position_embeddings`` when a run starts."""
    global_batch_size: int = 128
    """Sequences per optimizer step over all processes and accumulation steps."""
    per_device_batch_size: int = 2
    """Sequences per forward pass on one device."""
    learning_rate: float = 2e-5
    """Peak learning rate (after warmup)."""
    epochs: float = 1.0
    """Passes over the data (1 for pretraining, 3 for SFT in the reference)."""
    warmup_ratio: float = 0.03
    """Fraction of the optimizer steps spent in linear warmup before the cosine decay."""
    weight_decay: float = 0.0
    """AdamW weight decay (0 in the reference)."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    """Gradient clipping by global L2 norm; 0 disables it."""
    prompt_style: str | None = None
    """SFT training prompt id in ``resources.prompts``: ``asclepius-train`` (no space after
    ``[Instruction End]``, LLaMA-1/2 variants) or ``asclepius`` (with it, Llama-3/Mistral variants); None:
    the family's (``FAMILY_PROMPT``). Pretraining uses none."""
    packing: bool = False
    """SFT only: pack several examples per sequence (per-example attention and position ids)."""
    strip_text: StripText = "newlines"
    """SFT: what comes off the ends of note, question and answer: ``newlines`` (the reference's
    ``strip("\n")``: leading/trailing spaces and tabs stay) or ``whitespace`` (all of it, as the app strips
    user text at inference)."""
    attn_implementation: Attention = "auto"
    """``auto``: FlashAttention-2 on CUDA when ``flash_attn`` is installed, else ``asclepius_packed_sdpa``
    (SDPA per packed example: no attention work across examples; plain SDPA for unpacked batches)."""
    precision: Precision = "auto"
    """``auto``: bf16 mixed precision on GPU, fp32 on CPU."""
    tf32: bool = True
    """Allow TF32 matmuls on Ampere+ GPUs (the reference used ``--tf32 True``)."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (the reference trained with it)."""
    save_dtype: SaveDtype = "float32"
    """Dtype of the merged output checkpoint (the optimizer's master weights are fp32)."""
    seed: int = 42
    """Seeds the data order and every RNG."""
    logging_steps: int = 10
    """Optimizer steps between log records."""
    save_steps: int = 200
    """Optimizer steps between resumable checkpoints; 0 saves only at the end."""
    save_total_limit: int = 2
    """Resumable checkpoints kept (oldest deleted)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run all epochs); the schedule spans the shorter of the two."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Held-out loss and perplexity while training, best checkpoint, early stopping (``EvalSettings``)."""
    logging: tuple[Tracker, ...] = ("tensorboard",)
    """Experiment trackers the main process writes to, besides ``logs/train.jsonl``: ``tensorboard`` (under
    ``logs/tensorboard``; the train extra installs it), ``mlflow`` (``pip install mlflow``; the tracking URI
    from ``MLFLOW_TRACKING_URI``, else a file store under ``logs/mlruns``); ``[]`` for neither."""
    adapter: Adapter = "none"
    """``none``: full fine-tuning; ``lora``: train low-rank adapters on a frozen base (PEFT); ``qlora``: the same
    on a 4-bit base (bitsandbytes, CUDA only). The output has the adapter and the merged checkpoint."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """Adapter settings (``LoraSettings``); only read when ``adapter`` is not ``none``."""

    def __post_init__(self) -> None:
        problems = _type_problems(self)
        if not problems and self.stage == "sft" and self.prompt_style is None:
            object.__setattr__(self, "prompt_style", FAMILY_PROMPT[self.family])  # frozen: set once, here
        if not problems:
            problems = self._value_problems()
        if problems:
            raise RecipeError(f"recipe {self.name!r}: " + "; ".join(problems))

    def _value_problems(self) -> list[str]:
        from resources.prompts import PROMPT_STYLES

        p: list[str] = []
        positive = ("max_length", "global_batch_size", "per_device_batch_size", "logging_steps", "save_total_limit")
        p += [f"{f} must be > 0" for f in positive if getattr(self, f) <= 0]
        p += [
            f"{f} must be >= 0"
            for f in ("save_steps", "max_steps", "weight_decay", "max_grad_norm")
            if getattr(self, f) < 0
        ]
        if not self.learning_rate > 0:
            p.append("learning_rate must be > 0")
        if not self.epochs > 0:
            p.append("epochs must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            p.append("warmup_ratio must be in [0, 1)")
        if self.global_batch_size % self.per_device_batch_size:
            p.append(
                f"global_batch_size {self.global_batch_size} is not a multiple of "
                f"per_device_batch_size {self.per_device_batch_size}"
            )
        if self.max_length > FAMILY_CONTEXT[self.family]:
            p.append(
                f"max_length {self.max_length} exceeds the {self.family} context of {FAMILY_CONTEXT[self.family]} "
                "positions"
            )
        if self.stage == "sft":
            if self.prompt_style not in PROMPT_STYLES:
                p.append(f"unknown prompt_style {self.prompt_style!r} (known: {', '.join(sorted(PROMPT_STYLES))})")
            elif self.prompt_style != FAMILY_PROMPT[self.family]:
                p.append(
                    f"prompt_style {self.prompt_style!r} is not the {self.family} training prompt "
                    f"{FAMILY_PROMPT[self.family]!r} (set family to the base model's, or leave prompt_style out)"
                )
        elif self.packing:
            p.append("packing applies to sft only (pretraining blocks are always full)")
        elif self.strip_text != "newlines":
            p.append("strip_text applies to sft only (pretraining documents are used as they are)")
        if len(set(self.logging)) != len(self.logging):
            p.append(f"logging names a tracker twice: {list(self.logging)}")
        return p + self.eval.problems() + self._adapter_problems()

    def _adapter_problems(self) -> list[str]:
        """Settings that would silently do nothing are refused: ``lora.*`` without an adapter, the 4-bit
        ones without ``qlora``."""
        default = LoraSettings()
        changed = [f.name for f in fields(LoraSettings) if getattr(self.lora, f.name) != getattr(default, f.name)]
        if self.adapter == "none":
            return [f"lora.{n} is set but adapter is none (set adapter to lora or qlora)" for n in changed]
        p = self.lora.problems()
        if self.adapter == "lora":
            p += [f"lora.{n} applies to adapter qlora only" for n in changed if n in QLORA_ONLY]
        return p

    def grad_accum(self, world_size: int) -> int:
        """Accumulation steps so that world_size x per_device x accum == global_batch_size."""
        per_step = self.per_device_batch_size * world_size
        if world_size <= 0 or self.global_batch_size % per_step:
            raise RecipeError(
                f"global_batch_size {self.global_batch_size} is not divisible by per_device_batch_size "
                f"{self.per_device_batch_size} x world size {world_size}"
            )
        return self.global_batch_size // per_step

    def with_overrides(self, overrides: dict[str, Any]) -> Recipe:
        """A copy with ``field=value`` overrides (strings from ``--set`` are parsed as YAML scalars)."""
        unknown = sorted(k for k in overrides if not _known_field(k))
        if unknown:
            known = ", ".join(sorted(f.name for f in fields(self)))
            raise RecipeError(f"unknown recipe field(s): {', '.join(unknown)} (known: {known})")
        current = {k: v for k, v in self.to_dict().items() if k in NESTED}
        data = _typed(_merge_overrides(current, overrides))
        return dataclasses.replace(self, **data)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (sections as mappings, tuples as lists): what ``recipe.json`` and manifests hold."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _type_problems(obj: Any, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(type(obj))
    problems = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, hints[f.name]):
            problems += _type_problems(value, f"{prefix}{f.name}.")
        elif not _matches(value, hints[f.name]):
            problems.append(
                f"{prefix}{f.name}: expected {_describe(hints[f.name])}, got {type(value).__name__} {value!r}"
            )
    return problems


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, tuple) and all(_matches(v, typing.get_args(tp)[0]) for v in value)
    return isinstance(value, origin or tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return "null" if tp is type(None) else tp.__name__


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["learning_rate=1e-3", "packing=true"]`` -> typed values (YAML scalars: 1e-3 is a float)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set expects field=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe (a path, or a name under ``training/recipes/``) and validate it."""
    import yaml

    p = resolve_recipe_path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read recipe {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {p} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {p} must be a mapping of field: value")
    return recipe_from_dict(data, overrides, str(p))


def recipe_from_dict(data: dict[str, Any], overrides: dict[str, Any] | None = None, source: str = "recipe") -> Recipe:
    """A recipe from a mapping (a YAML file's, or a manifest's ``recipe``), validated as a file is."""
    data = _merge_overrides(data, overrides or {})
    problems = [f"unknown field {k!r}" for k in sorted(_unknown_fields(data))]
    required = [
        f.name for f in fields(Recipe) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    problems += [f"missing required field {k!r}" for k in required if k not in data]
    if problems:
        raise RecipeError(f"recipe {source}: " + "; ".join(problems))
    try:
        return Recipe(**_typed(data))
    except RecipeError as exc:
        raise RecipeError(f"{source}: {exc}") from None


def _merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``section.field`` overrides go into the section's mapping; plain fields replace."""
    out = dict(data)
    for key, value in overrides.items():
        section, dot, sub = key.partition(".")
        if dot:
            base = out.get(section)
            out[section] = {**(base if isinstance(base, dict) else {}), sub: value}
        else:
            out[key] = value
    return out


def _known_field(key: str) -> bool:
    section, dot, sub = key.partition(".")
    if dot:
        return section in NESTED and sub in {f.name for f in fields(NESTED[section])}
    return key in {f.name for f in fields(Recipe)}


def _unknown_fields(data: dict[str, Any]) -> list[str]:
    out = [k for k in data if not _known_field(k)]
    for section, cls in NESTED.items():
        if isinstance(data.get(section), dict):
            out += [f"{section}.{k}" for k in data[section] if k not in {f.name for f in fields(cls)}]
    return out


def _typed(data: dict[str, Any]) -> dict[str, Any]:
    """YAML values as the dataclasses take them: float fields from strings, sections built, lists as tuples."""
    out = {k: _coerce_float(v) if _is_float_field(Recipe, k) else v for k, v in data.items()}
    for section, cls in NESTED.items():
        if isinstance(out.get(section), dict):
            sub = {k: tuple(v) if isinstance(v, list) else v for k, v in out[section].items()}
            out[section] = cls(**{k: _coerce_float(v) if _is_float_field(cls, k) else v for k, v in sub.items()})
    if isinstance(out.get("logging"), list):
        out["logging"] = tuple(out["logging"])
    return out


def _is_float_field(cls: type, name: str) -> bool:
    return typing.get_type_hints(cls).get(name) is float


def _coerce_float(value: Any) -> Any:
    """YAML 1.1 reads ``2e-5`` as a string; accept it for float fields, leave anything else to validation."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def resolve_recipe_path(path: str | Path) -> Path:
    p = Path(path)
    if p.exists():
        return p
    named = RECIPES_DIR / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if named.exists():
        return named
    known = ", ".join(sorted(x.stem for x in RECIPES_DIR.glob("*.yaml")))
    raise RecipeError(f"no recipe {str(path)!r} (a path, or one of: {known})")


def all_recipe_paths() -> list[Path]:
    return sorted(RECIPES_DIR.glob("*.yaml"))
