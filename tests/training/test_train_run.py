"""The trainer end to end on CPU with tiny LLaMA checkpoints built in the test:

* overfitting four SFT examples, then the answers reproduced by the desktop engine through
  ``quantize convert`` -> GGUF -> ``asclepius ask`` (prompt style taken from the training manifest);
* 2 processes (torchrun, gloo, DDP) == 1 process with 2x accumulation;
* a run killed with SIGKILL after a checkpoint and resumed == an uninterrupted run;
* bad input: clear errors and exit codes from the command line.

Subprocesses run with OMP_NUM_THREADS=1: on a loaded 2-core machine OpenMP spin-waiting made a tiny
model's step ~30x slower with 2 threads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.training.train_fixtures import (
    ROOT,
    SFT_ROWS,
    kill_after_first_checkpoint,
    load_weights,
    run_trainer,
    tiny_model,
    write_jsonl,
)

# Several trainer processes per test; on a loaded 2-core machine one test can pass the default 300 s.
pytestmark = pytest.mark.timeout(900)

ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
QUICK = ["--set", "gradient_checkpointing=false", "--set", "logging_steps=1"]


@pytest.fixture(scope="module")
def llama1(tmp_path_factory):
    return tiny_model(tmp_path_factory, "llama1")


def _ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    return r


def test_overfit_sft_then_gguf_answers_through_asclepius_ask(llama1, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    out = tmp_path / "run"
    args = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--out", str(out)]
    sets = ["global_batch_size=4", "epochs=100", "learning_rate=1e-2", "save_steps=0"]
    _ok(run_trainer(*args, "--max-steps", "50", *QUICK, *[x for s in sets for x in ("--set", s)], app=True, env=ENV))

    model = out / "model"
    manifest = json.loads((model / "asclepius-train-manifest.json").read_text())
    assert manifest["prompt_style"] == "asclepius-train" and manifest["steps"] == 50
    assert manifest["data"]["examples"] == 4 and manifest["data"]["answer_tokens"] > 0
    assert manifest["grad_accum"] == 2 and manifest["world_size"] == 1
    losses = [loss for _, loss in manifest["losses"]]
    assert losses[0] > 3.0 and manifest["final_loss"] < 0.02  # answer-token loss only: near zero means learned
    logged = [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]
    assert len(logged) == 50 and {"loss", "lr", "grad_norm", "tokens_per_s", "peak_mem_mb"} <= set(logged[-1])
    assert (model / "model.safetensors").exists() and (model / "tokenizer.model").exists()

    gguf = tmp_path / "trained.gguf"
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "ASCLEPIUS_HOME": str(tmp_path / "home")}
    conv = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "quantize", "convert", str(model), "-o", str(gguf), "--outtype", "f32"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    _ok(conv)
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields["asclepius.prompt_style"]
    assert bytes(field.parts[field.data[0]]).decode() == "asclepius-train"  # from the manifest, not a flag

    for row in SFT_ROWS:
        note = tmp_path / "note.txt"
        note.write_text(row["note"], encoding="utf-8")
        ask_args = ["ask", "--note", str(note), "--task", "qa", "--model", str(gguf), "--temperature", "0"]
        ask = subprocess.run(
            [sys.executable, "-m", "app.cli.main", *ask_args, "--max-tokens", "40", "--no-log", row["question"]],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        _ok(ask)
        assert ask.stdout.strip() == row["answer"]
        assert "-- stop:" in ask.stderr  # ended at EOS, as trained (answer + EOS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process_with_double_accumulation(llama1, tmp_path):
    """DDP over gloo on CPU (accelerate refuses FSDP without an accelerator device: the FSDP configs are
    for GPUs). Rows have different answer lengths, so a per-micro-batch mean would weigh tokens unequally
    and the two runs would differ; with the step's loss normalised by its all-reduced token count they agree
    up to fp32 rounding of the cross-rank sum. Tolerance 1e-6 absolute: weights are O(0.1-1), fp32 epsilon is
    1.2e-7, and a wrong data split or token weighting moves weights by ~lr = 1e-3."""
    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS * 2)
    common = ["sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(data), "--max-steps", "4", *QUICK]
    common += ["--set", "global_batch_size=8", "--set", "epochs=10", "--set", "learning_rate=1e-3"]
    # The 1-process side also recomputes activations (gradient checkpointing): that must not change the result.
    one = _ok(run_trainer(*common, "--set", "gradient_checkpointing=true", "--out", str(tmp_path / "one"), env=ENV))
    port = str(_free_port())
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", port, "-m", "training.trainer"]
    two = subprocess.run(
        [*torchrun, *common, "--out", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, **ENV, "PYTHONPATH": str(ROOT)},
    )
    _ok(two)
    assert "world 1 x accumulation 4" in one.stdout and "world 2 x accumulation 2" in two.stdout
    a, b = load_weights(tmp_path / "one" / "model"), load_weights(tmp_path / "two" / "model")
    base = load_weights(llama1)
    assert a.keys() == b.keys()
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    assert moved > 1e-4  # the runs trained (lr 1e-3, 3 effective steps after warmup)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_killed_run_resumes_to_the_same_weights(llama1, tmp_path, shared_data):
    from tests.fixtures_llama import training_texts

    corpus = write_jsonl(tmp_path / "notes.jsonl", [{"text": t} for t in training_texts(40)])
    args = ["pretrain", "asclepius-7b-pretrain", "--model", str(llama1), "--data", str(corpus), "--max-steps", "12"]
    args += [*QUICK, "--set", "max_length=128", "--set", "global_batch_size=8", "--set", "save_steps=3"]
    args += ["--set", "learning_rate=1e-3", "--set", "epochs=5"]
    _ok(run_trainer(*args, "--out", str(tmp_path / "straight"), env=ENV))
    # The killed run logs every 2 steps and checkpoints at step 3, mid-window: its logged loss is the mean of the
    # window's steps (not the last step's), and the half-window before the kill is counted after the resume.
    args += ["--set", "logging_steps=2"]

    out = tmp_path / "killed"
    returncode, seen = kill_after_first_checkpoint(*args, "--out", str(out), env=ENV)
    assert returncode == -signal.SIGKILL, "".join(seen)[-3000:]
    assert not (out / "model").exists()  # killed mid-run: no final model
    assert (out / "checkpoints" / "step-0000003").is_dir()

    # As if the killed run had logged steps past its checkpoint before dying (it may or may not have, by timing).
    with (out / "logs" / "train.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": 6, "loss": 99.0}) + "\n" + '{"step": 8, "lo')  # and a torn last line
    resumed = _ok(run_trainer(*args, "--out", str(out), env=ENV))
    assert "resumed from" in resumed.stdout + resumed.stderr
    a, b = load_weights(tmp_path / "straight" / "model"), load_weights(out / "model")
    # Same process layout and data order, optimizer/scheduler/RNG restored exactly: the same arithmetic.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-7
    m1 = json.loads((tmp_path / "straight" / "model" / "asclepius-train-manifest.json").read_text())
    m2 = json.loads((out / "model" / "asclepius-train-manifest.json").read_text())
    assert m2["resumed_from"] is not None and m1["resumed_from"] is None
    assert m1["data"]["documents"] == 40 and m1["data"]["blocks"] > 8 and m1["prompt_style"] is None
    every = dict(m1["losses"])  # the straight run logged every step
    assert [s for s, _ in m2["losses"]] == [2, 4, 6, 8, 10, 12]
    for step, loss in m2["losses"]:
        assert loss == pytest.approx((every[step - 1] + every[step]) / 2, abs=1e-6), step
    logged = [json.loads(x) for x in (out / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4, 6, 8, 10, 12]  # no step twice, nothing from after the kill
    assert [r["loss"] for r in logged] == [loss for _, loss in m2["losses"]]
    assert m2["tokens"] == m1["tokens"]


def test_command_line_bad_input(llama1, tmp_path, capsys, monkeypatch):
    from training.trainer.cli import main

    data = write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)
    base = ["--data", str(data), "--out", str(tmp_path / "o")]

    def run(*args):
        rc = main(list(args))
        return rc, capsys.readouterr().err

    # Through the asclepius command (subprocess: it installs the network guard in its process).
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((llama1 / f).read_bytes())
    r = run_trainer("sft", "asclepius-7b-sft", "--model", str(no_tok), *base, app=True, env=ENV)
    assert r.returncode == 4 and "has no tokenizer" in r.stderr and "Traceback" not in r.stderr
    r = run_trainer("sft", "asclepius-7b-sft", "--model", str(llama1), *base, app=True, env={"WORLD_SIZE": "2"})
    assert r.returncode == 2 and "torchrun" in r.stderr  # asclepius blocks sockets; -m training.trainer does not

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nstage: sft\nfamily: llama1\nbase_model: b\nmax_length: 64\nprompt_style: asclepius\nlr: 1\n"
    )
    rc, err = run("sft", str(bad), "--model", str(llama1), *base)
    assert rc == 2 and "unknown field 'lr'" in err
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(llama1), *base, "--set", "packing=maybe")
    assert rc == 2 and "packing: expected bool" in err
    rc, err = run("pretrain", "asclepius-7b-sft", "--model", str(llama1), *base)
    assert rc == 2 and "is a sft recipe" in err
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(tmp_path / "nowhere"), *base)
    assert rc == 4 and "does not exist" in err

    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(empty), "--out", str(tmp_path / "e"))
    assert rc == 2 and "is empty" in err
    cols = write_jsonl(tmp_path / "cols.jsonl", [{"instruction": "q", "output": "a"}])
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(llama1), "--data", str(cols), "--out", str(tmp_path / "c"))
    assert rc == 2 and "missing note, question, answer" in err
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(llama1), *base)  # 4 rows < one global batch
    assert rc == 2 and "fewer than one global batch of 128" in err

    # The tiny LLaMA has 2,048 positions; the Llama-2 recipe's 4,096-token blocks are refused before any work.
    rc, err = run("sft", "llama2-7b-sft", "--model", str(llama1), *base)
    assert rc == 2 and "max_length 4096 exceeds the model's max_position_embeddings 2048" in err

    monkeypatch.setenv("WORLD_SIZE", "3")
    rc, err = run("sft", "asclepius-7b-sft", "--model", str(llama1), *base)
    assert rc == 2 and "not divisible by per_device_batch_size 2 x world size 3" in err


def test_plan_command_reports_every_term_and_the_fit(llama1):
    r = _ok(run_trainer("plan", "asclepius-7b-sft", "--gpus", "8", "--gpu-mem", "80", "--json", app=True))
    plan = json.loads(r.stdout)
    assert 6.7e9 < plan["params"] < 6.8e9  # LLaMA-7B: 6.74 B parameters
    assert plan["weights_gb"] == pytest.approx(4 * plan["params"] / 8 / 1e9)
    assert plan["optimizer_gb"] == pytest.approx(2 * plan["weights_gb"])
    assert plan["activations_full_gb"] > 5 * plan["activations_checkpointed_gb"] and plan["fits"] is True
    small = _ok(
        run_trainer("plan", "asclepius-13b-sft", "--gpus", "1", "--gpu-mem", "80", "--set", "global_batch_size=2")
    )
    assert "does NOT fit in 80 GB" in small.stdout
    tiny = json.loads(
        _ok(run_trainer("plan", "asclepius-7b-sft", "--model", str(llama1), "--gpus", "1", "--json")).stdout
    )
    assert tiny["params"] == sum(v.numel() for v in load_weights(llama1).values())
