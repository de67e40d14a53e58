"""The one rule that keeps training and inference tokens identical.

A prompt style renders segments (``head | note | middle | instruction | tail``). Both the app's engine
(llama.cpp vocabulary) and the trainer (Hugging Face tokenizer) turn them into token ids here, each passing
its own ``tokenize(text, special)`` (no BOS):

* **User text never becomes control tokens.** Template segments are tokenized with special tokens parsed,
  user segments (note, instruction, answer) with them disabled, so ``</s>`` or ``[Instruction End]`` inside
  a note stays plain text.
* **Outer whitespace of user text is dropped**: it would merge with the template's newlines and change the
  tokens at the boundary, and it carries no meaning. A caller may name the characters instead (``strip``):
  the trainer follows the reference, which strips newlines only (``"\n"``).
* **A template's trailing spaces move into the user segment after it**: vocabularies fold a space into the
  next word (``" What"`` is one token), so ``"Question: "`` + ``"What"`` tokenized apart would give a lone
  space token the model never saw.
* **Every segment after the first is tokenized in context** (:func:`tokens_after`), which removes the
  SentencePiece dummy-prefix space a fragment tokenized alone would get; the segmented prompt is then
  token-for-token a whole-string tokenization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from resources.prompts import PromptStyle, Segment

Tokenize = Callable[[str, bool], list[int]]
"""``tokenize(text, special) -> ids`` without BOS; ``special`` parses control tokens (template text only)."""

NEUTRAL_CONTEXTS = ("\n", "a", "0")
"""Tried after the real previous character when that one merges with the text (a ``".\\n"`` piece)."""


def move_trailing_spaces(segments: Sequence[Segment]) -> list[Segment]:
    """Give a template's trailing spaces to the user segment after it (spaces are not control tokens)."""
    out = list(segments)
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if a.kind == "template" and b.kind != "template" and a.text.endswith(" "):
            kept = a.text.rstrip(" ")
            out[i], out[i + 1] = Segment(a.kind, kept), Segment(b.kind, a.text[len(kept) :] + b.text)
    return out


def tokens_after(tokenize: Tokenize, context: str, text: str, special: bool) -> list[int]:
    """Tokens of ``text`` as they come out when it follows ``context`` in one string.

    ``tokenize(context + text)`` minus ``tokenize(context)``, as long as nothing merges across the boundary.
    When the real previous character does merge, neutral contexts are tried, so the segment still gets no
    spurious space; the prompt then differs from a whole-string tokenization only at that boundary.
    """
    if not text:
        return []
    for ctx in dict.fromkeys((context, *NEUTRAL_CONTEXTS)):
        if not ctx:
            continue
        base = tokenize(ctx, False)
        full = tokenize(ctx + text, special)
        if full[: len(base)] == base:
            return full[len(base) :]
    return tokenize(text, special)


def segment_tokens(
    style: PromptStyle,
    note: str,
    instruction: str,
    tokenize: Tokenize,
    *,
    bos: Sequence[int],
    strip: str | None = None,
) -> list[list[int]]:
    """The prompt's tokens, one list per segment of ``style``; ``bos`` (the BOS id, or nothing for a
    vocabulary that adds none) opens the first. ``strip``: the outer characters removed from the user text
    (``str.strip``'s argument; None: all whitespace)."""
    segments = move_trailing_spaces(style.segments(note.strip(strip), instruction.strip(strip)))
    pieces: list[list[int]] = []
    prev = ""
    for i, seg in enumerate(segments):
        special = seg.kind == "template"
        if i == 0:
            pieces.append([*bos, *tokenize(seg.text, special)])
        else:
            pieces.append(tokens_after(tokenize, prev[-1:], seg.text, special))
        prev = seg.text or prev
    return pieces


def answer_tokens(style: PromptStyle, answer: str, tokenize: Tokenize, strip: str | None = None) -> list[int]:
    """A training target: the answer as user text, in the context of the prompt's last character."""
    return tokens_after(tokenize, style.tail[-1:], answer.strip(strip), False)
