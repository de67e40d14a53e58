from __future__ import annotations

import pytest

from resources import PROMPT_STYLES, RUBRIC, TASK_NAMES, TASKS, get_style, get_task, list_samples, load_sample
from resources.rubric import level

ASCLEPIUS_INFERENCE = (
    "You are an intelligent clinical languge model.\n"
    "Below is a snippet of patient's discharge summary and a following instruction from healthcare professional.\n"
    "Write a response that appropriately completes the instruction.\n"
    "The response should provide the accurate answer to the instruction, while being concise.\n\n"
    "[Discharge Summary Begin]\n{note}\n[Discharge Summary End]\n\n"
    "[Instruction Begin]\n{question}\n[Instruction End] \n"
)


def test_asclepius_inference_prompt_is_byte_exact():
    style = get_style("asclepius")
    assert style.render("NOTE", "Q?") == ASCLEPIUS_INFERENCE.format(note="NOTE", question="Q?")


def test_training_prompt_differs_only_by_the_trailing_space():
    inf = get_style("asclepius").render("n", "q")
    train = get_style("asclepius-train").render("n", "q")
    assert train.endswith("[Instruction End]\n")
    assert inf == train[:-1] + " \n"
    assert "languge" in train  # the reference typo is kept: the models were trained on it


def test_segments_join_to_the_rendered_prompt_and_mark_user_text():
    for style in PROMPT_STYLES.values():
        segs = style.segments("THE NOTE", "THE QUESTION")
        assert "".join(s.text for s in segs) == style.render("THE NOTE", "THE QUESTION")
        assert [s.kind for s in segs] == ["template", "note", "template", "instruction", "template"]
        assert segs[1].text == "THE NOTE" and segs[3].text == "THE QUESTION"


def test_unknown_style_lists_known_ones():
    with pytest.raises(KeyError, match="asclepius"):
        get_style("chatml")


def test_eight_tasks_in_paper_order_with_examples():
    assert TASK_NAMES == (
        "Named Entity Recognition",
        "Abbreviation Expansion",
        "Relation Extraction",
        "Temporal Information Extraction",
        "Coreference Resolution",
        "Paraphrasing",
        "Summarization",
        "Question Answering",
    )
    for t in TASKS:
        assert len(t.examples) >= 5 and len(set(t.examples)) == len(t.examples)
        assert 1 <= t.max_tokens <= 400
        assert t.standard_instruction == t.examples[0]
    assert len({t.slug for t in TASKS}) == 8


@pytest.mark.parametrize("name", ["qa", "Question Answering", "question-answering", "NER", "abbrev"])
def test_get_task_accepts_names_and_slugs(name):
    assert get_task(name).name in TASK_NAMES


def test_unknown_task_is_refused_with_choices():
    with pytest.raises(KeyError, match="choose one of"):
        get_task("translation")


def test_rubric_has_four_levels():
    assert [r.score for r in RUBRIC] == [1, 2, 3, 4]
    assert level(4).label == "Excellent" and "unanswerable" in level(4).definition
    with pytest.raises(ValueError):
        level(5)


def test_sample_notes_are_synthetic_and_load_from_package():
    assert len(list_samples()) >= 2
    for name in list_samples():
        s = load_sample(name)
        assert s.text.startswith("SYNTHETIC SAMPLE NOTE")
        assert len(s.text) > 500
