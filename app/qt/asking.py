"""Qt-free helpers of the Ask screen: the ask work function, provenance footer, metrics line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core.engine import LlamaCppEngine
from app.core.grounding import check_grounding
from app.core.notes import validate_note
from app.core.types import AskRequest, GroundingReport, ModelInfo, RunResult
from app.qt.workers import Job, describe_error
from app.store import EvalLog


@dataclass(frozen=True)
class Outcome:
    request: AskRequest
    result: RunResult
    model: ModelInfo
    run_id: int | None
    """None when the log was unavailable (the answer is still shown)."""
    report: GroundingReport
    note_offset: int
    """Where the validated note starts in the editor text (leading whitespace is stripped)."""


def leading_offset(text: str) -> int:
    return len(text) - len(text.lstrip())


def grounded_note(request: AskRequest, result: RunResult) -> str:
    """The note text the model actually saw (validated, and cut where the engine truncated it)."""
    note = validate_note(request.note)
    return note[: result.truncation.kept_chars] if result.truncation else note


def ask_all(
    job: Job,
    requests: list[AskRequest],
    engine_for: Any,
    model: ModelInfo | None,
    log: EvalLog | None,
    headers: bool = False,
) -> list[Outcome]:
    """Run requests in order on one engine (the note's KV state is reused between them); log each run."""
    engine: LlamaCppEngine = engine_for(model)
    out = []
    for i, req in enumerate(requests):
        if job.cancel.is_set():
            break
        if headers:
            job.progress(i, len(requests))
            job.token(("\n\n" if i else "") + f"## {req.task}\n{req.instruction}\n\n")
        run_id = log.start_run(req, engine.model) if log is not None else None
        try:
            result = engine.ask(req, on_token=job.token, cancel=job.cancel)
        except Exception as exc:
            if run_id is not None and log is not None:
                log.fail_run(run_id, describe_error(exc))
            raise
        if run_id is not None and log is not None:
            log.finish_run(run_id, result)
        report = check_grounding(result.answer, grounded_note(req, result))
        out.append(Outcome(req, result, engine.model, run_id, report, leading_offset(req.note)))
    if headers:
        job.progress(len(out), len(requests))
    return out


def metrics_line(model: ModelInfo | str, r: Any) -> str:
    """One line for a RunResult or a RunView (both carry these fields)."""
    name = model.display_name if isinstance(model, ModelInfo) else model
    quant = getattr(r, "model_quant", "")
    parts = [name]
    if quant and quant not in name:
        parts.append(quant)
    if r.ttft_s is not None:
        parts.append(f"first token {r.ttft_s:.2f} s")
    if r.decode_tokens_per_s is not None:
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
    if grounding is not None and grounding.spans:
        s = grounding.summary()
        line = f"Grounding: {s['supported']} of {s['checked']} checked facts found in the note"
        if s["unsupported"]:
            line += "; NOT found: " + "; ".join(s["unsupported"])
        lines.append(line)
    return "\n".join(lines) + "\n"
