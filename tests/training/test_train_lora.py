"""LoRA on CPU with the tiny LLaMA checkpoint (QLoRA needs CUDA and is refused here):

* only the adapter trains: its parameter count is r x (in + out) per adapted projection, the optimizer and
  the checkpoints hold only it, and the merged checkpoint differs from the base only where adapters sit;
* the merged checkpoint computes the logits of the base with its adapter (PEFT, unmerged) to 1e-5;
* a run killed with SIGKILL after a checkpoint resumes to the same adapter, bit for bit (dropout on: the
  RNG state is restored too);
* ``quantize convert --adapter ADAPTER BASE`` gives the GGUF that converting the merged checkpoint gives.

Subprocesses run with OMP_NUM_THREADS=1 (see test_train_run.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.training.train_fixtures import (
    ROOT,
    SFT_ROWS,
    expect_ok,
    kill_after_first_checkpoint,
    load_weights,
    run_torchrun,
    run_trainer,
    tiny_model,
    write_jsonl,
)

pytest.importorskip("peft", reason="adapters need peft (the train extra)")
pytestmark = pytest.mark.timeout(900)

ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
LORA = ["--set", "adapter=lora", "--set", "lora.r=4", "--set", "gradient_checkpointing=false"]
LORA += ["--set", "logging_steps=1", "--set", "global_batch_size=4", "--set", "epochs=20"]


@pytest.fixture(scope="module")
def llama1(tmp_path_factory):
    return tiny_model(tmp_path_factory, "llama1")


@pytest.fixture(scope="module")
def lora_run(llama1, tmp_path_factory):
    """One LoRA SFT run (8 steps, lr 1e-2 so that the adapter visibly moves the logits)."""
    tmp = tmp_path_factory.mktemp("lora-run")
    data = write_jsonl(tmp / "sft.jsonl", SFT_ROWS * 2)
    args = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--out", str(tmp / "run")]
    r = expect_ok(
        run_trainer(*args, "--max-steps", "8", *LORA, "--set", "learning_rate=1e-2", "--set", "save_steps=4", env=ENV)
    )
    return tmp / "run", r.stdout + r.stderr


def test_only_the_adapter_trains_and_is_saved(llama1, lora_run):
    from training.trainer.adapters import adapter_params
    from training.trainer.plan import ModelShape
    from training.trainer.recipe import load_recipe

    out, log = lora_run
    shape = ModelShape.from_config(llama1 / "config.json")
    recipe = load_recipe("asclepius-7b-sft", {"adapter": "lora", "lora.r": 4})
    expected = adapter_params(shape, recipe.lora)
    # hidden 64, intermediate 128, 2 layers, r 4: 4 x (4 x 128 + 3 x 192 + 320) x 2 = 11,264
    assert expected == 4 * (4 * (64 + 64) + 2 * (64 + 128) + (128 + 64)) * 2
    assert f"trainable parameters: {expected:,} of {shape.params + expected:,}" in log
    manifest = json.loads((out / "model" / "asclepius-train-manifest.json").read_text())
    assert manifest["parameters"] == {"trainable": expected, "total": shape.params + expected}
    assert manifest["recipe"]["adapter"] == "lora" and manifest["recipe"]["lora"]["r"] == 4
    assert json.loads((out / "model" / "adapter" / "asclepius-train-manifest.json").read_text())["steps"] == 8

    from safetensors.torch import load_file

    adapter = load_file(str(out / "model" / "adapter" / "adapter_model.safetensors"))
    assert sum(v.numel() for v in adapter.values()) == expected
    assert json.loads((out / "model" / "adapter" / "adapter_config.json").read_text())["r"] == 4
    # The resumable checkpoint holds the adapter only, and the optimizer state covers only it.
    ckpt = out / "checkpoints" / "step-0000004"
    saved = load_file(str(ckpt / "model.safetensors"))
    assert all(".lora_A." in k or ".lora_B." in k for k in saved) and sum(v.numel() for v in saved.values()) == expected
    import torch

    opt = torch.load(ckpt / "optimizer.bin", weights_only=True)
    assert sum(s["exp_avg"].numel() for s in opt["state"].values()) == expected

    base, merged = load_weights(llama1), load_weights(out / "model")
    assert base.keys() == merged.keys()
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert changed == {k for k in base if any(f".{t}." in k for t in targets)}  # nothing else moved


def test_merged_logits_equal_the_unmerged_adapter(llama1, lora_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out, _ = lora_run
    ids = torch.arange(3, 67).reshape(2, 32)
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(llama1, dtype=torch.float32).eval()
        plain = base(input_ids=ids).logits
        peft_model = PeftModel.from_pretrained(base, str(out / "model" / "adapter")).eval()
        unmerged = peft_model(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32).eval()(input_ids=ids).logits
    assert float((unmerged - plain).abs().max()) > 1e-2  # the adapter changes what the model computes
    assert float((merged - unmerged).abs().max()) <= 1e-5


def test_two_processes_equal_one_for_lora(llama1, tmp_path):
    """As test_train_run's full fine-tuning check (DDP over gloo): the adapter of 2 processes with half the
    accumulation equals the adapter of one. Dropout off: each process draws its own masks. The tolerance is
    the full fine-tuning test's relative to the step size, lr x 1e-3 (there 1e-6 at lr 1e-3, here 1e-5 at
    lr 1e-2): AdamW divides each step by the gradient's running RMS, so fp32 rounding of the cross-rank sum
    grows with lr (measured 1.2e-7 at lr 1e-3, 6.9e-6 at lr 1e-2), while a wrong data split or token weighting
    moves adapters by ~lr."""
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS * 2)
    common = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--max-steps", "4", *LORA]
    common += ["--set", "global_batch_size=8", "--set", "learning_rate=1e-2", "--set", "lora.dropout=0.0"]
    one = expect_ok(run_trainer(*common, "--out", str(tmp_path / "one"), env=ENV))
    two = expect_ok(run_torchrun(*common, "--out", str(tmp_path / "two"), env=ENV))
    assert "world 1 x accumulation 4" in one.stdout and "world 2 x accumulation 2" in two.stdout
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "one" / "model" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float(a[k].abs().max()) for k in a if "lora_B" in k) > 1e-3  # B starts at zero: it trained
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


def test_killed_lora_run_resumes_to_the_same_adapter(llama1, tmp_path):
    from safetensors.torch import load_file

    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS * 4)
    args = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--max-steps", "12", *LORA]
    args += ["--set", "learning_rate=1e-3", "--set", "save_steps=3", "--set", "lora.dropout=0.2"]
    expect_ok(run_trainer(*args, "--out", str(tmp_path / "straight"), env=ENV))

    out = tmp_path / "killed"
    returncode, seen = kill_after_first_checkpoint(*args, "--out", str(out), env=ENV)
    assert returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not (out / "model").exists() and (out / "checkpoints" / "step-0000003").is_dir()

    resumed = expect_ok(run_trainer(*args, "--out", str(out), env=ENV))
    assert "resumed from" in resumed.stdout + resumed.stderr
    a = load_file(str(tmp_path / "straight" / "model" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(out / "model" / "adapter" / "adapter_model.safetensors"))
    import torch

    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    first = json.loads((out / "model" / "asclepius-train-manifest.json").read_text())
    assert first["resumed_from"] is not None


def test_convert_with_adapter_equals_converting_the_merged_model(llama1, lora_run, tmp_path):
    from gguf import GGUFReader

    out, _ = lora_run
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "ASCLEPIUS_HOME": str(tmp_path / "home")}

    def convert(*args):
        cmd = [sys.executable, "-m", "app.cli.main", "quantize", "convert", *args, "--outtype", "f32"]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    expect_ok(convert(str(out / "model"), "-o", str(tmp_path / "merged.gguf")))
    expect_ok(convert("--adapter", str(out / "model" / "adapter"), str(llama1), "-o", str(tmp_path / "adapter.gguf")))
    a, b = GGUFReader(str(tmp_path / "merged.gguf")), GGUFReader(str(tmp_path / "adapter.gguf"))
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    assert all((x.data == y.data).all() for x, y in zip(a.tensors, b.tensors, strict=True))
    field = b.fields["asclepius.prompt_style"]
    assert bytes(field.parts[field.data[0]]).decode() == "asclepius-train"  # the adapter's manifest
    assert not [p for p in tmp_path.iterdir() if ".merge-" in p.name]  # the temporary merge is gone

    r = convert("--adapter", str(llama1), str(llama1), "-o", str(tmp_path / "x.gguf"))
    assert r.returncode == 4 and "not an adapter directory" in r.stderr


@pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import torch,sys; sys.exit(torch.cuda.is_available())"]).returncode,
    reason="a CUDA machine may run qlora",
)
def test_qlora_is_refused_without_cuda_before_anything_loads(tmp_path):
    # The model directory does not exist: the refusal must come first, naming the way out.
    r = run_trainer(
        "sft", "asclepius-7b-sft", "--model", str(tmp_path / "none"), "--data", str(tmp_path / "none.jsonl"),
        "--out", str(tmp_path / "o"), "--set", "adapter=qlora", app=True, env=ENV,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "adapter qlora needs a CUDA GPU" in r.stderr and "--set adapter=lora" in r.stderr
    assert "Traceback" not in r.stderr
