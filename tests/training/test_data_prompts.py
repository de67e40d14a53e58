"""Golden tests: the data-generation and judge prompts are the reference's, byte for byte."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from training import prompts as P

GOLDEN_SHA256 = {
    # sha256 of each template with its {placeholders}, checked against ../shared/REFERENCE.md when written
    "note-from-case-report": "064501fef8e5de5c18d437715fc35b72aab5aaeb6008261e40942bed5df82b5e",
    "instruction-bootstrap": "72ab13cda1af9457442b256cb3163896eefccd1a884e756fd09b2637d877e65e",
    "answer": "59fb281e87fa9a3c7ae19f3b23e73f93fdcc71053553044c73376c0791a31799",
    "judge-pointwise": "6bfc43a01a1e8b2c473b2aba235e5c3894ea5da5200cb6b01c638985d1b3509b",
}
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "REFERENCE.md"


@pytest.mark.parametrize("pid", sorted(GOLDEN_SHA256))
def test_template_bytes_are_pinned(pid):
    assert hashlib.sha256(P.PROMPTS[pid].template.encode()).hexdigest() == GOLDEN_SHA256[pid]


def test_templates_equal_the_reference_document_when_present():
    if not REFERENCE.exists():
        pytest.skip("../shared/REFERENCE.md not beside the checkout (the sha256 pins above still hold)")
    blocks = re.findall(r"```\n(.*?)\n```", REFERENCE.read_text(encoding="utf-8"), re.S)
    # The judge's template ends with a newline in the reference's source (a triple-quoted string closed on the
    # next line), which a Markdown code block cannot show; the other three end at their last character.
    assert [P.NOTE.template, P.INSTRUCTION.template, P.ANSWER.template] == blocks[:3]
    assert P.JUDGE.template == blocks[3] + "\n"


def test_reference_quirks_are_kept():
    assert P.ANSWER.template.endswith("\n\nResponse:")
    assert "using the given information. \n- Do not say" in P.ANSWER.template
    assert P.JUDGE.template.startswith("You are an intelligent clinical language model. \n")
    assert "necesarry" in P.JUDGE.template and "Criteria : \n" in P.JUDGE.template
    assert "find the answer to the instruction. \n" in P.JUDGE.template
    assert "We also offer five example questions" in P.INSTRUCTION.template
    assert P.NOTE.template.endswith("several distinct headings.")
    assert P.JUDGE.template.endswith("Output scores without explanation.\n") and P.JUDGE.version == "2"
    assert (P.NOTE.temperature, P.INSTRUCTION.temperature, P.INSTRUCTION.max_tokens) == (1.0, 1.0, 300)
    assert (P.JUDGE.temperature, P.JUDGE.max_tokens) == (0.0, 2048)


def test_render_fills_once_and_keeps_braces_in_values():
    note = "Pt said {question} and {note} literally."
    out = P.ANSWER.render({"note": note, "question": "Why?"})
    assert "[Discharge Summary Begin]\nPt said {question} and {note} literally.\n[Discharge Summary End]" in out
    assert "[Instruction Begin]\nWhy?\n[Instruction End]" in out
    with pytest.raises(ValueError, match="missing"):
        P.ANSWER.render({"note": "x"})
    with pytest.raises(ValueError, match="unexpected"):
        P.ANSWER.render({"note": "x", "question": "y", "task": "z"})


def test_judge_blocks_and_labels():
    assert [P.agent_label(i) for i in (0, 1, 25, 26, 27)] == ["A", "B", "Z", "AA", "AB"]
    blocks = P.judge_answer_blocks(["one", "two"])
    assert blocks == (
        "[Agent A's Answer Begin]\none\n[Agent A's Answer End]\n\n"
        "[Agent B's Answer Begin]\ntwo\n[Agent B's Answer End]\n\n"
    )
    text = P.JUDGE.render({"note": "N", "question": "Q", "answers": blocks, "num_samples": 2})
    assert "[Instruction End]\n\n[Agent A's Answer Begin]\none\n" in text
    assert "[Agent B's Answer End]\n\n\nAbove, we provide you" in text
    assert "First line must contain only 2 values" in text and "The 2 scores are separated by a space." in text
