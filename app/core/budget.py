"""Context budget: does template + note + instruction + the reserved answer fit the model's context?

The check runs before any token is evaluated. When the prompt does not fit, the caller either gets a
refusal with the numbers or, only when it asked for it, a note truncated at a token boundary with the
place of the cut reported. Nothing is ever cut silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import ContextOverflowError


@dataclass(frozen=True)
class Budget:
    n_ctx: int
    """Context the prompt and answer must fit in (the allocated window, at most the trained one)."""
    template_tokens: int
    """BOS and every template segment."""
    note_tokens: int
    instruction_tokens: int
    reserved_answer_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.template_tokens + self.note_tokens + self.instruction_tokens

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.reserved_answer_tokens

    @property
    def fits(self) -> bool:
        return self.total <= self.n_ctx

    @property
    def overflow(self) -> int:
        return max(0, self.total - self.n_ctx)

    @property
    def note_room(self) -> int:
        """How many note tokens fit with this template, instruction and answer reserve (may be <= 0)."""
        return self.n_ctx - self.template_tokens - self.instruction_tokens - self.reserved_answer_tokens

    def describe(self) -> str:
        return (
            f"template {self.template_tokens} + note {self.note_tokens} + instruction "
            f"{self.instruction_tokens} + reserved answer {self.reserved_answer_tokens} = {self.total} "
            f"tokens; the model's context is {self.n_ctx}"
        )

    def refusal(self) -> ContextOverflowError:
        if self.note_room <= 0:
            hint = "the instruction and answer reserve alone leave no room for a note: shorten the instruction "
            hint += "or lower the maximum answer length"
        else:
            hint = (
                f"shorten the note by about {self.overflow} tokens, lower the maximum answer length, "
                "or truncate the note explicitly"
            )
        return ContextOverflowError(f"the prompt does not fit: {self.describe()} ({self.overflow} over); {hint}")

    def truncated_note_tokens(self) -> int:
        """Note tokens to keep when truncation was asked for; raises when nothing of the note fits."""
        if self.fits:
            return self.note_tokens
        if self.note_room <= 0:
            raise self.refusal()
        return self.note_room
