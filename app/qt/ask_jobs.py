"""The ask jobs the screens run in a worker, and what the screens show of their outcome.

* ``ask_all`` / ``ask_each`` (Ask, Compare, Run all tasks) and ``report_prompt`` (the prompt-progress
  meter) run as ``app.qt.workers.Job`` work functions: they call ``app.service.AskService`` (validation,
  sampling, logging and grounding happen there, once) and report through the job's signals.
* ``ScreenOutcome`` is an ``AskOutcome`` as a screen shows it: with where the validated note starts in the
  editor, so grounding offsets land on the right characters.
* ``metrics_line`` and ``provenance_footer`` are the text a screen shows or copies with an answer.

No widgets here: the screens (``ask_tab``, ``compare_tab``, ``run_all_panel``) own those.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

from app.core.backend import PromptTokenizingEngine
from app.core.grounding import GroundingReport
from app.core.grounding.text import report_lines
from app.core.types import AskRequest, ModelInfo, RunResult
from app.qt.workers import Job
from app.service import AskOutcome, AskService
from app.service.streams import OrderedStream


@dataclass(frozen=True)
class ScreenOutcome:
    request: AskRequest
    result: RunResult
    model: ModelInfo
    run_id: int | None
    """None when the log was unavailable (the answer is still shown; ``log_error`` says why)."""
    report: GroundingReport
    """The service's grounding report (offsets in the answer and in the validated note)."""
    note_offset: int
    """Where the validated note starts in the editor text (leading whitespace is stripped)."""
    log_error: str | None = None

    @classmethod
    def of(cls, o: AskOutcome, note_offset: int = 0) -> ScreenOutcome:
        return cls(o.request, o.result, o.model, o.run_id, o.grounding, note_offset, o.log_error)


def leading_offset(text: str) -> int:
    return len(text) - len(text.lstrip())


def ask_all(
    job: Job,
    service: AskService,
    requests: list[AskRequest],
    model: ModelInfo | None = None,
    *,
    headers: bool = False,
    note_offset: int = 0,
) -> list[ScreenOutcome]:
    """Several questions about one note, answered together, streamed to the job in order (header per task).

    The service may decode the answers in parallel; ``OrderedStream`` shows request 0's text live and
    each later answer as soon as the ones before it are done, so one text view stays readable.
    """
    n = len(requests)
    finished = [0]

    def header(i: int) -> str:
        return ("\n\n" if i else "") + f"## {requests[i].task}\n{requests[i].instruction}\n\n"

    stream = OrderedStream(n, job.token, header if headers else None)

    def on_done(i: int) -> None:
        stream.done(i)
        finished[0] += 1
        if headers:
            job.progress(finished[0], n)

    if headers:
        job.progress(0, n)
    report_prompt(job, service, requests, model)
    outs = service.ask_many(requests, model=model, on_token=stream.piece, on_done=on_done, cancel=job.cancel)
    if headers:
        job.progress(len(outs), n)
    return [ScreenOutcome.of(o, note_offset) for o in outs]


@dataclass(frozen=True)
class PromptProgress:
    """What the screens poll while the note is processed: ``engine.evaluated_tokens`` of ``tokens``."""

    engine: Any
    tokens: int


def report_prompt(job: Job, service: AskService, requests: list[AskRequest], model: ModelInfo | None) -> None:
    """Tell the screen how many tokens the engine evaluates before the first answer token, and which engine.

    Several questions share the note prefix (evaluated once); one question evaluates its whole prompt.
    Loads ``model``'s engine if needed (seconds). Engines declaring no prompt tokenizer (fakes, a server)
    report nothing.
    """
    engine = service.engine(model)
    if not engine.capabilities.prompt_tokens:
        return
    tokenizer = cast(PromptTokenizingEngine, engine)
    req = requests[0]
    pt = tokenizer.tokenize_prompt(tokenizer.style_for(req.prompt_style), req.note, req.instruction)
    job.info(PromptProgress(engine, len(pt.prefix) if len(requests) > 1 else len(pt.all)))


def ask_each(
    job: Job,
    service: AskService,
    requests: list[AskRequest],
    cancels: list[threading.Event],
    model: ModelInfo | None = None,
    *,
    note_offset: int = 0,
) -> list[ScreenOutcome]:
    """Several questions about one note, each streamed to its own pane (``job.piece``), each cancellable.

    ``job.item(i, "start"/"done")`` mark each answer's start and end; ``cancels[i]`` stops answer ``i``,
    the job's cancel stops them all. Outcomes are a prefix of the requests (those that started).
    """
    report_prompt(job, service, requests, model)
    outs = service.ask_many(
        requests,
        model=model,
        on_start=lambda i, _req: job.item(i, "start"),
        on_token=job.piece,
        on_done=lambda i: job.item(i, "done"),
        cancel=job.cancel,
        cancels=cancels,
    )
    return [ScreenOutcome.of(o, note_offset) for o in outs]


def metrics_line(model: ModelInfo | str, r: Any) -> str:
    """One line for a RunResult or a RunView (both carry these fields)."""
    name = model.display_name if isinstance(model, ModelInfo) else model
    quant = getattr(r, "model_quant", "")
    parts = [name]
    if quant and quant not in name:
        parts.append(quant)
    # No first token and no speed for a run stopped before its first token: "0.0 tokens/s" reads as a stall.
    wrote = r.completion_tokens is None or r.completion_tokens > 0
    if r.ttft_s is not None and wrote:
        parts.append(f"first token {r.ttft_s:.2f} s")
    if r.decode_tokens_per_s is not None and wrote:
        parts.append(f"{r.decode_tokens_per_s:.1f} tokens/s")
    if r.completion_tokens is not None:
        parts.append(f"{r.completion_tokens} tokens")
    if r.prompt_tokens is not None:
        reused = getattr(r, "reused_tokens", None)
        parts.append(f"prompt {r.prompt_tokens}" + (f" ({reused} reused)" if reused else ""))
    parts.append(f"finish: {r.finish_reason or 'unfinished'}")
    return " · ".join(parts)


def provenance_footer(answer: str, model_label: str, r: Any, grounding: GroundingReport | None) -> str:
    """The answer as copied to the clipboard: what produced it, so a pasted answer stays traceable."""
    lines = [
        answer.rstrip(),
        "",
        "---",
        "Generated offline by Asclepius Desk. Check every fact against the source note before use.",
        f"Model: {model_label} (sha256 {r.model_sha256[:12]})",
        f"Task: {r.task}",
        f"Instruction: {r.instruction}",
    ]
    prompt_style = getattr(r, "prompt_style", None)
    engine = getattr(r, "engine", None)
    if prompt_style or engine:
        lines.append(f"Prompt style: {prompt_style or '?'}; engine: {engine or '?'}")
    sampling = r.sampling if isinstance(r.sampling, dict) else r.sampling.__dict__
    lines.append("Sampling: " + ", ".join(f"{k}={v}" for k, v in sampling.items()))
    uuid = getattr(r, "run_uuid", None) or getattr(r, "uuid", "")
    started = r.started_at if isinstance(r.started_at, str) else r.started_at.isoformat()
    lines.append(f"Run: {uuid} at {started}; finish: {r.finish_reason}")
    lines.append(f"Note: sha256 {r.note_sha256[:12]}, {r.note_chars:,} characters")
    if grounding is not None and (grounding.claims or grounding.items):
        lines.append(f"Grounding: {grounding.headline()}")
        lines += [f"Check: {x}" for x in report_lines(grounding, flagged_only=True)]
    return "\n".join(lines) + "\n"
