"""The one prompt-tokenization rule (resources/prompt_tokens.py) that the engine and the trainer share.

A toy SentencePiece-like tokenizer (dummy-prefix space, spaces folded into the next word, ``</s>`` a
control token only when special tokens are parsed) shows each part of the rule; tests/integration
(test_engine, test_engine_llama) and tests/training/test_train_data check the same on real vocabularies.
"""

from __future__ import annotations

import re

import pytest

from resources.prompt_tokens import answer_tokens, move_trailing_spaces, segment_tokens, tokens_after
from resources.prompts import get_style

EOS, BOS = 2, 1


class ToySpm:
    """Pieces: ``▁word``, ``word``, ``\\n``, a lone ``▁``; ids assigned on first sight (stable per instance)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {"</s>": EOS}

    def __call__(self, text: str, special: bool) -> list[int]:
        parts = re.split(r"(</s>)", text) if special else [text]
        out: list[int] = []
        for i, part in enumerate(parts):
            if special and part == "</s>":
                out.append(EOS)
                continue
            s = part.replace(" ", "▁")
            if i == 0 and s:
                s = "▁" + s  # the dummy prefix, only at the start of the text
            out += [self.ids.setdefault(p, len(self.ids) + 10) for p in re.findall(r"▁?[^▁\n]+|\n|▁", s)]
        return out


@pytest.mark.parametrize("style_id", ["asclepius", "asclepius-train", "plain-qa"])
def test_segments_tokenize_as_the_whole_prompt(style_id):
    tok, style = ToySpm(), get_style(style_id)
    note, question = "Patient admitted with chest pain.\nDischarged on aspirin.", "What was given at discharge?"
    pieces = segment_tokens(style, note, question, tok, bos=[BOS])
    assert len(pieces) == 5 and pieces[0][0] == BOS
    assert [t for p in pieces for t in p] == [BOS, *tok(style.render(note, question), True)]
    # Without the context rule, the note alone would get the dummy-prefix space the whole string has not.
    assert pieces[1] != tok(note, False)


def test_user_text_never_becomes_a_control_token():
    tok = ToySpm()
    pieces = segment_tokens(get_style("asclepius"), "Quoting </s> verbatim.", "Say </s> now?", tok, bos=[BOS])
    assert EOS not in pieces[1] and EOS not in pieces[3]
    assert EOS in tok("Quoting </s>", True)  # the toy vocabulary does parse it as template text


def test_template_trailing_space_moves_to_the_user_text():
    style = get_style("asclepius")
    assert style.tail.endswith(" \n") or style.middle.endswith("\n")
    segs = move_trailing_spaces(get_style("plain-qa").segments("n", "q"))
    assert all(not s.text.endswith(" ") for s in segs if s.kind == "template")
    assert "".join(s.text for s in segs) == get_style("plain-qa").render("n", "q")


def test_user_text_outer_whitespace_is_dropped():
    tok, style = ToySpm(), get_style("asclepius")
    a = segment_tokens(style, "  Note.\n\n", "\tQ? ", tok, bos=[])
    b = segment_tokens(style, "Note.", "Q?", tok, bos=[])
    assert a == b


def test_tokens_after_falls_back_to_a_neutral_context_when_the_boundary_merges():
    # "x" + "y..." merges in this vocabulary ("▁xyz" is one piece), so the real context cannot be removed.
    tok = ToySpm()
    assert tokens_after(tok, "x", "yz", False) == tokens_after(tok, "\n", "yz", False)
    assert tokens_after(tok, "\n", "", False) == []


def test_answer_target_is_user_text_in_the_prompt_tail_context():
    tok, style = ToySpm(), get_style("asclepius")
    assert answer_tokens(style, " Aspirin </s> 81 mg. ", tok) == tokens_after(tok, "\n", "Aspirin </s> 81 mg.", False)
    assert EOS not in answer_tokens(style, "Aspirin </s>", tok)
