"""The one aligner (app.core.grounding.align): mentions, answer items per extraction task, bounded cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.grounding import check_answer
from app.core.grounding.align import FUZZY_THRESHOLD, NoteIndex, align_items, align_mention
from app.core.grounding.senses import SenseInventory
from tests.bench import bench_align as bench

NOTE = (
    "Medications: metformin 1000 mg twice daily. Robitussin as needed.\n"
    "Shortness of breath (SOB) on exertion. History of HTN.\n"
    "Admitted on March 14, 2026 for pneumonia. Mr. Smith said he was tired; his daughter drove him.\n"
    "Non-small-cell lung cancer. No anticoagulation."
)


def _span_text(note: str, spans) -> list[str]:
    return [note[s:e] for s, e in spans]


def test_exact_then_normalized_then_fuzzy() -> None:
    index = NoteIndex(NOTE)
    exact = align_mention("Robitussin", index)
    assert (exact.match, exact.score, _span_text(NOTE, exact.spans)) == ("exact", 1.0, ["Robitussin"])
    norm = align_mention("non small cell LUNG cancer", index)
    assert norm.match == "normalized"
    assert _span_text(NOTE, norm.spans) == ["Non-small-cell lung cancer"]
    fuzzy = align_mention("robitusin", index)  # a typo
    assert fuzzy.match == "fuzzy" and FUZZY_THRESHOLD <= fuzzy.score < 1
    assert _span_text(NOTE, fuzzy.spans) == ["Robitussin"]
    swapped = align_mention("cancer lung", index)  # word order
    assert swapped.match == "fuzzy" and _span_text(NOTE, swapped.spans) == ["lung cancer"]
    assert align_mention("warfarin", index).match == "none"
    assert align_mention("   ", index).match == "none"


def test_exact_respects_word_boundaries_and_reports_every_occurrence() -> None:
    note = "HTN. htn again. HTNx is not it. Pre-HTN is."
    got = align_mention("HTN", NoteIndex(note))
    assert got.match == "exact"
    assert _span_text(note, got.spans) == ["HTN", "htn", "HTN"]  # the lower-case one too, not "HTNx"


def test_offsets_survive_characters_that_lower_case_to_two() -> None:
    note = "İstanbul visit. Then aspirin."
    got = align_mention("aspirin", NoteIndex(note))
    assert _span_text(note, got.spans) == ["aspirin"]


def test_ner_items_lists_labels_doses_and_a_comma_mention() -> None:
    answer = (
        "Medications: Metformin 500 mg BID, robitussin\n"
        "2) pneumonia (Problem)\n"
        "* aspirin\n"
        "- None\n"
        "- Non-small-cell lung cancer, pneumonia, and SOB"
    )
    items, notes = align_items(answer, NOTE, "Named Entity Recognition")
    got = [(i.text, i.match, i.label) for i in items]
    assert got[:4] == [
        ("Metformin", "normalized", "Medications"),  # aligned by its entity; the dose is the claims' check
        ("robitussin", "normalized", "Medications"),
        ("pneumonia", "exact", "Problem"),
        ("aspirin", "none", ""),
    ]
    assert [t for t, _, _ in got[4:]] == ["Non-small-cell lung cancer", "pneumonia", "and SOB"]
    assert notes == []
    for i in items:  # answer offsets slice the answer, note spans the note
        assert answer[i.answer_start : i.answer_end] == i.text
        assert all(NOTE[s:e] for s, e in i.note_spans)
    assert items[0].group != items[2].group


def test_a_list_line_that_is_one_mention_stays_whole() -> None:
    note = "Families with brain, breast, and prostate cancer were studied."
    items, _ = align_items("- brain, breast, and prostate cancer", note, "ner")
    assert [(i.text, i.match) for i in items] == [("brain, breast, and prostate cancer", "exact")]


def test_abbreviation_forms_and_senses(shared_data: Path) -> None:
    answer = (
        "SOB: shortness of breath\n"
        "HTN = heart attack\n"
        "hypertension (HTN)\n"
        "SOB (shortness of breath); PO - by mouth\n"
        "XQZ stands for something\n"
        "this line is not an abbreviation at all"
    )
    senses = SenseInventory.load(shared_data / "abbreviations")
    items, notes = align_items(answer, NOTE, "abbrev", senses)
    got = [(i.abbreviation, i.expansion, i.match, i.sense, i.role) for i in items]
    assert got == [
        ("SOB", "shortness of breath", "exact", "known", "abbreviation"),
        ("HTN", "heart attack", "exact", "unusual", "abbreviation"),
        ("HTN", "hypertension", "exact", "known", "abbreviation"),
        ("SOB", "shortness of breath", "exact", "known", "abbreviation"),
        ("PO", "by mouth", "none", "known", "abbreviation"),
        ("XQZ", "something", "none", "", "abbreviation"),
    ]
    assert any("1 line(s)" in n for n in notes)
    assert any("not in the sense inventories" in n for n in notes)
    _, without = align_items(answer, NOTE, "abbrev")
    assert any("no abbreviation sense inventory" in n for n in without)


def test_relation_arguments_are_aligned_and_tied_together() -> None:
    answer = (
        "metformin -> diabetes\n"
        "(metformin, treats, diabetes)\n"
        "Robitussin for cough\n"
        "pneumonia: causes shortness of breath\n"
        "metformin -> treats -> pneumonia"
    )
    items, notes = align_items(answer, NOTE, "relation")
    got = [(i.text, i.role, i.group, i.label, i.match) for i in items]
    assert got == [
        ("metformin", "arg1", 1, "", "exact"),
        ("diabetes", "arg2", 1, "", "none"),
        ("metformin", "arg1", 2, "treats", "exact"),
        ("diabetes", "arg2", 2, "treats", "none"),
        ("Robitussin", "arg1", 3, "for", "exact"),
        ("cough", "arg2", 3, "for", "none"),
        ("pneumonia", "arg1", 4, "causes", "exact"),
        ("shortness of breath", "arg2", 4, "causes", "normalized"),
        ("metformin", "arg1", 5, "treats", "exact"),
        ("pneumonia", "arg2", 5, "treats", "exact"),
    ]
    assert notes == []


def test_temporal_dates_match_by_value_and_events_are_aligned() -> None:
    answer = "03/14/2026: admitted\nadmitted on 2026-03-14\nDay 2: started antibiotics\nno time here"
    items, notes = align_items(answer, NOTE, "temporal")
    got = [(i.text, i.role, i.group, i.match) for i in items]
    assert got == [
        ("03/14/2026", "time", 1, "normalized"),
        ("admitted", "event", 1, "normalized"),
        ("2026-03-14", "time", 2, "normalized"),
        ("admitted", "event", 2, "normalized"),
        ("Day 2", "time", 3, "none"),
        ("started antibiotics", "event", 3, "none"),
    ]
    assert _span_text(NOTE, items[0].note_spans) == ["March 14, 2026"]
    assert notes == ["1 line(s) of the answer could not be read as Temporal Information Extraction items"]


def test_coreference_chains() -> None:
    answer = "'he' refers to Mr. Smith\nChain 2: the patient, he, his\nMr. Smith = him"
    items, _ = align_items(answer, NOTE, "coref")
    got = [(i.text, i.group, i.match) for i in items]
    assert got == [
        ("he", 1, "exact"),
        ("Mr. Smith", 1, "exact"),
        ("the patient", 2, "none"),
        ("he", 2, "exact"),
        ("his", 2, "exact"),
        ("Mr. Smith", 3, "exact"),
        ("him", 3, "exact"),
    ]
    assert _span_text(NOTE, items[0].note_spans) == ["he"]  # not the "he" inside "the" or "Shortness"


def test_other_tasks_and_unknown_tasks_align_nothing() -> None:
    assert align_items("- metformin", NOTE, "Question Answering") == ([], [])
    assert align_items("- metformin", NOTE, "no such task") == ([], [])
    assert align_items("- metformin", NOTE, None) == ([], [])


def test_check_answer_carries_items_and_their_roles_through_the_stored_form() -> None:
    from app.core.grounding import GroundingReport

    report = check_answer("- robitussin\n- warfarin", NOTE, task="ner")
    assert [(i.text, i.match) for i in report.items] == [("robitussin", "normalized"), ("warfarin", "none")]
    back = GroundingReport.from_dict(report.summary())
    assert back.items == report.items
    assert back.items[0].role == "entity"


@pytest.mark.parametrize(
    "answer",
    [
        "MEDICATIONS: METFORMIN 1000 MG, ROBITUSSIN",  # all capitals
        "- metformina 1000 mg dos veces al día\n- jarabe para la tos",  # another language
        "- \n-\n,,,;;;\n()\n(((",  # punctuation only
        "- " + "x" * 5000,  # one huge item
    ],
)
def test_odd_answers_do_not_crash(answer: str) -> None:
    for task in ("ner", "abbrev", "relation", "temporal", "coref"):
        items, _ = align_items(answer, NOTE, task)
        for i in items:
            assert answer[i.answer_start : i.answer_end] == i.text


def test_a_long_note_stays_bounded() -> None:
    """A 100k-character note of repeated words: the fuzzy step scores a bounded number of windows (counted,
    not timed), however many times a mention's words occur."""
    from app.core.grounding import mention

    note = ("the patient has chronic kidney disease and diabetes mellitus type two. " * 1400)[:100_000]
    index = NoteIndex(note)
    calls = 0
    real = mention._window_score

    def counting(*a):
        nonlocal calls
        calls += 1
        return real(*a)

    mention._window_score = counting
    try:
        got = align_mention("chronic kidnee diseases", index)
    finally:
        mention._window_score = real
    assert got.match == "fuzzy"
    assert calls <= mention.MAX_ANCHORS * 3 * 4  # anchors x window lengths x start positions (3 words + 1)


def test_gold_ncbi_mentions_land_on_gold_offsets(shared_data: Path) -> None:
    """The benchmark's gold check on a slice of the NCBI disease development set."""
    abstracts = bench.load_pubtator(shared_data / "gold" / "ncbi_disease_devel.pubtator.txt")[::4]
    got = bench.gold_alignment(abstracts)
    assert got["items"] > 100
    assert got["share"] >= 0.99


def test_a_negated_finding_or_a_measurement_name_is_an_item_not_nothing_or_a_label() -> None:
    """ "no malignant cells" names a finding (only stock phrases like "none" or "no medications mentioned" say
    nothing was found); "PaO2: 58 mm Hg" is a measurement, while "Problems:" and "Chain 2:" are labels."""
    from app.core.grounding.items import ner

    answer = "- no malignant cells\n- No medications mentioned\n- PaO2: 58 mm Hg\n- Problems: fever"
    pieces, _ = ner(answer)
    texts = [(answer[p.start : p.end], p.label) for p in pieces]
    assert texts == [("no malignant cells", ""), ("PaO2: 58 mm Hg", ""), ("fever", "Problems")]
