"""The eight Asclepius task presets, in the order the paper lists them.

Each preset has a description for the task picker, example instructions written for this project (the
first is the task's standard instruction, used by "Run all tasks"), and per-task generation defaults.
``PRESETS_VERSION`` is recorded with every run; bump it when any preset changes.
"""

from __future__ import annotations

from dataclasses import dataclass

PRESETS_VERSION = "2026.11.1"
REFERENCE_MAX_NEW_TOKENS = 400
"""The reference generation allows up to 400 new tokens (DESIGN.md)."""


@dataclass(frozen=True)
class TaskPreset:
    name: str
    """Exactly as in the Asclepius paper."""
    slug: str
    """Short command-line name (``--task ner``)."""
    description: str
    examples: tuple[str, ...]
    max_tokens: int = REFERENCE_MAX_NEW_TOKENS
    """Short-answer tasks need fewer than the reference generation's limit."""
    temperature: float = 0.0
    """Greedy by default: answers must be reproducible for evaluation."""

    @property
    def standard_instruction(self) -> str:
        return self.examples[0]


TASKS: tuple[TaskPreset, ...] = (
    TaskPreset(
        "Named Entity Recognition",
        "ner",
        "Find and list the clinical entities in the note: problems, tests, treatments, medications.",
        (
            "List every medication mentioned in the discharge summary with its dose and frequency.",
            "Which diagnoses does the patient have? List them one per line.",
            "Extract all laboratory tests mentioned in the note and their reported values.",
            "Identify the procedures the patient underwent during this admission.",
            "List the symptoms the patient presented with on admission.",
            "Which allergies are documented for this patient?",
        ),
    ),
    TaskPreset(
        "Abbreviation Expansion",
        "abbrev",
        "Spell out the abbreviations used in the note, in the sense the note uses them.",
        (
            "Expand every abbreviation used in the discharge summary.",
            "What does 'SOB' stand for in this note?",
            "Expand the abbreviations in the hospital course section.",
            "What is meant by 'BID' and 'PRN' in the discharge medications?",
            "List the cardiology abbreviations in the note with their full forms.",
        ),
        max_tokens=256,
    ),
    TaskPreset(
        "Relation Extraction",
        "relation",
        "Link entities to each other: which treatment was given for which problem, which test showed what.",
        (
            "Which medication was started for which condition during this admission?",
            "What test results led to the diagnosis of the patient's main problem?",
            "Which adverse effects are attributed to which drugs in the note?",
            "What treatment was given for the patient's infection, and what was the response?",
            "Which findings on imaging are related to the patient's symptoms?",
        ),
    ),
    TaskPreset(
        "Temporal Information Extraction",
        "temporal",
        "Place events on the timeline: when things happened, in what order, for how long.",
        (
            "Give a timeline of the main events of this hospital stay.",
            "When was the patient admitted and when were they discharged?",
            "How long was the patient on intravenous antibiotics?",
            "What happened on the second day of the admission?",
            "When is the patient's follow-up appointment scheduled?",
        ),
    ),
    TaskPreset(
        "Coreference Resolution",
        "coref",
        "Work out what pronouns and shorthand references in the note refer to.",
        (
            "In the hospital course, what does 'it' refer to each time it is used?",
            "Which clinician does 'the consultant' refer to in this note?",
            "What does 'the lesion' refer to in the imaging findings?",
            "Who is meant by 'she' in the social history?",
            "Which medication does 'this agent' refer to in the discharge plan?",
        ),
        max_tokens=300,
    ),
    TaskPreset(
        "Paraphrasing",
        "paraphrase",
        "Rewrite part of the note in other words, for example in plain language for the patient.",
        (
            "Rewrite the discharge instructions in plain language a patient can understand.",
            "Paraphrase the hospital course in two or three sentences.",
            "Explain the patient's diagnosis in simple terms.",
            "Reword the medication changes so that a caregiver can follow them.",
            "Paraphrase the assessment without medical jargon.",
        ),
    ),
    TaskPreset(
        "Summarization",
        "summary",
        "Condense the note into its essential facts.",
        (
            "Summarize this discharge summary in three sentences.",
            "Write a one-line summary of why the patient was admitted and how it was treated.",
            "Summarize the hospital course for a handover to the primary care physician.",
            "List the key findings and the discharge plan as bullet points.",
            "Summarize the patient's medication changes at discharge.",
        ),
    ),
    TaskPreset(
        "Question Answering",
        "qa",
        "Answer a specific question from the note; say so when the note does not contain the answer.",
        (
            "What was the patient's main diagnosis at discharge?",
            "What was the patient's creatinine on admission?",
            "Was the patient discharged on anticoagulation?",
            "Why was the patient's metformin held?",
            "What follow-up was arranged after discharge?",
            "Does the patient smoke?",
        ),
        max_tokens=256,
    ),
)

TASK_NAMES: tuple[str, ...] = tuple(t.name for t in TASKS)


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


_BY_KEY: dict[str, TaskPreset] = {_norm(k): t for t in TASKS for k in (t.name, t.slug)}
"""Normalised name and slug -> preset, built once (a million-row batch looks a task up per row)."""


def get_task(name: str) -> TaskPreset:
    """Look a task up by its full name or slug, ignoring case, spaces and punctuation."""
    found = _BY_KEY.get(_norm(name)) if len(name) <= 200 else None
    if found is not None:
        return found
    choices = ", ".join(f"{t.slug} ({t.name})" for t in TASKS)
    raise KeyError(f"unknown task {name!r}; choose one of: {choices}")
