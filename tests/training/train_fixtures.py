"""Shared pieces of the trainer tests: tiny checkpoints (built once per session), SFT rows, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Short, distinct answers: a tiny model can learn them exactly, and greedy decoding then shows it did.
SFT_ROWS = [
    {
        "note": "Patient admitted with community acquired pneumonia.\nTreated with ceftriaxone and azithromycin.",
        "question": "What antibiotics were given?",
        "answer": "Ceftriaxone and azithromycin.",
        "task": "Question Answering",
    },
    {
        "note": "Creatinine 1.8 mg/dL on admission, 1.1 mg/dL at discharge.",
        "question": "What was the creatinine at discharge?",
        "answer": "1.1 mg/dL at discharge.",
        "task": "Question Answering",
    },
    {
        "note": "History of atrial fibrillation on apixaban 5 mg twice daily.",
        "question": "Which anticoagulant does the patient take?",
        "answer": "Apixaban 5 mg twice daily.",
        "task": "Named Entity Recognition",
    },
    {
        "note": "Laparoscopic appendectomy on hospital day 2 without complications.",
        "question": "When was the appendectomy done?",
        "answer": "On hospital day 2.",
        "task": "Temporal Information Extraction",
    },
]

_CACHE: dict[str, Path] = {}


def tiny_model(tmp_path_factory: pytest.TempPathFactory, style: str = "llama1") -> Path:
    """A random tiny LLaMA/Mistral/Llama-3 checkpoint with a tokenizer trained on shared notes (cached)."""
    for module in ("torch", "transformers", "accelerate", "sentencepiece", "safetensors", "yaml"):
        pytest.importorskip(module, reason="the trainer tests need the train extra")
    if style not in _CACHE:
        from tests.fixtures_llama import build_tiny_checkpoint

        _CACHE[style] = build_tiny_checkpoint(tmp_path_factory.mktemp(f"tiny-{style}") / "model", style)
    return _CACHE[style]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def trainer_cmd(*args: str, app: bool = False) -> list[str]:
    module = "app.cli.main" if app else "training.trainer"
    return [sys.executable, "-m", module, *(["train"] if app else []), *args]


def run_trainer(*args: str, app: bool = False, env: dict | None = None, timeout: int = 600):
    return subprocess.run(
        trainer_cmd(*args, app=app),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def kill_after_first_checkpoint(*args: str, env: dict | None = None) -> tuple[int, list[str]]:
    """Run the trainer and SIGKILL it as soon as it reports a saved checkpoint: (exit status, lines seen)."""
    import signal

    proc = subprocess.Popen(
        trainer_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
    )
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "saved checkpoint" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    return proc.returncode, seen


def load_weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def run_torchrun(*args: str, nproc: int = 2, env: dict | None = None, timeout: int = 600):
    """``python -m training.trainer ARGS`` under torchrun with ``nproc`` CPU processes (gloo) on a free port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc)]
    torchrun += ["--master_addr", "127.0.0.1", "--master_port", port, "-m", "training.trainer"]
    return subprocess.run(
        [*torchrun, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def expect_ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``r`` if it exited 0, else a failure showing the ends of its output."""
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-5000:]}"
    return r
