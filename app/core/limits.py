"""What a model and a task allow: each Asclepius variant's trained context, and the answer cap of a task.

**Trained context.** A GGUF's ``<arch>.context_length`` is what its base model's config says, which is not
always what the Asclepius model was trained on: Asclepius-Mistral-7B-v0.3 was fine-tuned on 8192-token
sequences although Mistral's config says 32768 (REFERENCE.md §2: max length 2048 for LLaMA-1, 4096 for
Llama-2, 8192 for Llama-3 and the Mistral variant). Beyond the trained length the model has never seen a
position, so answers degrade without any error; the app warns when a context beyond it is chosen.

The variant is recognised from the model's name, file name and base-model provenance (``Asclepius-7B``,
``asclepius-llama2-13b``, ``Asclepius-Llama3-8B``, ``Asclepius-Mistral-7B-v0.3``); a model that names no
variant keeps its GGUF context (the demo model, a model built elsewhere).

**Answer cap.** The user's global "maximum answer tokens" (config ``generation.max_tokens``, the Settings
screen) caps every task at ``min(setting, task preset)`` (the service's sampling rule); an explicit
``--max-tokens`` wins. ``answer_cap`` says which of the three applied, so a task whose preset allows more than
the global setting shows both numbers instead of silently shrinking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.types import ModelInfo


@dataclass(frozen=True)
class Variant:
    family: str
    """LLaMA-1, Llama-2, Llama-3 or Mistral."""
    trained_context: int
    """Tokens per training sequence of the Asclepius fine-tune."""
    pattern: str
    """Regular expression over the model's name, file name and base-model provenance (lower case)."""


VARIANTS = (
    Variant("Llama-3", 8192, r"llama[-_ ]?3"),
    Variant("Mistral", 8192, r"mistral"),
    Variant("Llama-2", 4096, r"llama[-_ ]?2"),
    # Asclepius-7B / -13B (and Asclepius-R-7B/13B) are the LLaMA-1 models: no family in the name.
    Variant("LLaMA-1", 2048, r"llama[-_ ]?1\b|asclepius(?:[-_ ]r)?[-_ ](?:7|13)b"),
)
"""Checked in order: the first match wins (a name says Llama-3 *and* 8B; LLaMA-1 names say only 7B/13B)."""


def _identity(info: ModelInfo) -> str:
    base = [v for k, v in info.provenance.items() if k.startswith("general.base_model") and k.endswith("name")]
    return " ".join([info.name, info.file_name, *base]).lower()


def variant_of(info: ModelInfo) -> Variant | None:
    """The Asclepius variant a model is, or None (demo model, unknown model)."""
    if info.is_demo:
        return None
    text = _identity(info)
    if "asclepius" not in text:
        return None
    return next((v for v in VARIANTS if re.search(v.pattern, text)), None)


def trained_context(info: ModelInfo) -> int:
    """The context the model was trained on: its variant's, else what the GGUF says."""
    v = variant_of(info)
    return v.trained_context if v else info.context_length


def context_warning(info: ModelInfo, n_ctx: int) -> str | None:
    """A sentence for the user when ``n_ctx`` goes beyond what the model was trained on, else None."""
    v = variant_of(info)
    limit = trained_context(info)
    if n_ctx <= limit:
        return None
    if v is not None and v.trained_context < info.context_length:
        why = (
            f"the Asclepius {v.family} variant was trained on {v.trained_context}-token sequences "
            f"(its GGUF says {info.context_length}, the base model's figure)"
        )
    elif v is not None:
        why = f"the Asclepius {v.family} variant was trained on {v.trained_context}-token sequences"
    else:
        why = f"the model's trained context is {limit} tokens"
    return (
        f"context {n_ctx} is beyond what {info.name} was trained on: {why}; positions past {limit} were never "
        f"seen in training and answers there degrade without an error (set the context to {limit} or less)"
    )


@dataclass(frozen=True)
class AnswerCap:
    tokens: int
    """The answer token limit that applies."""
    source: str
    """``explicit``, ``setting`` or ``preset``."""
    preset: int
    setting: int

    def describe(self) -> str:
        if self.source == "explicit":
            return f"{self.tokens} answer tokens (given explicitly; the task's preset is {self.preset})"
        if self.source == "setting":
            return f"{self.tokens} answer tokens (your global setting; the task's preset allows {self.preset})"
        return f"{self.tokens} answer tokens (the task's preset)"


def answer_cap(preset: int, setting: int, explicit: int | None = None) -> AnswerCap:
    """Which answer limit applies to a task (the same rule as the ask service: explicit > min(setting, preset))."""
    if explicit is not None:
        return AnswerCap(explicit, "explicit", preset, setting)
    if setting < preset:
        return AnswerCap(setting, "setting", preset, setting)
    return AnswerCap(preset, "preset", preset, setting)
