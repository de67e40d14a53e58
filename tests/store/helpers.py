"""Builders for synthetic models, requests and results (no engine, no model file)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.core.types import AskRequest, FinishReason, ModelInfo, RunResult, SamplingParams, note_sha256

NER = "Named Entity Recognition"
QA = "Question Answering"
NOTE = "Discharge summary. Patient admitted with pneumonia. Started amoxicillin 500 mg three times daily."


def model(i: int = 0, quant: str = "Q4_K_M") -> ModelInfo:
    sha = hashlib.sha256(f"model-{i}-{quant}".encode()).hexdigest()
    return ModelInfo(
        path=f"/models/m{i}.gguf",
        file_name=f"asclepius-m{i}.{quant}.gguf",
        sha256=sha,
        size_bytes=1000 + i,
        architecture="llama",
        name=f"Asclepius-M{i}",
        context_length=2048,
        file_type=quant,
        parameter_count=7_000_000_000,
        prompt_style="asclepius",
    )


def request(
    note: str = NOTE, task: str = NER, instruction: str = "List every medication.", **sampling: object
) -> AskRequest:
    return AskRequest(note=note, task=task, instruction=instruction, sampling=SamplingParams(**sampling))  # type: ignore[arg-type]


def result(
    req: AskRequest,
    m: ModelInfo,
    answer: str = "amoxicillin 500 mg",
    reason: FinishReason = FinishReason.STOP,
    started: datetime | None = None,
) -> RunResult:
    t0 = started or datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    return RunResult(
        run_uuid=req.run_uuid,
        task=req.task,
        instruction=req.instruction,
        answer=answer,
        finish_reason=reason,
        model_sha256=m.sha256,
        model_file=m.file_name,
        model_quant=m.file_type,
        model_architecture=m.architecture,
        engine="llama-cpp-python 0.3.36",
        app_version="0.1.0",
        presets_version="2026.11.1",
        prompt_style="asclepius@1",
        sampling=req.sampling,
        n_ctx=2048,
        n_threads=2,
        note_sha256=note_sha256(req.note),
        note_chars=len(req.note),
        prompt_tokens=120,
        reused_tokens=0,
        completion_tokens=12,
        ttft_s=0.25,
        decode_tokens_per_s=70.0,
        total_s=0.5,
        started_at=t0.isoformat(),
        finished_at=(t0 + timedelta(seconds=1)).isoformat(),
        grounding={"checked": 2, "supported": 2, "unsupported": []},
    )


def logged(log, req: AskRequest | None = None, m: ModelInfo | None = None, **kw: object) -> int:  # type: ignore[no-untyped-def]
    req = req or request()
    m = m or model()
    return log.log_run(req, m, result(req, m, **kw))  # type: ignore[arg-type]


__all__ = ["NER", "NOTE", "QA", "logged", "model", "replace", "request", "result"]
