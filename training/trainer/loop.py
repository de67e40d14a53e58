"""The training loop on accelerate: one code path for 1 CPU process, DDP, FSDP and DeepSpeed ZeRO-3.

What accelerate decides (from ``accelerate launch --config_file``, or torchrun's environment): the
distributed backend, FSDP wrapping/sharding, mixed precision, state-dict layout. What this loop does:

* The data order is a seeded permutation per epoch cut into per-device micro-batches; accelerate's
  sharded loader gives micro-batch ``i`` to rank ``i % world``, so the sequences of optimizer step ``s``
  are the same whatever the world size (8 GPUs x 8 accumulation or 16 x 4).
* The loss of a step is the sum of token losses over the whole global batch divided by its number of
  loss tokens (counted first, all-reduced), not a mean of micro-batch means: a micro-batch of short answers
  weighs what its tokens weigh, and 2 processes give the gradient of 1 process with 2x accumulation.
* A resumable checkpoint (accelerate ``save_state``: model, optimizer, scheduler, RNG, plus the step/epoch
  counters registered here) is written to ``<name>.partial`` and renamed, so a kill leaves only complete ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.trainer.recipe import Recipe
from training.trainer.tracking import Logger

CKPT_PREFIX = "step-"


@dataclass
class TrainState:
    """Counters saved with every checkpoint (accelerate ``register_for_checkpointing``)."""

    step: int = 0
    epoch: int = 0
    tokens: int = 0
    losses: list[list[float]] = field(default_factory=list)
    """``[step, loss]`` at every logging step (the loss: the mean over the logging window)."""
    window_loss: float = 0.0
    """Sum of the step losses since the last log record: saved too, so a checkpoint taken mid-window resumes
    to the same logged mean."""
    window_steps: int = 0
    window_loss_tokens: int = 0
    window_tokens: int = 0
    """Real (non-padding) tokens since the last log record."""
    eval_curve: list[list[float]] = field(default_factory=list)
    """``[step, held-out loss, perplexity]`` at every evaluation."""
    best_loss: float | None = None
    """The lowest held-out loss so far (its model is ``<out>/best``); saved, so a resumed run keeps it."""
    best_step: int = 0
    evals_since_best: int = 0
    """Evaluations in a row without a lower held-out loss (early stopping counts these)."""
    stopped_early_at: int = 0
    """The step early stopping ended the run at; 0: it did not."""

    def add_step(self, loss: float, loss_tokens: int, real_tokens: int) -> None:
        self.step += 1
        self.window_loss += loss
        self.window_steps += 1
        self.window_loss_tokens += loss_tokens
        self.window_tokens += real_tokens

    def close_window(self) -> tuple[float, int, int]:
        """(mean step loss, loss tokens, real tokens) of the window; starts the next one."""
        out = (self.window_loss / max(self.window_steps, 1), self.window_loss_tokens, self.window_tokens)
        self.tokens += self.window_tokens
        self.window_loss, self.window_steps, self.window_loss_tokens, self.window_tokens = 0.0, 0, 0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            if f.name in d:  # a checkpoint written before a field was added keeps its default
                setattr(self, f.name, list(d[f.name]) if isinstance(d[f.name], list) else d[f.name])

    def add_eval(self, step: int, loss: float, ppl: float, patience: int) -> tuple[bool, bool]:
        """Record one evaluation: (is it the best so far, should the run stop early)."""
        self.eval_curve.append([step, loss, ppl])
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.best_step, self.evals_since_best = loss, step, 0
            return True, False
        self.evals_since_best += 1
        return False, bool(patience) and self.evals_since_best >= patience


class EpochBatches:
    """Per-device micro-batches of one epoch: a permutation seeded by (seed, epoch), cut into full global
    batches (the last incomplete one is dropped: its size would change the step's loss normalisation)."""

    def __init__(self, n: int, per_device: int, per_step: int, seed: int):
        self.n, self.per_device, self.per_step, self.seed, self.epoch = n, per_device, per_step, seed, 0

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        usable = (self.n // self.per_step) * self.per_step
        for i in range(0, usable, self.per_device):
            yield order[i : i + self.per_device]

    def __len__(self) -> int:
        return (self.n // self.per_step) * self.per_step // self.per_device


def resolve_attention(requested: str, cuda: bool) -> str:
    import importlib.util

    from training.trainer.attention import register

    name = register()
    if requested != "auto":
        return requested
    return "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") else name


def schedule_steps(recipe: Recipe, n_items: int, world: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps)."""
    per_step = recipe.global_batch_size
    per_epoch = n_items // per_step
    if per_epoch == 0:
        raise ValueError(
            f"the data holds {n_items} sequences, fewer than one global batch of {per_step} "
            "(lower global_batch_size with --set, or add data)"
        )
    total = math.ceil(per_epoch * recipe.epochs)
    if recipe.max_steps:
        total = min(total, recipe.max_steps)
    return per_epoch, total


def complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX) and p.suffix != ".partial"]
    return sorted(found, key=lambda p: int(p.name[len(CKPT_PREFIX) :]))


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@dataclass
class TrainingResult:
    state: TrainState
    model_dir: Path
    world_size: int
    grad_accum: int
    total_steps: int
    seconds: float
    resumed_from: str | None


KEEP_UNTIL_EXIT: list[Any] = []
"""Objects of a finished multi-process run that must not be destroyed before the process exits (see ``train``)."""


def train(
    recipe: Recipe,
    model_dir: Path,
    dataset: Any,
    out_dir: Path,
    tokenizer: Any,
    resume: bool = True,
    manifest_extra: dict[str, Any] | None = None,
    eval_dataset: Any | None = None,
) -> TrainingResult:
    """Run the recipe over ``dataset`` (a sequence of dicts for ``data.collate``) and write
    ``out_dir/model`` (merged checkpoint + manifest); with ``eval_dataset``, the held-out loss every
    ``eval.every_steps`` and the best model so far in ``out_dir/best``."""
    import torch
    from accelerate import Accelerator, PartialState
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_cosine_schedule_with_warmup

    from training.trainer import adapters
    from training.trainer.data import collate
    from training.trainer.output import save_final

    cuda = torch.cuda.is_available()
    mp = {"fp32": "no", "bf16": "bf16", "auto": "bf16" if cuda else "no"}[recipe.precision]
    # cpu=True on a machine without CUDA: accelerate then sets up gloo (MULTI_CPU) under torchrun.
    world = PartialState(cpu=not cuda).num_processes
    accum = recipe.grad_accum(world)
    # DeepSpeed applies the update itself at accumulation boundaries, so it must know the steps; FSDP/DDP
    # accumulate in this loop (no_sync) and accelerate's own counter stays at 1.
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    acc = Accelerator(
        mixed_precision=os.environ.get("ACCELERATE_MIXED_PRECISION", mp),
        cpu=not cuda,
        gradient_accumulation_steps=accum if deepspeed else 1,
    )
    set_seed(recipe.seed)
    if cuda and recipe.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    per_epoch, total = schedule_steps(recipe, len(dataset), world)

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_same_recipe(out_dir, recipe)
    acc.wait_for_everyone()

    attn = resolve_attention(recipe.attn_implementation, cuda)
    model = adapters.load_model(recipe, model_dir, attn, acc.mixed_precision, acc.local_process_index)
    model.config.use_cache = False
    trainable, total_params = adapters.parameter_counts(model)
    acc.print(adapters.describe_parameters(model))
    fsdp = getattr(acc.state, "fsdp_plugin", None)
    if recipe.gradient_checkpointing and not (fsdp is not None and fsdp.activation_checkpointing):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    sampler = EpochBatches(len(dataset), recipe.per_device_batch_size, recipe.global_batch_size, recipe.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Its own generator: a DataLoader iterator draws a base seed when it starts, from the global RNG otherwise; a
    # resumed run starts one mid-epoch that the straight run did not, and LoRA's dropout masks would then differ.
    loader = DataLoader(
        dataset, batch_sampler=sampler, collate_fn=lambda b: collate(b, pad_id), generator=torch.Generator()
    )
    model = acc.prepare(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:  # an adapter run's frozen base: no gradients, no optimizer state
            continue
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.learning_rate,
        betas=(recipe.adam_beta1, recipe.adam_beta2),
        eps=recipe.adam_epsilon,
    )
    optimizer, loader = acc.prepare(optimizer, loader)
    # Not prepared: accelerate would step it once per process; it is stepped once per optimizer step here.
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(recipe.warmup_ratio * total), total)
    state = TrainState()
    acc.register_for_checkpointing(scheduler, state)
    adapters.install_checkpoint_hooks(acc, model, recipe)

    resumed_from = None
    existing = complete_checkpoints(ckpt_dir) if resume else []
    if existing:
        acc.load_state(str(existing[-1]))
        resumed_from = existing[-1].name
        acc.print(f"resumed from {existing[-1]} (step {state.step}, epoch {state.epoch})")

    run_info = {"world_size": world, "grad_accum": accum, "total_steps": total, "resumed_from": resumed_from}
    run_info["parameters"] = {"trainable": trainable, "total": total_params}
    extra = {**(manifest_extra or {}), **run_info}
    logger = Logger(out_dir / "logs", acc.is_main_process, start_step=state.step, trackers=recipe.logging)
    if state.step == 0:
        logger.record_config(recipe.to_dict(), extra.get("data", {}))
    bar = tqdm(total=total, initial=state.step, disable=not acc.is_main_process, desc=recipe.name, file=sys.stderr)
    t0 = time.perf_counter()
    window = [time.perf_counter(), state.window_tokens]  # when this process's part of the window began, its tokens

    def save_to(path: Path, best: dict[str, Any] | None = None) -> None:
        info = {**extra, **({"best": best} if best else {}), "eval": _eval_manifest(state, recipe)}
        seconds = time.perf_counter() - t0
        save_final(acc, model, tokenizer, recipe, path, state, info, seconds, tokenizer_src=Path(model_dir))

    model.train()
    while state.step < total and not state.stopped_early_at:
        sampler.epoch = state.epoch
        done_in_epoch = state.step - state.epoch * per_epoch
        epoch_loader = acc.skip_first_batches(loader, done_in_epoch * accum) if done_in_epoch else loader
        it = iter(epoch_loader)
        while state.step < total and state.step < (state.epoch + 1) * per_epoch:
            micro = [next(it) for _ in range(accum)]
            loss_sum, n_tok, real_tokens, grad_norm = _step(acc, model, optimizer, micro, recipe.max_grad_norm, world)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.add_step(loss_sum / max(n_tok, 1), n_tok, real_tokens)
            bar.update(1)
            if state.step % recipe.logging_steps == 0 or state.step == total:
                _log_window(state, scheduler, grad_norm, window, logger, bar)
            ev = recipe.eval
            if eval_dataset is not None and (
                (ev.every_steps and state.step % ev.every_steps == 0) or state.step == total
            ):
                # Before the checkpoint of this step, so that it holds the best-so-far and the patience count.
                _evaluate_step(acc, model, eval_dataset, pad_id, recipe, state, logger, bar, save_to, out_dir)
                if state.stopped_early_at:
                    break
            if recipe.save_steps and state.step % recipe.save_steps == 0 and state.step < total:
                _save_checkpoint(acc, ckpt_dir, state.step, recipe.save_total_limit)
        if state.step >= (state.epoch + 1) * per_epoch:
            state.epoch += 1
    bar.close()
    if state.window_steps:  # stopped early mid-window: its steps are logged too
        _log_window(state, scheduler, grad_norm, window, logger, bar)
    state.close_window()  # counts the tokens of steps after the last record (none: the last step logs)
    logger.close()
    seconds = time.perf_counter() - t0
    model_out = out_dir / "model"
    save_to(model_out)
    acc.end_training()
    if world > 1:
        # Freed when this frame returns, DDP's reducer destroys the gloo process group, whose destructor joins its
        # worker threads; with the peer rank already gone that join hung once in CI after a finished LoRA run.
        # The distributed entry point (__main__) keeps them alive and leaves with os._exit once the outputs are
        # written, so no destructor of the process group runs.
        KEEP_UNTIL_EXIT.append(acc)
    return TrainingResult(state, model_out, world, accum, total, seconds, resumed_from)


def _log_window(state: TrainState, scheduler: Any, grad_norm: float, window: list, logger: Any, bar: Any) -> None:
    """One train.jsonl record: the window's mean loss and this process's tokens/s over it."""
    now = time.perf_counter()
    # Tokens of this process's part of the window (a resumed window began before the restart).
    timed = state.window_tokens - window[1]
    loss, loss_tokens, _ = state.close_window()
    state.losses.append([state.step, loss])
    record = {
        "step": state.step,
        "epoch": state.epoch,
        "loss": loss,
        "lr": scheduler.get_last_lr()[0],
        "grad_norm": grad_norm,
        "loss_tokens": loss_tokens,
        "tokens_per_s": timed / max(now - window[0], 1e-9),
        "peak_mem_mb": peak_memory_mb(),
    }
    window[:] = [now, 0]
    logger.log(record, echo=bar.write)


def _evaluate_step(
    acc: Any,
    model: Any,
    dataset: Any,
    pad_id: int,
    recipe: Recipe,
    state: TrainState,
    logger: Any,
    bar: Any,
    save_to: Any,
    out_dir: Path,
) -> None:
    """Held-out loss now; a new best is written to ``<out>/best``; early stopping sets ``stopped_early_at``."""
    from training.trainer.heldout import evaluate, save_best

    res = evaluate(acc, model, dataset, pad_id, recipe.per_device_batch_size, recipe.eval.max_batches)
    best, stop = state.add_eval(state.step, res.loss, res.ppl, recipe.eval.early_stopping_patience)
    record = {"step": state.step, "eval_loss": res.loss, "eval_ppl": res.ppl, "eval_tokens": res.tokens}
    logger.log({**record, "eval_best_step": state.best_step}, echo=bar.write)
    if best:
        save_best(acc, lambda path: save_to(path, {"step": state.step, "loss": res.loss, "ppl": res.ppl}), out_dir)
    if stop:
        state.stopped_early_at = state.step
        acc.print(
            f"early stopping at step {state.step}: no lower held-out loss in {state.evals_since_best} evaluations "
            f"(best {state.best_loss:.4f} at step {state.best_step})"
        )


def _eval_manifest(state: TrainState, recipe: Recipe) -> dict[str, Any] | None:
    """The manifest's ``eval`` entry: the held-out curve, the best step and early stopping."""
    if not recipe.eval.enabled:
        return None
    best = None
    if state.best_loss is not None:
        best = {"step": state.best_step, "loss": state.best_loss, "ppl": math.exp(min(state.best_loss, 700))}
    return {
        "curve": state.eval_curve,
        "best": best,
        "best_dir": "best" if best else None,
        "stopped_early_at": state.stopped_early_at or None,
        "settings": dataclasses.asdict(recipe.eval),
    }


def _step(acc: Any, model: Any, optimizer: Any, micro: list[dict[str, Any]], max_norm: float, world: int):
    """One optimizer step over ``micro``: returns (summed token loss, loss tokens, real tokens, grad norm),
    all summed over processes."""
    import torch

    real = sum(int(m.pop("real_tokens")) for m in micro)

    # Labels are shifted inside the model: a token has a loss iff the label one to its right is not -100.
    local = sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)
    n_tok = int(acc.reduce(torch.tensor(local, device=acc.device), "sum"))
    from accelerate.utils import DistributedType

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    # DDP/FSDP average gradients over ranks; x world turns that into the global token sum / n_tok. The
    # DeepSpeed engine also divides by its accumulation steps: x len(micro) undoes it.
    scale = world * (len(micro) if deepspeed else 1)
    loss_sum = torch.zeros((), device=acc.device)
    for i, batch in enumerate(micro):
        if deepspeed:  # accumulate() tells the engine which micro-batch ends the step
            ctx: Any = acc.accumulate(model)
        elif i == len(micro) - 1:
            ctx = contextlib.nullcontext()
        else:
            ctx = acc.no_sync(model)
        with ctx:
            out = model(**batch, use_cache=False, num_items_in_batch=n_tok)
            acc.backward(out.loss * scale)
        loss_sum += out.loss.detach() * n_tok
    grad_norm = acc.clip_grad_norm_(model.parameters(), max_norm) if max_norm > 0 else None
    optimizer.step()
    total = float(acc.reduce(loss_sum, "sum"))
    real = int(acc.reduce(torch.tensor(real, device=acc.device), "sum"))
    return total, n_tok, real, float(grad_norm) if grad_norm is not None else float("nan")


def _save_checkpoint(acc: Any, ckpt_dir: Path, step: int, keep: int) -> None:
    final = ckpt_dir / f"{CKPT_PREFIX}{step:07d}"
    tmp = final.with_suffix(".partial")
    if acc.is_main_process:
        ckpt_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        tmp.rename(final)
        for old in complete_checkpoints(ckpt_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        acc.print(f"saved checkpoint {final}")
    acc.wait_for_everyone()


def _check_same_recipe(out_dir: Path, recipe: Recipe) -> None:
    """A resumed run must continue the same recipe; the first run records it."""
    path = out_dir / "recipe.json"
    current = recipe.to_dict()
    if path.exists():
        before = json.loads(path.read_text())
        # A field a recipe.json predates counts as its default (a run started before the field existed).
        defaults = Recipe.__dataclass_fields__
        changed = sorted(k for k in current if (before[k] if k in before else _default(defaults[k])) != current[k])
        if changed and complete_checkpoints(out_dir / "checkpoints"):
            raise ValueError(
                f"{out_dir} holds checkpoints of a run with a different recipe ({', '.join(changed)} differ); "
                "use another --out or remove it"
            )
    path.write_text(json.dumps(current, indent=2))


def _default(f: Any) -> Any:
    """A field's default as recipe.json holds it (a required field has none: never equal)."""
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is dataclasses.MISSING:
        return value
    return json.loads(json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value))
