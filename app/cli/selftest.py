"""``asclepius selftest``: an offline end-to-end check a user or IT can run on a new machine."""

from __future__ import annotations

import argparse
import os
import platform
import threading
from collections.abc import Callable
from typing import Any

import llama_cpp

from app import __version__
from app.cli.context import CliContext
from app.cli.policy_cmd import policy_lines
from app.core import netguard, netns
from app.core.errors import GenerationError
from app.core.llama_backends import ensure_cpu_backend
from app.core.types import AskRequest, FinishReason, SamplingParams
from resources import load_sample


def selftest(
    args: argparse.Namespace, ctx: CliContext, runner: Callable[[Callable[[threading.Event], Any]], Any]
) -> int:
    guard = netguard.install(block=True)
    shield = netns.protection()
    print(f"asclepius-desk {__version__}, Python {platform.python_version()}, {platform.platform()}")
    print(
        f"llama-cpp-python {llama_cpp.__version__}; CPU threads available {os.cpu_count()}, "
        f"using {ctx.config.engine.n_threads}"
    )
    print(ensure_cpu_backend().describe())
    print(f"llama.cpp system info: {llama_cpp.llama_print_system_info().decode().strip()}")
    print(f"data directory: {ctx.paths.data_dir}")
    print("policy: " + ("in force" if ctx.config.policy.in_force else "none"))
    for line in policy_lines(ctx.config.policy):
        print(f"  {line}")
    model = ctx.model(None)
    print(f"model: {model.display_name}  sha256 {model.short_sha}  ctx {model.context_length}")
    note = load_sample("pneumonia").text
    req = AskRequest(note, "Question Answering", "What was the creatinine on admission?", SamplingParams(max_tokens=48))
    with ctx.engine(model) as engine:
        result = runner(lambda cancel: engine.ask(req, cancel=cancel))
    print(
        f"answer ({result.finish_reason}, {result.completion_tokens} tokens, TTFT {result.ttft_s:.2f} s, "
        f"{result.decode_tokens_per_s:.1f} tokens/s): {result.answer.strip()!r}"
    )
    problems = []
    if result.finish_reason not in (FinishReason.STOP, FinishReason.LENGTH):
        problems.append(f"the run ended with {result.finish_reason}: {result.error}")
    if not result.answer.strip():
        problems.append("the model produced an empty answer")
    print(f"network protection: {shield.label}")
    for note in shield.isolation.notes:
        print(f"  note: {note}")
    seen = netns.interfaces()
    print(f"network interfaces visible: {', '.join(seen) or 'none'}")
    if shield.isolation.namespace and seen != ["lo"]:
        problems.append(f"the network namespace should hold only lo, yet the process sees {seen}")
    if guard.attempts:
        problems.append("network access was attempted: " + "; ".join(guard.attempts))
    else:
        print("network: no connection or DNS lookup was attempted from Python code")
    if problems:
        raise GenerationError("selftest failed: " + " | ".join(problems))
    print("selftest passed")
    return 0
