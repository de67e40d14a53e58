"""Evaluation while training (issue #26): the held-out split, the held-out loss against an independent
computation, TensorBoard's event file, the best checkpoint, early stopping and its resume, ``train eval``,
and the MLflow refusal. Tiny LLaMA on CPU, subprocesses with OMP_NUM_THREADS=1 (see test_train_run)."""

from __future__ import annotations

import json
import math
import signal

import pytest

from tests.training.train_fixtures import SFT_ROWS, kill_after_first_checkpoint, run_trainer, tiny_model, write_jsonl

pytest.importorskip("transformers", reason="the trainer tests need the train extra")

from training.trainer import data as d

pytestmark = pytest.mark.timeout(900)
ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
BLOCK = 128


@pytest.fixture(scope="module")
def llama1(tmp_path_factory):
    return tiny_model(tmp_path_factory, "llama1")


@pytest.fixture(scope="module")
def tokenizer(llama1):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(llama1)


def _ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    return r


def _sets(**kv) -> list[str]:
    return [x for k, v in kv.items() for x in ("--set", f"{k.replace('__', '.')}={v}")]


def _records(out):
    return [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]


def _manifest(model_dir):
    return json.loads((model_dir / "asclepius-train-manifest.json").read_text())


def test_sft_split_keeps_every_note_and_instruction_on_one_side(tmp_path, tokenizer):
    # Three instructions on each of 20 notes, and one note repeated word for word under another row order.
    rows = [
        {"note": f"Note {i}: admitted for pneumonia, day {i}.", "question": f"Q{j} about note {i}?", "answer": f"A{j}."}
        for i in range(20)
        for j in range(3)
    ]
    path = write_jsonl(tmp_path / "sft.jsonl", rows)
    held = d.split_keys(d.sft_note_keys(path), 0.25, seed=42)
    assert len(held) == 5  # a quarter of the 20 distinct notes, not of the 60 rows
    assert d.split_keys(d.sft_note_keys(write_jsonl(tmp_path / "rev.jsonl", rows[::-1])), 0.25, 42) == held
    assert d.split_keys(d.sft_note_keys(path), 0.25, seed=7) != held  # the seed decides
    train, ev = d.Part("train", held), d.Part("eval", held)
    side = {}
    for r in rows:
        assert train.keeps(r["note"]) != ev.keeps(r["note"])  # exactly one side
        side.setdefault(r["note"], set()).add(ev.keeps(r["note"]))
    assert all(len(s) == 1 for s in side.values())
    a, sa = d.build_sft(path, tokenizer, "asclepius-train", 512, part=train)
    b, sb = d.build_sft(path, tokenizer, "asclepius-train", 512, part=ev)
    assert (sa.rows, sb.rows) == (45, 15)
    assert not {tuple(x["input_ids"]) for x in a} & {tuple(x["input_ids"]) for x in b}
    with pytest.raises(d.DataError, match="leaves nothing to train on"):
        d.split_keys(["one note"] * 3, 0.5, 42)


def test_pretrain_split_by_document_before_tokenization(tmp_path, tokenizer, shared_data):
    from tests.fixtures_llama import training_texts

    texts = training_texts(30)
    corpus = write_jsonl(tmp_path / "notes.jsonl", [{"text": t} for t in texts])
    held = d.split_keys(d.document_keys(corpus), 0.2, 42)
    _, whole = d.tokenize_corpus(corpus, tokenizer, tmp_path / "c")
    _, tr = d.tokenize_corpus(corpus, tokenizer, tmp_path / "c", part=d.Part("train", held))
    _, ev = d.tokenize_corpus(corpus, tokenizer, tmp_path / "c", part=d.Part("eval", held))
    assert (tr.documents, ev.documents) == (24, 6) and tr.tokens + ev.tokens == whole.tokens
    assert len({tr.key, ev.key, whole.key}) == 3  # three cached token files, never one reused for another


def _independent_heldout_loss(model_dir, tokenizer, texts, held, n_blocks):
    """The held-out loss computed here from scratch: the held-out notes as BOS text EOS, 128-token blocks
    (the last one shorter), the first ``n_blocks`` of them, cross-entropy summed over next tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    stream = []
    for t in texts:
        if d.text_key(t) in held:
            stream += [tokenizer.bos_token_id, *tokenizer(t, add_special_tokens=False)["input_ids"]]
            stream.append(tokenizer.eos_token_id)
    blocks = [stream[i : i + BLOCK] for i in range(0, len(stream), BLOCK)][:n_blocks]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for b in blocks:
            ids = torch.tensor([b])
            logits = model(input_ids=ids).logits[0, :-1].double()
            total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += len(b) - 1
    return total / count, count


def test_heldout_loss_logged_every_n_steps_equals_an_independent_computation(llama1, tokenizer, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.fixtures_llama import training_texts

    texts = training_texts(40)
    corpus = write_jsonl(tmp_path / "notes.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "run"
    args = ["pretrain", "asclepius-7b-pretrain", "--model", str(llama1), "--data", str(corpus), "--out", str(out)]
    sets = _sets(gradient_checkpointing="false", logging_steps=1, max_length=BLOCK, global_batch_size=8)
    sets += _sets(learning_rate="1e-3", eval__split=0.15, eval__every_steps=3, eval__max_batches=3, save_steps=0)
    _ok(run_trainer(*args, "--max-steps", "7", *sets, env=ENV))

    evals = [r for r in _records(out) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [3, 6, 7]  # every 3 steps, and the last one
    m = _manifest(out / "model")
    assert m["eval"]["curve"] == [[r["step"], r["eval_loss"], r["eval_ppl"]] for r in evals]
    held = d.split_keys(d.document_keys(corpus), 0.15, 42)
    assert m["data"]["held_out"]["documents"] == len(held) == 6
    assert m["data"]["documents"] == 34  # the held-out notes are not trained on
    # The last evaluation ran on the final weights: recompute it (3 batches x 2 blocks per device).
    loss, count = _independent_heldout_loss(out / "model", tokenizer, texts, held, n_blocks=6)
    assert evals[-1]["eval_tokens"] == count
    assert evals[-1]["eval_loss"] == pytest.approx(loss, abs=1e-5)
    assert evals[-1]["eval_ppl"] == pytest.approx(math.exp(loss), rel=1e-5)

    acc = EventAccumulator(str(out / "logs" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    expected = {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/peak_mem_mb"}
    assert expected | {"eval/loss", "eval/ppl"} <= tags
    tb = [(e.step, e.value) for e in acc.Scalars("eval/loss")]
    assert [s for s, _ in tb] == [3, 6, 7]
    assert [v for _, v in tb] == pytest.approx([r["eval_loss"] for r in evals], rel=1e-6)  # float32 in TB
    train_loss = [e.value for e in acc.Scalars("train/loss")]
    assert train_loss == pytest.approx([r["loss"] for r in _records(out) if "loss" in r], rel=1e-6)
    assert {"recipe/text_summary", "data/text_summary"} <= set(acc.Tags()["tensors"])


def test_best_checkpoint_kept_early_stopping_and_resume(llama1, tmp_path):
    """lr 1.0 (after the warmup step at lr 0) soon makes the held-out loss climb: the run stops 4 evaluations
    after its best one, long before its 12 steps. A run killed after its first checkpoint resumes to the same
    curve, best and stop."""
    from tests.fixtures_llama import training_texts

    corpus = write_jsonl(tmp_path / "notes.jsonl", [{"text": t} for t in training_texts(40)])
    args = ["pretrain", "asclepius-7b-pretrain", "--model", str(llama1), "--data", str(corpus), "--max-steps", "12"]
    args += _sets(gradient_checkpointing="false", logging_steps=1, max_length=BLOCK, global_batch_size=8)
    args += _sets(learning_rate="1.0", eval__split=0.15, eval__every_steps=1, eval__early_stopping_patience=4)
    args += _sets(save_steps=2, save_total_limit=1)
    straight = tmp_path / "straight"
    r = _ok(run_trainer(*args, "--out", str(straight), env=ENV))
    m = _manifest(straight / "model")
    curve = m["eval"]["curve"]
    best = min(curve, key=lambda c: c[1])
    stop = best[0] + 4
    assert stop < 12 and f"early stopping at step {stop}" in r.stdout
    assert [s for s, _, _ in curve] == list(range(1, stop + 1)) and m["steps"] == stop
    assert m["eval"]["stopped_early_at"] == stop and all(c[1] > best[1] for c in curve[best[0] :])
    assert m["eval"]["best"] == {"step": best[0], "loss": best[1], "ppl": best[2]}
    # Rotation kept one checkpoint, a later one; the best model is aside and is the best step's.
    kept = [p.name for p in (straight / "checkpoints").iterdir()]
    assert len(kept) == 1 and int(kept[0][5:]) > best[0]
    assert _manifest(straight / "best")["best"] == m["eval"]["best"]
    assert _manifest(straight / "best")["steps"] == best[0]

    # train eval of the best model on the run's held-out split: exp(mean token loss) = the logged figures.
    ev = _ok(run_trainer("eval", str(straight / "best"), "--json", env=ENV))
    got = json.loads(ev.stdout)
    assert got["kind"] == "held-out notes" and got["loss"] == pytest.approx(best[1], abs=1e-6)
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]), rel=1e-12)
    text = _ok(run_trainer("eval", str(straight / "best"), app=True, env=ENV)).stdout
    assert f"perplexity {math.exp(got['loss']):.4f}" in text

    killed = tmp_path / "killed"
    returncode, seen = kill_after_first_checkpoint(*args, "--out", str(killed), env=ENV)
    assert returncode == -signal.SIGKILL and not (killed / "model").exists(), "".join(seen)[-3000:]
    _ok(run_trainer(*args, "--out", str(killed), env=ENV))
    m2 = _manifest(killed / "model")
    assert m2["resumed_from"] is not None
    assert m2["eval"]["curve"] == curve and m2["eval"]["best"] == m["eval"]["best"]
    assert m2["eval"]["stopped_early_at"] == stop
    assert [r["step"] for r in _records(killed) if "eval_loss" in r] == list(range(1, stop + 1))
    assert _manifest(killed / "best")["best"] == m["eval"]["best"]


def test_sft_eval_holds_out_instructions_and_train_eval_needs_data_without_a_split(llama1, tmp_path):
    rows = [dict(r, note=r["note"] + f" Visit {i}.") for i in range(4) for r in SFT_ROWS]
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    out = tmp_path / "sft"
    args = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--out", str(out)]
    sets = _sets(gradient_checkpointing="false", global_batch_size=4, eval__split=0.25, eval__every_steps=2)
    _ok(run_trainer(*args, "--max-steps", "2", *sets, "--set", "logging=[]", env=ENV))
    m = _manifest(out / "model")
    assert (m["data"]["rows"], m["data"]["held_out"]["rows"]) == (12, 4)
    assert not (out / "logs" / "tensorboard").exists()  # logging: [] writes train.jsonl only
    got = json.loads(_ok(run_trainer("eval", str(out / "model"), "--json", env=ENV)).stdout)
    assert got["kind"].startswith("held-out instructions") and got["loss"] == pytest.approx(m["eval"]["curve"][-1][1])

    r = run_trainer("eval", str(llama1), env=ENV)  # a base checkpoint: no manifest, no split
    assert r.returncode == 2 and "give --data" in r.stderr


def test_mlflow_is_refused_with_the_install_command_when_missing(llama1, tmp_path, capsys, monkeypatch):
    import importlib.util

    from training.trainer.cli import main
    from training.trainer.tracking import check_trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match="pip install mlflow"):
        check_trackers(("tensorboard", "mlflow"))
    check_trackers(("tensorboard",))
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    args = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--out", str(tmp_path / "o")]
    rc = main([*args, "--set", "logging=[tensorboard, mlflow]"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install mlflow" in err and not (tmp_path / "o").exists()


def test_eval_settings_are_checked_with_the_recipe():
    from training.trainer.recipe import RecipeError, load_recipe, parse_overrides

    r = load_recipe("asclepius-13b-pretrain", parse_overrides(["eval.split=0.05", "eval.every_steps=50"]))
    assert (r.eval.split, r.eval.every_steps, r.eval.early_stopping_patience, r.logging) == (
        0.05,
        50,
        0,
        ("tensorboard",),
    )
    with pytest.raises(RecipeError, match=r"unknown field 'eval\.patience'"):
        load_recipe("asclepius-13b-pretrain", {"eval.patience": 3})
    with pytest.raises(RecipeError, match="needs an evaluation set"):
        load_recipe("asclepius-13b-pretrain", {"eval.early_stopping_patience": 3})
    with pytest.raises(RecipeError, match="exclude each other"):
        load_recipe("asclepius-13b-pretrain", {"eval.split": 0.1, "eval.file": "x.jsonl"})
    with pytest.raises(RecipeError, match="logging: expected a list of one of 'tensorboard', 'mlflow'"):
        load_recipe("asclepius-13b-pretrain", {"logging": ["wandb"]})
