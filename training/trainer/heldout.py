"""Held-out data: the split (before tokenization or packing), the distributed held-out loss, the best
checkpoint, and the datasets of a run.

The held-out loss is the mean over held-out *tokens* (pretraining: every token of the held-out notes,
incomplete last block included; SFT: the answer + EOS tokens of the held-out instructions), summed on every
rank and all-reduced before the division, so it does not depend on the world size or the batch cut;
perplexity is its exp. Every rank runs the same number of forward passes (a rank with no batch left runs a
dummy one whose loss is not counted): FSDP and ZeRO-3 gather parameters collectively and would hang
otherwise.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.trainer.recipe import Recipe

BEST_DIR = "best"


@dataclass
class EvalResult:
    """One evaluation of the held-out set."""

    loss: float
    """Mean token loss over the held-out tokens evaluated (nan when there were none)."""
    tokens: int
    """Held-out tokens with a loss."""
    batches: int
    """Micro-batches evaluated over all processes."""

    @property
    def ppl(self) -> float:
        return math.exp(self.loss) if self.loss < 700 else float("inf")  # exp overflows past ~709


def evaluate(acc: Any, model: Any, dataset: Any, pad_id: int, per_device: int, max_batches: int = 0) -> EvalResult:
    """Held-out loss of ``model`` on ``dataset`` (a sequence of ``data.collate`` rows): micro-batch ``b`` on
    rank ``b % world``, in dataset order; ``max_batches`` > 0 keeps the first ones only."""
    import torch

    from training.trainer.data import IGNORE, collate

    n_batches = math.ceil(len(dataset) / per_device)
    if max_batches:
        n_batches = min(n_batches, max_batches)
    world, rank = acc.num_processes, acc.process_index
    loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
    n_tok = torch.zeros((), dtype=torch.long, device=acc.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for r in range(math.ceil(n_batches / world)):
            b = r * world + rank
            real = b < n_batches
            first = b * per_device if real else 0  # the dummy pass of a rank with nothing left
            rows = [dataset[i] for i in range(first, min(len(dataset), first + per_device))]
            batch = collate(rows, pad_id)
            batch.pop("real_tokens")
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            out = model(**batch, use_cache=False)
            # Labels are shifted inside the model: a token has a loss iff the label to its right is not -100.
            n = int((batch["labels"][:, 1:] != IGNORE).sum())
            if real and n:
                loss_sum += out.loss.detach().double() * n  # the batch's mean x its tokens = its token sum
                n_tok += n
    model.train(was_training)
    total, count = float(acc.reduce(loss_sum, "sum")), int(acc.reduce(n_tok, "sum"))
    return EvalResult(loss=total / count if count else float("nan"), tokens=count, batches=n_batches)


def save_best(acc: Any, save: Any, out_dir: Path) -> Path:
    """Write the best model so far to ``out_dir/best`` through ``save(path)`` (the run's ``save_final``;
    collective: every rank calls it). Written aside and swapped in, so a kill leaves the previous best or
    the new one; checkpoint rotation never touches it."""
    final, tmp, old = out_dir / BEST_DIR, out_dir / f"{BEST_DIR}.partial", out_dir / f"{BEST_DIR}.old"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    save(tmp)
    if acc.is_main_process:
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


@dataclass
class RunData:
    """What ``load_datasets`` built for a run."""

    train: Any
    """The training sequences (``PretrainBlocks`` or a list of SFT rows, packed or not)."""
    held_out: Any | None
    """The evaluation sequences (never packed: each held-out instruction is its own row), or None."""
    manifest: dict[str, Any]
    """The ``data`` entry of the manifest (paths, hashes, counts, the held-out part's counts)."""
    summary: str
    """One line of counts for the terminal."""


def load_datasets(recipe: Recipe, data_path: Path, tokenizer: Any, cache_dir: Path, node_first: Any) -> RunData:
    """The train and held-out datasets of ``recipe`` over ``data_path``: the split is by note (pretraining:
    document), before tokenization or packing, chosen by the recipe's seed; ``eval.file`` is held out whole."""
    from training.trainer import data as d

    ev = recipe.eval
    train_part = eval_part = None
    eval_path = Path(ev.file) if ev.file else data_path
    if ev.file:
        d.data_files(eval_path)
    elif ev.split > 0:
        keys = d.document_keys(data_path) if recipe.stage == "pretrain" else d.sft_note_keys(data_path)
        held = d.split_keys(keys, ev.split, recipe.seed)
        train_part, eval_part = d.Part("train", held), d.Part("eval", held)
    if recipe.stage == "pretrain":
        with node_first():  # one tokenization per node; the others reuse its file
            bin_path, info = d.tokenize_corpus(data_path, tokenizer, cache_dir, part=train_part)
            ev_tok = d.tokenize_corpus(eval_path, tokenizer, cache_dir, part=eval_part) if ev.enabled else None
        train: Any = d.PretrainBlocks(bin_path, info.dtype, recipe.max_length)
        held_out = d.PretrainBlocks(ev_tok[0], ev_tok[1].dtype, recipe.max_length, keep_tail=True) if ev_tok else None
        manifest = {
            "path": str(data_path),
            "sha256": info.data_sha256,
            "documents": info.documents,
            "empty_documents": info.empty_documents,
            "tokens": info.tokens,
            "blocks": len(train),
            "dropped_tail_tokens": train.dropped_tokens,
            "token_file": str(bin_path),
        }
        if ev_tok:
            manifest["held_out"] = {"path": str(eval_path), "documents": ev_tok[1].documents}
            manifest["held_out"].update(tokens=ev_tok[1].tokens, blocks=len(held_out or []))
        summary = f"{info.documents} documents, {info.tokens} tokens -> {len(train)} blocks of {recipe.max_length}"
        if ev_tok:
            summary += f"; held out {ev_tok[1].documents} documents, {ev_tok[1].tokens} tokens"
        return RunData(train, held_out, manifest, summary)
    build = (tokenizer, recipe.prompt_style, recipe.max_length, recipe.strip_text)
    examples, st = d.build_sft(data_path, *build, part=train_part)
    train = d.pack_examples(examples, recipe.max_length) if recipe.packing else examples
    manifest = {"path": str(data_path), "sha256": d.hash_data(data_path), **vars(st), "sequences": len(train)}
    summary = (
        f"{st.rows} rows -> {st.examples} examples ({st.dropped_truncated} dropped as longer than "
        f"{recipe.max_length} tokens, {st.dropped_empty} with an empty field), {st.answer_tokens} loss tokens"
        + (f", packed into {len(train)} sequences" if recipe.packing else "")
    )
    held_out = None
    if ev.enabled:
        held_out, est = d.build_sft(eval_path, *build, part=eval_part)
        manifest["held_out"] = {"path": str(eval_path), **vars(est)}
        summary += f"; held out {est.rows} rows -> {est.examples} examples, {est.answer_tokens} loss tokens"
    return RunData(train, held_out, manifest, summary)
