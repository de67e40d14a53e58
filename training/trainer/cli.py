"""``asclepius train pretrain|sft|plan`` and ``python -m training.trainer`` (the same parser and code).

This module imports nothing heavy at module level: ``register`` only builds argparse parsers, so the app's
CLI can list ``train`` without torch. Distributed runs start the same entry point under a launcher:
``accelerate launch --config_file training/configs/fsdp-1x8.yaml -m training.trainer sft ...`` or
``torchrun --nproc_per_node 8 -m training.trainer sft ...``.

Exit codes: 0 ok; 1 unexpected error; 2 bad recipe, arguments or data, or the train extra missing;
4 model or tokenizer missing/unreadable.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.argtypes import bounded_float, bounded_int
from app.core.bounds import GPU_MEM_GB_MAX, GPU_MEM_GB_MIN, TRAIN_GPUS_MAX, TRAIN_STEPS_MAX

GPU_NAMES = ("a100-40g", "a100-80g", "h100-sxm", "l40s", "rtx4090", "cpu")
"""``train plan --gpu`` choices: the keys of ``timeplan.ACCELERATORS`` (spelled here: this module stays
light enough for the app to list ``train`` without torch; a test pins the two equal)."""

EXIT_ERROR, EXIT_USAGE, EXIT_MODEL = 1, 2, 4
NEEDS = ("torch", "transformers", "accelerate", "yaml", "numpy")
EXTRA_MESSAGE = "needs the train extra: pip install 'asclepius-desk[train]'"


class ModelDirError(Exception):
    """The --model directory, its config or its tokenizer is missing or unreadable."""


def register(subparsers: Any, via_app: bool = True) -> None:
    """Add the ``train`` group; ``via_app`` is False for ``python -m training.trainer``."""
    p = subparsers.add_parser(
        "train", help="domain pretraining, instruction fine-tuning, time/memory plan, checkpoint perplexity"
    )
    sub = p.add_subparsers(dest="train_command", metavar="COMMAND", required=True)
    for stage, text in (
        ("pretrain", "causal-LM pretraining on a notes corpus (text/JSONL/CSV/Arrow) in fixed blocks"),
        ("sft", "instruction fine-tuning on {note, question, answer} rows; loss on answer + EOS only"),
    ):
        s = sub.add_parser(stage, help=text)
        s.add_argument("recipe", help="recipe YAML path, or a name under training/recipes/ (e.g. asclepius-7b-sft)")
        s.add_argument(
            "--model", required=True, help="HF checkpoint directory to start from (config, weights, tokenizer)"
        )
        s.add_argument("--data", required=True, help="data file or folder")
        s.add_argument("--out", required=True, help="output directory (checkpoints/, logs/, model/)")
        s.add_argument(
            "--max-steps",
            type=bounded_int("max steps", 1, TRAIN_STEPS_MAX),
            help="stop after N optimizer steps (sets the recipe's max_steps)",
        )
        s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a recipe field")
        s.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out (default: resume)")
        s.set_defaults(train_func=run_stage, stage=stage)
    pl = sub.add_parser("plan", help="memory per GPU (weights, grads, optimizer, activations) and whether it fits")
    pl.add_argument("recipe")
    pl.add_argument("--gpus", type=bounded_int("GPUs", 1, TRAIN_GPUS_MAX), default=8, help="GPUs in total (all nodes)")
    pl.add_argument(
        "--gpu-mem",
        type=bounded_float("GPU memory", GPU_MEM_GB_MIN, GPU_MEM_GB_MAX),
        help=f"memory per GPU in GB ({GPU_MEM_GB_MIN:g}..{GPU_MEM_GB_MAX:g}; default: the --gpu's)",
    )
    pl.add_argument(
        "--gpu",
        choices=GPU_NAMES,
        default="a100-80g",
        help="accelerator whose dense bf16 peak the time estimate uses (cpu: measured here)",
    )
    pl.add_argument(
        "--mfu", type=bounded_float("MFU", 0.01, 1.0), help="model-FLOPs utilisation assumed (default 0.40)"
    )
    pl.add_argument(
        "--tokens",
        type=bounded_int("tokens", 1, 10**15),
        help="tokens in one epoch of the data (for the time estimate; x epochs, capped by max_steps)",
    )
    pl.add_argument(
        "--model", help="checkpoint directory whose config.json gives the shape (default: the recipe's base)"
    )
    pl.add_argument(
        "--strategy", choices=("fsdp", "ddp"), default="fsdp", help="full-shard FSDP/ZeRO-3 or replicated DDP"
    )
    pl.add_argument(
        "--attention",
        choices=("flash", "math"),
        default="flash",
        help="flash: fused GPU kernels (no s x s scores kept); math: the fallback kernel that keeps them",
    )
    pl.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(train_func=run_plan)
    ev = sub.add_parser("eval", help="held-out perplexity of a trained checkpoint (before converting it)")
    ev.add_argument("checkpoint", help="a checkpoint directory a run wrote (<out>/model, <out>/best) or any HF one")
    ev.add_argument("--data", help="notes (file or folder, the pretraining formats); default: the run's held-out split")
    ev.add_argument("--max-length", type=bounded_int("max length", 8, 1 << 20), help="tokens per block")
    ev.add_argument("--batch-size", type=bounded_int("batch size", 1, 4096), default=2, help="sequences per pass")
    ev.add_argument(
        "--max-batches", type=bounded_int("max batches", 0, 1 << 30), default=0, help="first N batches only (0: all)"
    )
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(train_func=_run_eval)
    p.set_defaults(func=handle, via_app=via_app)


def handle(args: argparse.Namespace) -> int:
    """Run a train command: checks the extra, turns known errors into one line and an exit code."""
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        print(f"asclepius train {EXTRA_MESSAGE} (missing: {', '.join(missing)})", file=sys.stderr)
        return EXIT_USAGE
    from training.trainer.data import DataError
    from training.trainer.recipe import RecipeError

    if args.via_app and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # The asclepius command blocks every network socket (app.core.netguard); torch.distributed needs them.
        print(
            "asclepius train: error: for a distributed run launch `-m training.trainer` "
            "(e.g. torchrun --nproc_per_node 8 -m training.trainer sft ...), not the asclepius command",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return int(args.train_func(args) or 0)
    except (RecipeError, DataError) as exc:
        print(f"asclepius train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelDirError as exc:
        print(f"asclepius train: error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except ValueError as exc:
        print(f"asclepius train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _recipe(args: argparse.Namespace) -> Any:
    from training.trainer.recipe import load_recipe, parse_overrides

    overrides = parse_overrides(args.set)
    if getattr(args, "max_steps", None) is not None:
        overrides["max_steps"] = args.max_steps
    return load_recipe(args.recipe, overrides)


def check_model_dir(model_dir: Path) -> Path:
    """``model_dir``'s config.json, or a ModelDirError (exit 4) when the directory or its config is missing."""
    if not model_dir.exists():
        raise ModelDirError(f"model directory {model_dir} does not exist")
    if not model_dir.is_dir():
        raise ModelDirError(f"--model {model_dir} is not a directory (expected a Hugging Face checkpoint directory)")
    if not (model_dir / "config.json").is_file():
        raise ModelDirError(f"{model_dir} has no config.json: not a Hugging Face checkpoint directory")
    return model_dir / "config.json"


def check_positions(recipe: Any, model_dir: Path) -> None:
    """A ValueError (exit 2) when ``max_length`` exceeds the model's ``max_position_embeddings``: positions past
    it have no trained rotary angles, and nothing else would stop such blocks (a config without the key, or
    not readable as JSON here, is left to the model loader)."""
    import json

    try:
        positions = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(positions, int) and not isinstance(positions, bool) and recipe.max_length > positions:
        raise ValueError(
            f"max_length {recipe.max_length} exceeds the model's max_position_embeddings {positions} "
            f"({model_dir / 'config.json'}); lower it with --set max_length={positions} or use a longer-context model"
        )


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    check_model_dir(model_dir)
    names = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
    if not any((model_dir / n).exists() for n in names):
        raise ModelDirError(
            f"{model_dir} has no tokenizer (none of {', '.join(names)}); copy the base model's tokenizer there"
        )
    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as exc:
        raise ModelDirError(f"cannot load the tokenizer in {model_dir}: {exc}") from None


def run_stage(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from training.trainer import data as d
    from training.trainer.heldout import load_datasets
    from training.trainer.loop import train
    from training.trainer.output import base_model_info
    from training.trainer.tracking import check_trackers

    recipe = _recipe(args)
    if recipe.stage != args.stage:
        raise ValueError(f"recipe {recipe.name} is a {recipe.stage} recipe; run `asclepius train {recipe.stage}`")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    recipe.grad_accum(world)  # a global batch that does not divide fails here, before anything loads
    import torch

    from training.trainer.adapters import check_adapter

    check_adapter(recipe, torch.cuda.is_available())  # qlora without CUDA, peft missing: before any loading
    model_dir, data_path, out = Path(args.model), Path(args.data), Path(args.out)
    tokenizer = load_tokenizer(model_dir)
    check_positions(recipe, model_dir)
    d.data_files(data_path)
    check_trackers(recipe.logging)
    state = PartialState(cpu=not torch.cuda.is_available())
    extra: dict[str, Any] = {"base_model": {"recipe": recipe.base_model, **base_model_info(model_dir)}}
    run = load_datasets(recipe, data_path, tokenizer, out / "data", state.local_main_process_first)
    extra["data"] = run.manifest
    dataset, counts = run.train, run.summary
    if state.is_main_process:
        print(f"{recipe.name}: {counts}", file=sys.stderr)
    result = train(
        recipe, model_dir, dataset, out, tokenizer, not args.no_resume, manifest_extra=extra, eval_dataset=run.held_out
    )
    if state.is_main_process:
        final = result.state.losses[-1][1] if result.state.losses else float("nan")
        print(
            f"wrote {result.model_dir} ({result.state.step} steps, world {result.world_size} x accumulation "
            f"{result.grad_accum}, final loss {final:.4f}, {result.seconds:.1f} s)"
        )
        st = result.state
        if st.best_loss is not None:
            stopped = f", stopped early at step {st.stopped_early_at}" if st.stopped_early_at else ""
            print(f"best held-out loss {st.best_loss:.4f} at step {st.best_step}: {out / 'best'}{stopped}")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    import json

    from training.trainer import timeplan
    from training.trainer.plan import ModelShape, estimate, format_plan
    from training.trainer.recipe import load_recipe, parse_overrides

    recipe = load_recipe(args.recipe, parse_overrides(args.set))
    shape = _model_shape(Path(args.model)) if args.model else ModelShape.for_base(recipe.base_model)
    spec = timeplan.ACCELERATORS[args.gpu]
    mem = args.gpu_mem or spec.mem_gb or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    plan = estimate(recipe, shape, gpus=args.gpus, gpu_mem_gb=mem, strategy=args.strategy, attention=args.attention)
    mfu = args.mfu or timeplan.DEFAULT_MFU
    t = timeplan.estimate_time(recipe, shape, args.gpu, args.gpus, mfu, args.tokens)
    if args.json:
        print(json.dumps({**plan.to_dict(), **timeplan.to_dict(t)}, indent=2))
    else:
        print(format_plan(plan) + "\n" + timeplan.format_time(t, args.gpus))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from training.trainer.ckpt_eval import run_eval

    return run_eval(args)


def _model_shape(model_dir: Path) -> Any:
    from quantize.errors import QuantizeError
    from training.trainer.plan import ModelShape

    config = check_model_dir(model_dir)
    try:
        return ModelShape.from_config(config)
    except QuantizeError as exc:  # not JSON, not an object, a missing or zero dimension: a model problem
        raise ModelDirError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.trainer", description="Asclepius trainer (accelerate/torchrun entry point)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    register(sub, via_app=False)
    # `python -m training.trainer sft ...` is `asclepius train sft ...`: lift the train group's commands up.
    train_parser = sub.choices["train"]
    return _Lifted(train_parser)  # type: ignore[return-value]


class _Lifted:
    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser

    def parse_args(self, argv: Sequence[str] | None) -> argparse.Namespace:
        return self.parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return handle(args)


if __name__ == "__main__":
    sys.exit(main())
