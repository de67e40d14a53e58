"""Scorers against hand-computed expectations (a 5-item fixture per scorer), and the oracle/empty answers on
the development splits of ../shared/data/gold."""

from __future__ import annotations

import pytest

from app.core.evaluation import load_items, load_suite, parse_decision, score_item
from app.core.evaluation.gold import Gold, GoldMention
from app.core.evaluation.loaders import EvalItem
from app.core.evaluation.match import max_matching, normalize
from app.core.evaluation.rouge import rouge_l, rouge_l_prf
from app.core.evaluation.suites import Suite
from app.service.evaluation import aggregate

NER = Suite("t-ner", "Named Entity Recognition", "pubtator", ("List the diseases.",), "ner")
REL = Suite("t-re", "Relation Extraction", "bioc", ("List the relations.",), "relation")
DEC = Suite("t-qa", "Question Answering", "pubmedqa", ("{question}",), "decision")
ROUGE = Suite("t-sum", "Summarization", "table", ("{instruction}",), "rouge")


def _mentions(note: str, *texts: str) -> tuple[GoldMention, ...]:
    """Every occurrence of each text (case-sensitive), as an annotator would mark them."""
    out = []
    for t in texts:
        at = note.find(t)
        while at >= 0:
            out.append(GoldMention(t, at, at + len(t), "Disease"))
            at = note.find(t, at + 1)
    return tuple(sorted(out, key=lambda m: m.start))


def _item(i: str, note: str, gold: Gold) -> EvalItem:
    return EvalItem(i, note, "List the diseases.", gold, {"id": i})


def test_normalize_and_matching_rules():
    assert normalize("The  Non-small-cell  Lung Cancer.") == "non small cell lung cancer"
    assert normalize("cancers") != normalize("cancer")  # no plural folding when strict
    assert normalize("the") == "the"  # an article alone stays
    # one broad item overlapping two gold texts is credited once (one to one)
    assert len(max_matching(["cancer"], ["breast cancer", "lung cancer"], lambda a, b: "cancer" in b)) == 1
    # a maximum matching, not a greedy one: a->x blocks b unless the path is flipped
    edges = {("a", "x"), ("a", "y"), ("b", "x")}
    assert len(max_matching(["a", "b"], ["x", "y"], lambda p, g: (p, g) in edges)) == 2


def test_ner_document_and_mention_level_by_hand():
    note = "The patient has breast cancer and diabetes. Breast cancer recurred."
    item = _item("1", note, Gold(mentions=_mentions(note, "breast cancer", "diabetes", "Breast cancer")))
    s = score_item(NER, item, "- Breast cancer\n- hypertension")
    # document level: {breast cancer, hypertension} vs {breast cancer, diabetes}
    assert (s.counts["tp"], s.counts["fp"], s.counts["fn"]) == (1, 1, 1)
    assert s.metrics["precision"] == 0.5 and s.metrics["recall"] == 0.5 and s.metrics["f1"] == 0.5
    # mention level: "Breast cancer" aligns to both occurrences; diabetes missed
    assert (s.counts["mention_tp"], s.counts["mention_fp"], s.counts["mention_fn"]) == (2, 0, 1)
    assert s.metrics["mention_precision"] == 1.0 and s.metrics["mention_recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert s.details["missed"] == ["diabetes"] and s.details["spurious"] == ["hypertension"]


def test_ner_lenient_and_a_five_item_corpus_by_hand():
    notes = [
        "Chronic hemolytic anemia was seen.",
        "No disease here.",
        "Asthma and eczema.",
        "Gout flared; gout again.",
        "Migraine.",
    ]
    gold = [("Chronic hemolytic anemia",), (), ("Asthma", "eczema"), ("Gout", "gout"), ("Migraine",)]
    answers = ["hemolytic anemias", "fever", "asthma, eczema", "", "Migraine\nMigraine"]
    items = [
        _item(str(i), n, Gold(mentions=_mentions(n, *g))) for i, (n, g) in enumerate(zip(notes, gold, strict=True))
    ]
    scores = [score_item(NER, it, a) for it, a in zip(items, answers, strict=True)]
    # strict: item0 tp0 fp1 fn1; item1 fp1 (no gold); item2 tp2; item3 fn1 (Gout/gout one text); item4 tp1
    assert [(s.counts["tp"], s.counts["fp"], s.counts["fn"]) for s in scores] == [
        (0, 1, 1),
        (0, 1, 0),
        (2, 0, 0),
        (0, 0, 1),
        (1, 0, 0),
    ]
    assert scores[0].counts["tp_lenient"] == 1  # shares "hemolytic", "anemia" (plural folded)
    assert scores[1].details["gold_empty"] is True and "recall" not in scores[1].metrics
    r = aggregate(NER, scores).to_json()
    # micro: tp 3, fp 2, fn 2 -> P = R = F1 = 0.6; lenient tp 4, fp 1, fn 1 -> 0.8
    assert (r["precision"], r["recall"], r["f1"]) == pytest.approx((0.6, 0.6, 0.6))
    assert r["metrics"]["f1_lenient"]["value"] == pytest.approx(0.8)
    assert r["n"] == 5 and r["f1_n"] == 5 and len(r["f1_ci"]) == 2
    assert any("no gold" in n for n in r["notes"])


def test_relations_by_hand():
    rel = Gold(
        relations=(
            ("negative", "modifies", "rheumatoid factor"),
            ("", "has", "fever"),
            ("liver abscess", "causes", "Klebsiella"),
        )
    )
    item = EvalItem("d1", "note", "List the relations.", rel, {"id": "d1"})
    answer = (
        "(negative, modifies, rheumatoid factor)\n(patient, has, fever)\n(fever, causes, rash)\n"
        "Klebsiella -> liver abscess"
    )
    s = score_item(REL, item, answer)
    # strict: 2 match (the patient is the unannotated argument), (fever, causes, rash) and the unlabeled arrow are fp
    assert (s.counts["tp"], s.counts["fp"], s.counts["fn"]) == (2, 2, 1)
    # lenient: arguments in either order, relation ignored: the arrow matches (liver abscess, causes, Klebsiella)
    assert (s.counts["tp_lenient"], s.counts["fp_lenient"], s.counts["fn_lenient"]) == (3, 1, 0)


@pytest.mark.parametrize(
    ("answer", "decision"),
    [
        ("Yes, it does.", "yes"),
        ("**No**. The trial failed.", "no"),
        ("Answer: maybe", "maybe"),
        ("Based on the data, the answer is no.", "no"),
        ("Perhaps, in some patients.", None),
        ("Nothing conclusive; not yes.", None),
        ("", None),
    ],
)
def test_decision_parsing(answer, decision):
    assert parse_decision(answer) == decision


def test_decisions_five_items_by_hand():
    golds = ["yes", "no", "yes", "no", "no"]
    answers = ["Yes, it does.", "The answer is no.", "Perhaps.", "maybe", "No"]
    items = [EvalItem(str(i), "n", "q", Gold(decision=g), {}) for i, g in enumerate(golds)]
    scores = [score_item(DEC, it, a) for it, a in zip(items, answers, strict=True)]
    r = aggregate(DEC, scores).to_json()
    assert r["accuracy"] == pytest.approx(3 / 5)
    # yes: tp1 fp0 fn1 -> 2/3; no: tp2 fp0 fn1 -> 4/5; maybe: tp0 fp1 fn0 -> 0
    assert r["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    assert r["unparseable"] == 1


def test_rouge_l_by_hand():
    assert rouge_l_prf("the cat sat on the mat", "the cat lay on the mat") == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    p, r, f = rouge_l_prf("a b c d", "a c e")  # LCS "a c"
    assert (p, r, f) == pytest.approx((2 / 4, 2 / 3, 4 / 7))
    assert rouge_l("", "x") == 0.0 and rouge_l("x y", "z") == 0.0
    items = [
        EvalItem(str(i), "n", "q", Gold(reference=ref), {}) for i, ref in enumerate(["the cat lay on the mat", "a c e"])
    ]
    scores = [score_item(ROUGE, it, a) for it, a in zip(items, ["the cat sat on the mat", "a b c d"], strict=True)]
    assert scores[1].metrics["rouge_l_recall"] == pytest.approx(2 / 3)
    assert aggregate(ROUGE, scores).metrics["rouge_l"].value == pytest.approx((5 / 6 + 4 / 7) / 2, abs=1e-6)


def test_decision_rouge_is_of_the_long_answer_after_the_decision():
    item = EvalItem("1", "n", "q", Gold(decision="yes", reference="The trial shows a benefit."), {})
    s = score_item(DEC, item, "Yes. The trial shows a benefit.")
    assert s.metrics["rouge_l"] == 1.0 and s.metrics["accuracy"] == 1.0


def test_support_rate_by_hand_and_rouge_falls_back_to_it_without_a_reference():
    note = "Metformin 500 mg twice daily.\nLisinopril 10 mg daily."
    item = EvalItem("1", note, "Summarize.", Gold(), {})
    answer = "Metformin 500 mg twice daily.\nAspirin 81 mg daily."
    for suite in (ROUGE, Suite("t-sup", "Summarization", "table", ("x",), "support")):
        s = score_item(suite, item, answer)
        assert (s.counts["supported"], s.counts["checked"]) == (1, 2)
        assert s.metrics["support_rate"] == 0.5 and "rouge_l" not in s.metrics


# ---- the development splits: oracle and empty answers -------------------------------------------------------

SPLITS = [
    ("ncbi-disease", "ncbi_disease_devel.pubtator.txt"),
    ("pubmedqa", "pubmedqa_pqal_dev.json"),
    ("bioc-ner", "adahealth_case_reports_dev.bioc.json"),
    ("bioc-re", "adahealth_case_reports_dev.bioc.json"),
]


def oracle_answer(item: EvalItem, scorer: str) -> str:
    """The gold rendered as an answer: one mention or triple a line, the decision then the long answer."""
    if scorer == "ner":
        return "\n".join("- " + t for t in dict.fromkeys(m.text for m in item.gold.mentions))
    if scorer == "relation":
        return "\n".join(f"- {a or 'patient'} -> {r} -> {b or 'patient'}" for a, r, b in item.gold.relations)
    return f"{item.gold.decision}. {item.gold.reference or ''}"


@pytest.mark.parametrize(("name", "file"), SPLITS, ids=[s for s, _ in SPLITS])
def test_oracle_and_empty_answers_on_the_dev_splits(shared_data, name, file):
    suite = load_suite(name)
    items = load_items(suite, shared_data / "gold" / file)
    oracle = aggregate(suite, [score_item(suite, it, oracle_answer(it, suite.scorer)) for it in items])
    empty = aggregate(suite, [score_item(suite, it, "") for it in items])
    document_level = [k for k in oracle.metrics if not k.startswith("mention_")]
    if name in ("ncbi-disease", "pubmedqa"):
        assert {k: oracle.metrics[k].value for k in document_level} == {k: 1.0 for k in document_level}
    else:
        # One gold text of the case reports holds a comma inside one mention ("PaO 2 : 58 mm Hg, while
        # breathing 50% oxygen"): the one item splitter reads it as two items, the ceiling under 1.0.
        assert all(oracle.metrics[k].value >= 0.998 for k in document_level)
    if suite.scorer == "ner":  # every gold mention is found; unmarked occurrences are the precision gap
        assert oracle.metrics["mention_recall_lenient"].value >= 0.99
    assert all(e.value == 0.0 for e in empty.metrics.values())
