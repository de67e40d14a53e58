"""The prompt registry shared by training, the app and the GGUF metadata.

A prompt is rendered as separate segments so the engine can tokenize template text with control tokens
allowed and user text (note, instruction) with them disabled, and can reuse the KV state of
``[head + note]`` across questions on the same note.

The Asclepius strings are fixed by the reference implementation (arXiv 2309.00237). Two facts matter and
are pinned by golden tests: the inference prompt keeps the original "languge" typo, and it ends with
``"[Instruction End] \\n"`` (a space before the newline) while the training prompt ends with
``"[Instruction End]\\n"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SegmentKind = Literal["template", "note", "instruction"]

KEY_PROMPT_STYLE = "asclepius.prompt_style"
"""The GGUF metadata key holding a model's ``PromptStyle.id``: written by ``quantize`` into every GGUF it
produces, read by the app's model registry to pick the template (defined here, the floor both import)."""
KEY_PROMPT_STYLE_VERSION = "asclepius.prompt_style_version"
"""The GGUF metadata key holding that style's ``PromptStyle.version`` at conversion time."""


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered prompt."""

    kind: SegmentKind
    """``template`` text may produce control tokens; ``note`` and ``instruction`` never do."""
    text: str


@dataclass(frozen=True)
class PromptStyle:
    """A single-turn prompt: ``head + note + middle + instruction + tail``."""

    id: str
    """Stable identifier stored in GGUF metadata (``KEY_PROMPT_STYLE``) and in every run."""
    version: str
    """Bumped whenever any string below changes; recorded with every run."""
    description: str
    head: str
    middle: str
    tail: str
    stop: tuple[str, ...] = field(default=())
    """Extra stop strings besides the model's end-of-generation token."""

    def segments(self, note: str, instruction: str) -> list[Segment]:
        return [
            Segment("template", self.head),
            Segment("note", note),
            Segment("template", self.middle),
            Segment("instruction", instruction),
            Segment("template", self.tail),
        ]

    def render(self, note: str, instruction: str) -> str:
        return "".join(s.text for s in self.segments(note, instruction))

    @property
    def key(self) -> str:
        """``id@version``: what a run records."""
        return f"{self.id}@{self.version}"


_ASCLEPIUS_HEAD = (
    "You are an intelligent clinical languge model.\n"
    "Below is a snippet of patient's discharge summary and a following instruction from healthcare "
    "professional.\n"
    "Write a response that appropriately completes the instruction.\n"
    "The response should provide the accurate answer to the instruction, while being concise.\n\n"
    "[Discharge Summary Begin]\n"
)
_ASCLEPIUS_MIDDLE = "\n[Discharge Summary End]\n\n[Instruction Begin]\n"

ASCLEPIUS = PromptStyle(
    id="asclepius",
    version="1",
    description="Asclepius inference prompt, as published (trailing space after [Instruction End]).",
    head=_ASCLEPIUS_HEAD,
    middle=_ASCLEPIUS_MIDDLE,
    tail="\n[Instruction End] \n",
)

ASCLEPIUS_TRAIN = PromptStyle(
    id="asclepius-train",
    version="1",
    description="Asclepius training prompt (no trailing space); the target is answer + EOS.",
    head=_ASCLEPIUS_HEAD,
    middle=_ASCLEPIUS_MIDDLE,
    tail="\n[Instruction End]\n",
)

# A base model that was never instruction-tuned (the embedded Gemma 3 270M demo) answers short
# extraction questions usably in this completion form and rambles with the Asclepius prompt; it stops
# at the first blank line (measured 2026-11-24, see DESIGN.md), or where it starts a new "Question:" of
# its own, which it does after short answers.
PLAIN_QA = PromptStyle(
    id="plain-qa",
    version="1",
    description="Plain question-answer completion for base models; stops at a blank line.",
    head="Discharge summary:\n",
    middle="\n\nQuestion: ",
    tail="\nAnswer:",
    stop=("\n\n", "\nQuestion:"),
)

PROMPT_STYLES: dict[str, PromptStyle] = {s.id: s for s in (ASCLEPIUS, ASCLEPIUS_TRAIN, PLAIN_QA)}


def get_style(style_id: str) -> PromptStyle:
    try:
        return PROMPT_STYLES[style_id]
    except KeyError:
        known = ", ".join(sorted(PROMPT_STYLES))
        raise KeyError(f"unknown prompt style {style_id!r}; known styles: {known}") from None
