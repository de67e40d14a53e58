"""The one rule that turns "what the user asked for" into the sampling parameters of a run.

Precedence, per parameter, the same for every front end (CLI ``ask`` and ``batch``, the Ask screen, Run
all tasks, Compare):

1. **An explicit value wins**: a command-line flag (``--max-tokens``, ``--temperature``, ``--seed``), or
   the recorded parameters of a run being re-run from History (all of them explicit).
2. **Otherwise the user's settings** (``generation`` in config.json, which the Settings screen writes):
   ``temperature`` and ``seed`` as set; ``max_tokens`` is the user's global cap on answer length, so it
   applies as ``min(setting, task preset)``: a task whose preset asks for fewer tokens keeps its own cap.
3. **Otherwise the task preset / library default**: the preset's ``max_tokens``; ``top_p``, ``top_k``,
   ``min_p`` and ``repeat_penalty`` have no setting yet and take ``SamplingParams``' defaults.

The settings always hold a temperature (0.0, greedy, by default), so a preset's ``temperature`` is not
consulted; every preset is greedy today (the model card's quick start decodes greedily).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from app.core.config import GenerationDefaults
from app.core.errors import UsageError
from app.core.types import SamplingParams
from resources import get_task


@dataclass(frozen=True)
class SamplingOverrides:
    """Values the caller gives explicitly; ``None`` means "not given, use the settings or the preset"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None

    @classmethod
    def of(cls, params: SamplingParams) -> SamplingOverrides:
        """Every parameter explicit (re-running a recorded run reproduces its settings exactly)."""
        return cls(**asdict(params))

    def given(self) -> dict[str, int | float]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


def resolve_sampling(
    task: str, generation: GenerationDefaults, explicit: SamplingOverrides | None = None
) -> SamplingParams:
    """The sampling parameters of one run of ``task`` (see the module docstring for the rule).

    Raises UsageError for an unknown task or an invalid value (every problem listed at once).
    """
    try:
        preset = get_task(task)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    values: dict[str, int | float] = {
        "max_tokens": min(preset.max_tokens, generation.max_tokens),
        "temperature": generation.temperature,
        "seed": generation.seed,
    }
    values.update((explicit or SamplingOverrides()).given())
    try:
        return SamplingParams(**values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
