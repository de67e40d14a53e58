"""The run's output: a merged full-precision HF checkpoint (safetensors, config, tokenizer) and a manifest;
for an adapter run also the adapter (in its ``adapter/`` subfolder), with the same manifest.

``accelerate.get_state_dict`` gathers the full state dict from FSDP shards or ZeRO-3 partitions on the
main process, so the output is an ordinary ``from_pretrained`` directory whatever the launch was. The
manifest (``MANIFEST_NAME``) records the recipe, data hashes and counts, the base model, the prompt style
the model was trained with (``quantize convert`` writes it into the GGUF, so the app uses it), the code
commit and the losses.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.trainer import MANIFEST_NAME
from training.trainer.recipe import Recipe

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit (``+dirty`` when the work tree has changes), or None outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def base_model_info(model_dir: Path) -> dict[str, Any]:
    model_dir = Path(model_dir)
    info: dict[str, Any] = {"path": str(model_dir.resolve())}
    cfg = model_dir / "config.json"
    if cfg.exists():
        info["config_sha256"] = hashlib.sha256(cfg.read_bytes()).hexdigest()
        info["name_or_path"] = json.loads(cfg.read_text()).get("_name_or_path")
    parent = model_dir / MANIFEST_NAME
    if parent.exists():
        # SFT on a pretrained checkpoint: keep the chain of stages.
        prev = json.loads(parent.read_text())
        info["trained_by"] = {k: prev.get(k) for k in ("recipe", "data", "commit", "final_loss", "created_utc")}
    return info


def save_final(
    acc: Any,
    model: Any,
    tokenizer: Any,
    recipe: Recipe,
    out: Path,
    state: Any,
    extra: dict[str, Any],
    seconds: float,
    tokenizer_src: Path,
) -> Path | None:
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[recipe.save_dtype]
    full = acc.get_state_dict(model)
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return None
    unwrapped = acc.unwrap_model(model)
    if recipe.adapter != "none":
        # The adapter in the checkpoint's own folder (a run may write several: the final one, the best one);
        # the merge reloads the base (see training.trainer.adapters).
        from training.trainer import adapters

        adapter_dir = adapters.save_adapter(unwrapped, full, out / adapters.ADAPTER_DIR)
        write_manifest(adapter_dir, recipe, state, extra, seconds)
        unwrapped = adapters.merged_model(tokenizer_src, adapter_dir)
        full = unwrapped.state_dict()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    full = {k: v.detach().to("cpu", dtype) if v.is_floating_point() else v.cpu() for k, v in full.items()}
    unwrapped.config.use_cache = True
    # Original LLaMA-1 configs carry wrong BOS/EOS ids (0/1); the tokenizer's are the ones trained on.
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    for cfg in (unwrapped.config, getattr(unwrapped, "generation_config", None)):
        if cfg is not None and bos is not None and eos is not None:
            cfg.bos_token_id, cfg.eos_token_id = bos, eos
    unwrapped.config.dtype = dtype
    unwrapped.save_pretrained(out, state_dict=full, safe_serialization=True)
    copy_tokenizer(tokenizer, tokenizer_src, out)
    write_manifest(out, recipe, state, extra, seconds)
    return out


def copy_tokenizer(tokenizer: Any, src: Path, out: Path) -> None:
    """The base model's tokenizer files, byte for byte (``quantize.adapter.TOKENIZER_FILES`` says why); a base
    without tokenizer files gets the loaded tokenizer saved."""
    from quantize.adapter import copy_tokenizer_files

    if not copy_tokenizer_files(src, out):
        tokenizer.save_pretrained(out)


def write_manifest(out: Path, recipe: Recipe, state: Any, extra: dict[str, Any], seconds: float) -> Path:
    import accelerate
    import torch
    import transformers

    from resources.prompts import get_style

    style = get_style(recipe.prompt_style) if recipe.prompt_style else None
    manifest = {
        "format": 1,
        "stage": recipe.stage,
        "recipe": recipe.to_dict(),
        "prompt_style": style.id if style else None,
        "prompt_style_key": style.key if style else None,
        "commit": git_commit(),
        "steps": state.step,
        "tokens": state.tokens,
        "losses": state.losses,
        "final_loss": state.losses[-1][1] if state.losses else None,
        "seconds": round(seconds, 3),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
        },
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "written_at_unix": time.time(),
        **extra,
    }
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2))
    path.chmod(0o600)
    return path
