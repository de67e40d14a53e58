from __future__ import annotations

from app.core.grounding.tokens import check_tokens as check_grounding

NOTE = """Admitted 03/14/2026 with pneumonia. Creatinine on admission was 1.9 mg/dL (baseline 1.0 mg/dL).
Started on ceftriaxone 1 g IV daily and azithromycin 500 mg daily. History of COPD and HTN.
Discharged on March 19, 2026 on amoxicillin-clavulanate 875 mg BID. WBC 14,200."""


def _by_text(report):
    return {s.text: s for s in report.spans}


def test_supported_facts_carry_note_offsets():
    answer = "Creatinine was 1.9 mg/dL on 03/14/2026; he received ceftriaxone 1 g for his COPD."
    r = _by_text(check_grounding(answer, NOTE))
    for text in ("1.9 mg/dL", "03/14/2026", "ceftriaxone", "1 g", "COPD"):
        span = r[text]
        assert span.found, text
        start, end = span.note_spans[0]
        assert NOTE[start:end].lower().replace(" ", "") == text.lower().replace(" ", "")
        assert answer[span.answer_start : span.answer_end] == text


def test_hallucinated_numbers_doses_drugs_and_abbreviations_are_flagged():
    answer = "He was given warfarin 5 mg; creatinine 2.4 mg/dL; known CHF."
    r = check_grounding(answer, NOTE)
    assert {s.text for s in r.unsupported} == {"warfarin", "5 mg", "2.4 mg/dL", "CHF"}
    assert not r.supported


def test_same_number_with_a_different_unit_is_not_support():
    r = _by_text(check_grounding("azithromycin 500 mcg", NOTE))
    assert r["azithromycin"].found
    assert not r["500 mcg"].found


def test_numbers_match_whole_numbers_only_and_ignore_grouping():
    r = _by_text(check_grounding("WBC 14200 and 9 tablets", NOTE))
    assert r["14200"].found  # 14,200 in the note
    r2 = _by_text(check_grounding("a value of 9", NOTE))
    assert not r2["9"].found  # "9" occurs only inside 1.9 and 19


def test_dates_match_across_formats():
    r = _by_text(check_grounding("Discharge was on 3/19/2026, admission on 14 March 2026.", NOTE))
    assert r["3/19/2026"].found
    assert r["14 March 2026"].found
    assert not check_grounding("Seen on 04/02/2026.", NOTE).spans[0].found


def test_quoted_phrases_are_checked_verbatim_modulo_spacing_and_case():
    r = _by_text(check_grounding('The note says "started on  CEFTRIAXONE" and "started on vancomycin".', NOTE))
    assert r["started on  CEFTRIAXONE"].found
    assert not r["started on vancomycin"].found


def test_answer_without_checkable_facts_has_an_empty_report():
    r = check_grounding("the patient improved and went home.", NOTE)
    assert r.spans == () and r.supported == [] and r.unsupported == []


def test_list_section_and_reference_numbers_are_not_facts():
    answer = (
        "1. Start aspirin\n2) Stop warfarin\n(3) Recheck labs\n4.2 Medications reviewed\n"
        "Plan: 1) metoprolol 2) lisinopril; see step 4 and problem #2."
    )
    r = check_grounding(answer, "Patient on aspirin, warfarin, metoprolol and lisinopril.")
    assert not [s for s in r.spans if s.kind == "number"], r.spans
    assert r.unsupported == []


def test_structural_numbers_in_the_note_do_not_support_a_fact():
    note = "Plan:\n1. Follow up in clinic.\n2. Continue metformin 500 mg."
    r = _by_text(check_grounding("He had 2 admissions", note))
    assert not r["2"].found  # "2." in the note is a list number, not a value


def test_a_value_opening_a_line_is_still_a_fact():
    r = _by_text(check_grounding("1.9 mg/dL on admission\n14200 WBC", NOTE))
    assert r["1.9 mg/dL"].found and r["14200"].found
    r = _by_text(check_grounding("3 days of ceftriaxone", NOTE))
    assert "3 days" in r and not r["3 days"].found


def test_drug_names_come_from_the_lexicon_not_word_endings():
    answer = "High cholesterol; supine films; the repair was undone; dose done. Metformin and lasix started."
    r = check_grounding(answer, "Started metformin.")
    drugs = {s.text: s.found for s in r.spans if s.kind == "drug"}
    assert drugs == {"Metformin": True, "lasix": False}


def test_number_pairs_are_checked_as_pairs():
    note = "BP 132/84 on arrival, HR 88. Pain 7/10. Symptoms since 06/92."
    r = _by_text(check_grounding("BP was 132/84, later 150/90; pain 7/10, then 4/10; since 6/92, not 6/93.", note))
    assert r["132/84"].found and r["7/10"].found and r["6/92"].found  # 6/92 is 06/92
    assert not r["150/90"].found and not r["4/10"].found and not r["6/93"].found


def test_each_span_and_note_offset_is_reported_once():
    note = "Creatinine 1.9 mg/dL. Repeat creatinine 1.9 mg/dL."
    r = check_grounding("creatinine 1.9 and 1.9 mg/dL", note)
    keys = [(s.answer_start, s.answer_end) for s in r.spans]
    assert len(keys) == len(set(keys))
    for s in r.spans:
        assert len(s.note_spans) == len(set(s.note_spans)) and list(s.note_spans) == sorted(s.note_spans)
    bare = next(s for s in r.spans if s.text == "1.9")
    assert len(bare.note_spans) == 2  # two places in the note, each once (it used to list each twice)
