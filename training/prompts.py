"""The reference data-generation and judge prompts, byte for byte (typos and trailing spaces included).

Source: ``../shared/REFERENCE.md`` sections 1a-1c and 3 (the published Asclepius pipeline). Golden tests in
``tests/training/test_data_prompts.py`` pin every byte. Bump a prompt's version when its text changes: the
version is part of every request id (so a changed prompt is sent again, not matched to old results) and is
recorded in the manifest and in the judge's rater name.

Placeholders are filled in one pass, so a case report that happens to contain ``{question}`` stays text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_FIELD = re.compile(r"\{(pmc|task|note|samples|question|answers|num_samples)\}")


@dataclass(frozen=True)
class Prompt:
    id: str
    version: str
    template: str
    fields: tuple[str, ...]
    temperature: float
    """The reference's sampling temperature for this prompt."""
    max_tokens: int | None
    """The reference's completion limit; None where it set none (notes: derived from the context)."""

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def render(self, values: Mapping[str, str | int]) -> str:
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if missing or extra:
            raise ValueError(f"prompt {self.id}: missing {sorted(missing)}, unexpected {sorted(extra)}")
        return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), self.template)


NOTE = Prompt(
    id="note-from-case-report",
    version="1",
    fields=("pmc",),
    temperature=1.0,
    max_tokens=None,
    template=(
        "You are an intelligent clinical model.\n"
        "\n"
        "[The start of case report]\n"
        "{pmc}\n"
        "[The end of case report]\n"
        "\n"
        "Based on the patient's case report provided, please generate a synthetic discharge summary in the "
        "style of an Electronic Health Record (EHR).\n"
        "\n"
        "Please follow these requirements:\n"
        "\n"
        "1. Generate only the discharge summary. Do not generate any other phrases such as notification.\n"
        "2. If there are any standard clinical terms used in the case report, they should be replaced with their "
        'commonly used non-standardized equivalents in the discharge summary. For example, "hypercholesterolemia" '
        'can be rewritten as "high cholesterol".\n'
        "3. The discharge summary include abbreviations that are not defined in the context.\n"
        "4. The discharge summary may contain minor grammatical errors.\n"
        "5. Ensure that the discharge summary does not contain any clinical information or details (such as "
        "medication names, dosages, treatment plans, diagnoses, procedures, test results, etc.) that are not "
        "explicitly mentioned or defined within the given case report.\n"
        "6. For patients who have not yet been discharged, create a hospital course summary rather than discharge "
        "summary.\n"
        "7. While preserving the structure of the EHR and maintaining medical consistency, generate a detailed and "
        "comprehensive discharge summary.\n"
        "8. The discharge summary is a comprehensive document that can be organized using several distinct "
        "headings."
    ),
)
NOTE_CONTEXT_TOKENS = 4096
"""The reference sets max_tokens = 4088 - prompt tokens: a 4,096-token model less an 8-token margin."""
NOTE_CONTEXT_MARGIN = 8

INSTRUCTION = Prompt(
    id="instruction-bootstrap",
    version="1",
    fields=("task", "note", "samples"),
    temperature=1.0,
    max_tokens=300,
    template=(
        "You are a healthcare professional who often uses an advanced clinical language model that can analyze "
        "clinical notes.\n"
        "You can ask a question and use the output from this model to aid in your decision-making process.\n"
        "\n"
        'Let\'s suppose you want to ask a question about the task of "{task}" related to the given discharge '
        "summary.\n"
        "How would you frame your question?\n"
        "\n"
        "[Discharge Summary Begin]\n"
        "{note}\n"
        "[Discharge Summary End]\n"
        "\n"
        "We also offer five example questions related to the task for your reference.\n"
        "Although you can refer to these samples, try to create a distinct question.\n"
        "Try not to repeat the verb or structure of sentences used in examples to maximize diversity.\n"
        "The crucial aspect of your question is that it should be answerable using only the information "
        "available in the discharge summary.\n"
        "Also, try to keep your question as brief as possible.\n"
        "\n"
        "[Example Questions Begin]\n"
        "{samples}\n"
        "[Example Questions End]\n"
        "\n"
        "Please output solely a question."
    ),
)
SEED_EXAMPLES = 3
"""Examples per prompt drawn from the task's hand-written seeds ..."""
POOL_EXAMPLES = 2
"""... plus up to this many from the questions already generated for the task (the reference's split)."""

ANSWER = Prompt(
    id="answer",
    version="1",
    fields=("note", "question"),
    temperature=1.0,
    max_tokens=None,
    template=(
        "You are an intelligent clinical language model.\n"
        "\n"
        "[Discharge Summary Begin]\n"
        "{note}\n"
        "[Discharge Summary End]\n"
        "\n"
        "[Instruction Begin]\n"
        "{question}\n"
        "[Instruction End]\n"
        "\n"
        "Above, we provide you with a part of the discharge summary and the instruction that the healthcare "
        "professional gave about it.\n"
        "Generate a response to the healthcare professional's instruction using the given discharge summary.\n"
        "\n"
        "Here are requirements:\n"
        "- Your response must be accurate and concise to the instruction.\n"
        "- If the instruction is not fully answerable within the given discharge summary, explain the reason why "
        "it is unanswerable using the given information. \n"
        "- Do not say that you cannot respond as an AI model.\n"
        "- Do not ask back nor rephrase the instruction.\n"
        "\n"
        "Response:"
    ),
)
ANSWER_MAX_TOKENS = 1024
"""The reference sets no limit for answers; ours keeps a runaway reply bounded (override: --max-tokens)."""

JUDGE = Prompt(
    id="judge-pointwise",
    # 2: the final newline of the reference's template (eval/gpt4_evaluate.py ends its triple-quoted prompt with
    # one; REFERENCE.md's code block cannot show it). Version 1 lacked it.
    version="2",
    fields=("note", "question", "answers", "num_samples"),
    temperature=0.0,
    max_tokens=2048,
    template=(
        "You are an intelligent clinical language model. \n"
        "\n"
        "[Discharge Summary Begin]\n"
        "{note}\n"
        "[Discharge Summary End]\n"
        "\n"
        "[Instruction Begin]\n"
        "{question}\n"
        "[Instruction End]\n"
        "\n"
        "{answers}\n"
        "Above, we provide you a discharge summary and the instruction that the healthcare professional gave "
        "about the discharge summary.\n"
        "You are also provided with {num_samples} corresponding responses from {num_samples} different clinical "
        "models.\n"
        "Your task is to read the discharge summary and the instruction carefully then find the answer to the "
        "instruction. \n"
        "Then, compare your answer with each model's response and evaluate the response based on the following "
        "criteria.\n"
        "\n"
        "Criteria : \n"
        "1. Unacceptable (1 point): The model's response includes any incorrect or irrelevant contents. If the "
        "instruction was unanswerable, the model did not acknowledge this and outputs wrong answer.\n"
        "2. Poor (2 points): The model's response does not contain any incorrect or irrelevant contents, but omits "
        "significant or crucial contents that the instruction is requiring for.\n"
        "3. Satisfactory (3 points): The model's response does not contain any incorrect or irrelevant contents, "
        "but omits minor or insignificant contents that the instruction is requiring for.\n"
        "4. Excellent (4 points): The model's response contains all necesarry information that the instruction is "
        "requiring for. If the instruction was unanswerable, the model correctly acknowledged this and says that "
        "it is unanswerable.\n"
        "\n"
        "When evaluating each score based on above criteria, ensure that each judgement is not affected by other "
        "model's response.\n"
        "First line must contain only {num_samples} values, which indicate the score for each model, "
        "respectively.\n"
        "The {num_samples} scores are separated by a space.\n"
        "Output scores without explanation.\n"
    ),
)


def agent_label(i: int) -> str:
    """A, B, ..., Z, then AA, AB, ... (the reference labels agents with capital letters)."""
    if i < 0:
        raise ValueError("label index must be >= 0")
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def judge_answer_blocks(answers: list[str]) -> str:
    """The ``{answers}`` field: one labelled block per answer, each followed by a blank line."""
    return "".join(
        f"[Agent {agent_label(i)}'s Answer Begin]\n{a}\n[Agent {agent_label(i)}'s Answer End]\n\n"
        for i, a in enumerate(answers)
    )


PROMPTS: dict[str, Prompt] = {p.id: p for p in (NOTE, INSTRUCTION, ANSWER, JUDGE)}
