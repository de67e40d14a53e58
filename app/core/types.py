"""Value objects passed between the engine, the log and the front ends."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app import __version__
from app.core.bounds import ANSWER_TOKENS_MAX, DEFAULT_ANSWER_TOKENS, TEMPERATURE_MAX
from resources.tasks import PRESETS_VERSION


class FinishReason(StrEnum):
    STOP = "stop"
    """End-of-generation token or a stop string."""
    LENGTH = "length"
    """``max_tokens`` reached."""
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class SamplingParams:
    """Every parameter that shapes the answer; all of it is recorded with the run."""

    max_tokens: int = DEFAULT_ANSWER_TOKENS
    """Reference generation: up to 400 new tokens."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.max_tokens <= ANSWER_TOKENS_MAX:
            problems.append(f"max_tokens must be 1..{ANSWER_TOKENS_MAX}, not {self.max_tokens}")
        if not 0.0 <= self.temperature <= TEMPERATURE_MAX:
            problems.append(f"temperature must be 0..{TEMPERATURE_MAX:g}, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            problems.append(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            problems.append(f"top_k must be >= 0, not {self.top_k}")
        if not 0.0 <= self.min_p < 1.0:
            problems.append(f"min_p must be in [0, 1), not {self.min_p}")
        if self.repeat_penalty <= 0:
            problems.append(f"repeat_penalty must be > 0, not {self.repeat_penalty}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Truncation:
    """Where a note was cut to fit the context (only ever on explicit request)."""

    original_chars: int
    kept_chars: int
    original_tokens: int
    kept_tokens: int

    @property
    def message(self) -> str:
        return (
            f"note truncated: kept the first {self.kept_chars:,} of {self.original_chars:,} characters "
            f"({self.kept_tokens:,} of {self.original_tokens:,} tokens); the note was cut at character "
            f"{self.kept_chars:,}"
        )


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a GGUF file."""

    path: str
    file_name: str
    sha256: str
    size_bytes: int
    architecture: str
    name: str
    context_length: int
    file_type: str
    """Quantization label, e.g. ``Q4_K_M``."""
    parameter_count: int | None
    prompt_style: str
    """Prompt style id the app uses for this model (from GGUF metadata, registry override or a default)."""
    is_demo: bool = False
    provenance: dict[str, str] = field(default_factory=dict)
    verified: bool = True
    """The file's sha256 was checked and its size and mtime are as then; False once ``verify`` found it changed,
    and while the file is missing or changed (``status``)."""
    status: str = "ok"
    """``ok``, ``missing`` (the file is gone: a removed USB stick) or ``changed`` (size or mtime differ from
    when it was hashed), as seen when this was made."""
    in_library: bool = False
    """The file is the app's own copy in its model library (removing the model may delete it)."""

    @property
    def display_name(self) -> str:
        label = f"{self.name} ({self.file_type})"
        return f"{label} - demo model, not trained for clinical tasks" if self.is_demo else label

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]


def note_sha256(note: str) -> str:
    return hashlib.sha256(note.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DraftStats:
    """How prompt-lookup decoding went for one greedy answer (``app/core/lookup.py``)."""

    drafted: int
    """Draft tokens verified (copied from earlier in the prompt or answer)."""
    accepted: int
    """Of those, the ones the model's greedy choice confirmed (each saves a decode, less the batch's cost)."""
    verifications: int
    """Decodes that verified a non-empty draft."""
    stopped: bool
    """Drafting was turned off partway because the recent drafts cost at least what they saved."""

    @property
    def acceptance(self) -> float | None:
        """``accepted / drafted``; None when nothing was drafted."""
        return self.accepted / self.drafted if self.drafted else None


@dataclass(frozen=True)
class RunResult:
    """One answer with full provenance: what the evaluation log persists as is."""

    run_uuid: str
    task: str
    instruction: str
    answer: str
    finish_reason: FinishReason
    # provenance
    model_sha256: str
    model_file: str
    model_quant: str
    model_architecture: str
    engine: str
    """``llama.cpp`` plus binding version, e.g. ``llama-cpp-python 0.3.36``."""
    app_version: str
    presets_version: str
    prompt_style: str
    """``id@version`` of the prompt style used."""
    sampling: SamplingParams
    n_ctx: int
    n_threads: int
    note_sha256: str
    note_chars: int
    # measurements
    prompt_tokens: int
    reused_tokens: int
    """Prompt tokens whose KV state was reused rather than evaluated."""
    completion_tokens: int
    ttft_s: float
    """Time to first token: from the call to the first streamed token."""
    decode_tokens_per_s: float
    total_s: float
    started_at: str
    """ISO 8601 UTC."""
    finished_at: str
    truncation: Truncation | None = None
    grounding: dict[str, Any] | None = None
    error: str | None = None
    lookup: DraftStats | None = None
    """Prompt-lookup decoding's statistics; None when the answer was decoded plainly: the setting is off, the
    answer was sampled (temperature > 0: lookup is greedy-only, never the rejection rule), a repeat penalty
    was set, or the backend has no lookup (remote, several answers decoded together)."""
    # a remote backend (app/core/remote.py) only: where the answer came from
    endpoint: str | None = None
    """The server's base URL, without userinfo, query or fragment."""
    served_model: str | None = None
    """The model name the request named (what the server serves it as)."""
    reported_model: str | None = None
    """The model the server said answered (its reply's ``model``), where it gives one."""
    system_fingerprint: str | None = None
    """The server's ``system_fingerprint`` (its backend configuration), where it gives one."""
    usage_reported: bool | None = None
    """False when the server reported no token usage (completion tokens were counted from the stream)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["finish_reason"] = str(self.finish_reason)
        if self.lookup is not None:
            d["lookup"]["acceptance"] = self.lookup.acceptance
        return d

    @classmethod
    def of_answer(
        cls,
        request: AskRequest,
        model: ModelInfo,
        *,
        task: str,
        instruction: str,
        answer: str,
        finish_reason: FinishReason,
        prompt_style: str,
        clock: AnswerClock,
        **backend: Any,
    ) -> RunResult:
        """A backend's result: provenance from the request and the model, timings from ``clock``; ``backend``
        holds what only the backend knows (engine, n_ctx, n_threads, token counts, error, truncation, ...).
        Every backend builds its result here, so a provenance field cannot be filled in one and forgotten in
        another."""
        return cls(
            run_uuid=request.run_uuid,
            task=task,
            instruction=instruction,
            answer=answer,
            finish_reason=finish_reason,
            model_sha256=model.sha256,
            model_file=model.file_name,
            model_quant=model.file_type,
            model_architecture=model.architecture,
            app_version=__version__,
            presets_version=PRESETS_VERSION,
            prompt_style=prompt_style,
            sampling=request.sampling,
            note_sha256=note_sha256(request.note),
            note_chars=len(request.note),
            completion_tokens=clock.n_out,
            ttft_s=clock.ttft_s,
            decode_tokens_per_s=clock.decode_tokens_per_s,
            total_s=clock.t_end - clock.t_start,
            started_at=clock.started_at.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            grounding=None,  # computed once by the ask service, for every backend alike
            **backend,
        )


@dataclass(frozen=True)
class AnswerClock:
    """When an answer started, produced its first token and ended (``time.perf_counter``), and its tokens."""

    started_at: datetime
    """Wall-clock start (UTC), recorded with the run."""
    t_start: float
    t_first: float | None
    """None when no token came (cancelled or failed before the first)."""
    t_end: float
    n_out: int

    @property
    def ttft_s(self) -> float:
        """Time to first token: from the call to the first streamed token (to the end when none came)."""
        return (self.t_first if self.t_first is not None else self.t_end) - self.t_start

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens after the first over the time after it (the first token's time is the prompt's)."""
        decode_s = self.t_end - self.t_first if self.t_first is not None else 0.0
        return (self.n_out - 1) / decode_s if self.n_out > 1 and decode_s > 0 else 0.0


def _new_uuid() -> str:
    import uuid

    return str(uuid.uuid4())


@dataclass(frozen=True)
class AskRequest:
    """One single-turn question about one note."""

    note: str
    task: str
    """Task preset name (one of resources.TASK_NAMES)."""
    instruction: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt_style: str | None = None
    """Prompt style id; None uses the model's own."""
    truncate: bool = False
    """Cut the note to fit the context instead of refusing (reported in the result)."""
    run_uuid: str = field(default_factory=_new_uuid)
    """Assigned before the run so the log can record it as started."""

    def renewed(self) -> AskRequest:
        """The same request as a new run (its own uuid): asking it again, or of another model."""
        return replace(self, run_uuid=_new_uuid())
