"""``asclepius train eval CKPT``: the held-out perplexity of a trained checkpoint, before converting it.

What it measures: the mean token loss (and its exp, the perplexity) of a Hugging Face checkpoint

* on notes given with ``--data`` (a file or folder, the pretraining formats): every document as
  ``BOS note EOS``, cut into blocks of ``max_length`` tokens, the incomplete last block included;
* without ``--data``, on the held-out part of the run that wrote the checkpoint (its manifest names the data,
  the recipe's ``eval`` section and seed, so the split is rebuilt exactly): held-out notes for a pretraining
  checkpoint, the answer + EOS tokens of the held-out instructions for an SFT one.

It runs in one process (CPU, or the first GPU in bf16), with the same ``heldout.evaluate`` as the training
loop. It does not run the task-evaluation suites (``asclepius eval``): those generate through llama.cpp and
need the GGUF that ``quantize convert`` writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from training.trainer import MANIFEST_NAME


def read_manifest(ckpt: Path) -> dict[str, Any] | None:
    path = ckpt / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable training manifest: {exc}") from None


def _max_length(args: argparse.Namespace, manifest: dict[str, Any] | None, ckpt: Path) -> int:
    if args.max_length:
        return args.max_length
    if manifest and isinstance(manifest.get("recipe"), dict) and manifest["recipe"].get("max_length"):
        return int(manifest["recipe"]["max_length"])
    positions = json.loads((ckpt / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    return min(2048, int(positions or 2048))


def eval_dataset(args: argparse.Namespace, ckpt: Path, tokenizer: Any, cache: Path) -> tuple[Any, dict[str, Any]]:
    """The sequences to evaluate and a description of them."""
    from training.trainer import data as d
    from training.trainer.heldout import load_datasets
    from training.trainer.recipe import Recipe, recipe_from_dict

    manifest = read_manifest(ckpt)
    length = _max_length(args, manifest, ckpt)
    if args.data:
        bin_path, info = d.tokenize_corpus(Path(args.data), tokenizer, cache)
        blocks = d.PretrainBlocks(bin_path, info.dtype, length, keep_tail=True)
        return blocks, {"data": args.data, "kind": "notes", "documents": info.documents, "max_length": length}
    if not manifest or not (manifest.get("recipe") or {}).get("eval"):
        raise ValueError(f"{ckpt} has no training manifest with an evaluation split: give --data NOTES")
    fields = {k: v for k, v in manifest["recipe"].items() if k in Recipe.__dataclass_fields__}
    recipe = recipe_from_dict(fields, {"max_length": length}, f"of {ckpt / MANIFEST_NAME}")
    if not recipe.eval.enabled:
        raise ValueError(f"the run that wrote {ckpt} held nothing out (recipe eval.split 0, no eval.file): give --data")
    data_path = Path(manifest["data"]["path"])
    run = load_datasets(recipe, data_path, tokenizer, cache, contextlib.nullcontext)
    kind = "held-out notes" if recipe.stage == "pretrain" else "held-out instructions (answer + EOS tokens)"
    return run.held_out, {
        "data": str(data_path),
        "kind": kind,
        "held_out": run.manifest.get("held_out"),
        "max_length": length,
    }


def run_eval(args: argparse.Namespace) -> int:
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    from training.trainer.cli import check_positions, load_tokenizer
    from training.trainer.heldout import evaluate
    from training.trainer.loop import resolve_attention

    ckpt = Path(args.checkpoint)
    tokenizer = load_tokenizer(ckpt)
    cuda = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="asclepius-train-eval-") as cache:
        dataset, described = eval_dataset(args, ckpt, tokenizer, Path(cache))
        check_positions(argparse.Namespace(max_length=described["max_length"]), ckpt)
        dtype = torch.bfloat16 if cuda else torch.float32
        attn = resolve_attention("auto", cuda)
        model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=dtype, attn_implementation=attn)
        acc = Accelerator(cpu=not cuda)
        model = acc.prepare(model)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        res = evaluate(acc, model, dataset, pad_id, args.batch_size, args.max_batches)
    out = {"checkpoint": str(ckpt), **described, "loss": res.loss, "perplexity": res.ppl, "tokens": res.tokens}
    out["sequences"] = len(dataset)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"{ckpt}: perplexity {res.ppl:.4f} (mean token loss {res.loss:.4f} over {res.tokens:,} tokens, "
            f"{len(dataset)} sequences of at most {described['max_length']}; "
            f"{described['kind']} of {described['data']})"
        )
        print("task evaluation: convert first (asclepius quantize convert), then asclepius eval", file=sys.stderr)
    return 0
