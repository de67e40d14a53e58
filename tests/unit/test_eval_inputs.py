"""Suites, gold files and answers files: the formats read right, and every bad input refused with a clear
message naming the file and the line or document."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.core.errors import UsageError
from app.core.evaluation import answers_for, items_records, load_items, load_items_with_notes, load_suite, read_answers
from app.core.evaluation.scorers import ItemScore
from app.core.evaluation.suites import BUILTIN_SUITES, MAX_SUITE_BYTES, Suite
from app.service.evaluation import aggregate, paired

PT = Suite("pt", "Named Entity Recognition", "pubtator", ("List diseases.",), "ner")
BIOC = Suite("bc", "Named Entity Recognition", "bioc", ("List findings.",), "ner")


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def test_every_builtin_suite_loads_and_ships_as_package_data():
    for name in BUILTIN_SUITES:
        s = load_suite(name)
        assert s.name == name and s.instructions
    assert load_suite("pubmedqa").scorer == "decision"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"name": "x", "task": "ner", "loader": "pubtator", "scorer": "bleu", "instructions": "x"},
            "unknown scorer 'bleu'",
        ),
        ({"name": "x", "task": "ner", "loader": "pubtator", "instructions": "x"}, "missing field 'scorer'"),
        (
            {"name": "x", "task": "ner", "loader": "pubtator", "scorer": "ner", "instructions": "x", "scorrer": 1},
            "unknown field 'scorrer'",
        ),
        (
            {"name": "x", "task": "ner", "loader": "pubtator", "scorer": "ner", "instructions": 3},
            "instructions must be text",
        ),
        (
            {"name": "x", "task": "ner", "loader": "pubtator", "scorer": "ner", "instructions": "x", "sample": "5"},
            "sample must be",
        ),
        ({"name": "x", "task": "nope", "loader": "pubtator", "scorer": "ner", "instructions": "x"}, "unknown task"),
        (
            {"name": "x", "task": "ner", "loader": "pubtator", "scorer": "decision", "instructions": "x"},
            "decision scorer needs",
        ),
        (
            {"name": "x", "task": "qa", "loader": "pubmedqa", "scorer": "decision", "instructions": "{questoin}"},
            "unknown field(s) questoin",
        ),
    ],
)
def test_bad_suite_files_name_the_problem(tmp_path, data, message):
    p = _write(tmp_path, "s.json", json.dumps(data))
    with pytest.raises(UsageError, match="not a valid suite") as e:
        load_suite(p)
    assert message in str(e.value) and str(p) in str(e.value)


def test_suite_file_refusals_and_yaml(tmp_path):
    for content, message in [(b"", "empty"), (b"\x00\x01{}", "binary"), (b"{not json", "not valid JSON")]:
        with pytest.raises(UsageError, match=message):
            load_suite(_write(tmp_path, "s.json", content))
    huge = tmp_path / "huge.json"
    with huge.open("wb") as fh:
        fh.truncate(MAX_SUITE_BYTES + 1)  # sparse: refused by its size before reading
    with pytest.raises(UsageError, match="over"):
        load_suite(huge)
    with pytest.raises(UsageError, match="not a built-in suite"):
        load_suite("no-such-suite")
    y = _write(
        tmp_path,
        "s.yaml",
        "name: y\ntask: ner\nloader: bioc\nscorer: ner\ninstructions: [List them.]\nsample: 2\nseed: 3\n",
    )
    assert load_suite(y).sample == 2


PUBTATOR = """\
111|t|Breast cancer and ovarian cancer.
111|a|Colon   cancer follows.
111\t0\t13\tBreast cancer\tSpecificDisease\tD1
111\t0\t32\tBreast cancer and ovarian cancer\tCompositeMention\tD1|D2
111\t18\t32\tovarian cancer\tSpecificDisease\tD2
111\t34\t49\tColon   cancer \tSpecificDisease\tD3
111\tCID\tD1\tD2

222|t|Nothing annotated here.
222|a|Really nothing.
"""


def test_pubtator_overlaps_whitespace_and_items_with_no_gold(tmp_path):
    items, notes = load_items_with_notes(PT, _write(tmp_path, "g.txt", PUBTATOR))
    assert [i.id for i in items] == ["111", "222"]
    first = items[0]
    assert first.note == "Breast cancer and ovarian cancer. Colon   cancer follows."
    assert [m.text for m in first.gold.mentions] == [
        "Breast cancer",
        "Breast cancer and ovarian cancer",
        "ovarian cancer",
        "Colon   cancer",
    ]
    assert first.gold.mentions[-1].end == 48  # the trailing space of the annotation trimmed
    assert any("relation line" in n for n in notes) and any("1 of 2 documents have no gold" in n for n in notes)


def test_pubtator_offsets_that_do_not_match_their_text_are_refused_with_the_line(tmp_path):
    bad = PUBTATOR.replace("111\t18\t32\tovarian", "111\t17\t31\tovarian")
    with pytest.raises(UsageError, match=r"g.txt: 1 mention\(s\) whose offsets do not match.*line 5"):
        load_items(PT, _write(tmp_path, "g.txt", bad))
    with pytest.raises(UsageError, match=r"g.txt:3: a mention of 999 outside its document"):
        load_items(PT, _write(tmp_path, "g.txt", PUBTATOR.replace("111\t0\t13", "999\t0\t13")))
    dup = PUBTATOR + "111|t|Another title.\n"
    with pytest.raises(UsageError, match="PMID 111 again"):
        load_items(PT, _write(tmp_path, "g.txt", dup))


def _bioc(annotations, relations=()):
    text = "Severe pain in the left knee, no fever."
    return {
        "documents": [
            {
                "id": "d1",
                "passages": [{"offset": 0, "text": text, "annotations": annotations, "relations": list(relations)}],
            }
        ]
    }


def test_bioc_discontinuous_overlapping_and_unannotated_arguments(tmp_path):
    anns = [
        {
            "id": "1",
            "infons": {"entityType": "finding"},
            "locations": [{"offset": 7, "length": 4}, {"offset": 24, "length": 4}],
            "text": "pain knee",
        },
        {
            "id": "2",
            "infons": {"entityType": "finding"},
            "locations": {"offset": 7, "length": 21},
            "text": "pain in the left knee",
        },
        {"id": "3", "infons": {"entityType": "modifier"}, "locations": [{"offset": 29, "length": 4}], "text": " no "},
        {"id": "4", "infons": {"entityType": "finding"}, "locations": [{"offset": 33, "length": 5}], "text": "fever"},
    ]
    rels = [
        {
            "infons": {"type": "modifies"},
            "nodes": [{"refid": "3", "role": "Governor"}, {"refid": "4", "role": "Dependent"}],
        },
        {
            "infons": {"type": "has"},
            "nodes": [{"refid": "99", "role": "Governor"}, {"refid": "1", "role": "Dependent"}],
        },
    ]
    p = _write(tmp_path, "c.bioc.json", json.dumps(_bioc(anns, rels)))
    (item,) = load_items(BIOC, p)
    disc = item.gold.mentions[0]
    assert disc.fragments == ((7, 11), (24, 28)) and disc.text == "pain knee"
    assert len(item.gold.mentions) == 4  # the overlapping mentions are all kept
    assert item.gold.relations == (("no", "modifies", "fever"), ("", "has", "pain knee"))
    re_suite = Suite("r", "Relation Extraction", "bioc", ("x",), "relation", relation_types=("modifies",))
    (only,), notes = load_items_with_notes(re_suite, p)
    assert only.gold.relations == (("no", "modifies", "fever"),) and notes == []
    anns[3] = {**anns[3], "text": "fevers"}
    with pytest.raises(UsageError, match=r"document d1, annotation 4: 'fevers' annotated at 33-38"):
        load_items(BIOC, _write(tmp_path, "c.bioc.json", json.dumps(_bioc(anns))))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\x00\x00PK", "binary"),
        (b"\xff\xfe{", "not valid UTF-8"),
        (b"[1, 2]", "not a BioC JSON collection"),
    ],
)
def test_bad_gold_files(tmp_path, content, message):
    with pytest.raises(UsageError, match=message):
        load_items(BIOC, _write(tmp_path, "g.json", content))


def test_huge_gold_file_is_refused_before_reading(tmp_path, monkeypatch):
    import app.core.evaluation.loaders as loaders

    monkeypatch.setattr(loaders, "MAX_GOLD_BYTES", 1000)
    p = tmp_path / "big.txt"
    with p.open("wb") as fh:
        fh.truncate(1001)
    with pytest.raises(UsageError, match="1,001 bytes, over the 1,000"):
        load_items(PT, p)


def test_pubmedqa_sampling_templates_and_items_records(shared_data):
    suite = Suite(
        "q",
        "Question Answering",
        "pubmedqa",
        ("{question}", "Q: {question} yes/no/maybe?"),
        "decision",
        sample=5,
        seed=7,
    )
    items = load_items(suite, shared_data / "gold" / "pubmedqa_pqal_dev.json")
    again = load_items(suite, shared_data / "gold" / "pubmedqa_pqal_dev.json")
    assert [i.id for i in items] == [i.id for i in again] and len(items) == 10
    assert items[0].id.endswith("#1") and items[1].id.endswith("#2") and items[1].instruction.startswith("Q: ")
    assert items[0].gold.decision in ("yes", "no", "maybe") and items[0].gold.reference
    other = load_items(
        Suite("q", "qa", "pubmedqa", ("{question}",), "decision", sample=5, seed=8),
        shared_data / "gold" / "pubmedqa_pqal_dev.json",
    )
    assert [i.id for i in other] != [i.id.split("#")[0] for i in items[::2]]
    assert items_records(items[:1]) == [{"id": items[0].id, "note": items[0].note, "instruction": items[0].instruction}]


def test_table_gold(tmp_path):
    p = _write(
        tmp_path, "t.csv", "id,note,instruction,reference\na,Note one.,Summarize.,One.\nb,Note two.,Summarize.,\n"
    )
    suite = Suite("t", "Summarization", "table", ("{instruction}",), "rouge")
    items = load_items(suite, p)
    assert [(i.id, i.instruction, i.gold.reference) for i in items] == [
        ("a", "Summarize.", "One."),
        ("b", "Summarize.", None),
    ]
    with pytest.raises(UsageError, match="line 3: empty note"):
        load_items(suite, _write(tmp_path, "t.csv", "id,note\na,x\nb,\n"))
    with pytest.raises(UsageError, match=r"uses \{question\}"):
        load_items(Suite("t", "qa", "table", ("{question}",), "rouge"), _write(tmp_path, "t.csv", "note\nx\n"))


def test_answers_files(tmp_path, shared_data):
    good = _write(tmp_path, "a.jsonl", '{"id": 1, "answer": "yes"}\n{"id": "2", "answer": "no"}\n')
    assert read_answers(good) == {"1": "yes", "2": "no"}
    cases = [
        ('{"id": "1", "answer": "a"}\n{"id": "1", "answer": "b"}\n', r"line 2: id '1' again \(first at line 1\)"),
        ('{"answer": "a"}\n', "line 1: no id"),
        ('{"id": "1"}\n', "line 1: no answer"),
        ('{"id": "1", "answer": 3}\n', "answer must be text"),
        ("[1]\n", "line 1: not a JSON object"),
        ("", "no answers"),
    ]
    for text, message in cases:
        with pytest.raises(UsageError, match=message):
            read_answers(_write(tmp_path, "a.jsonl", text))
    with pytest.raises(UsageError, match="binary"):
        read_answers(_write(tmp_path, "a.jsonl", b"\x00\x01"))
    items = load_items(load_suite("pubmedqa"), shared_data / "gold" / "pubmedqa_pqal_dev.json")[:3]
    answers = {items[0].id: "yes", items[1].id: "no", "elsewhere": "x"}
    with pytest.raises(UsageError, match=rf"no answer for 1 of 3 items: {items[2].id}"):
        answers_for(items, answers, "a.jsonl")
    got, notes = answers_for(items[:2], answers, "a.jsonl")
    assert got == ["yes", "no"] and "1 answer(s) for ids that are not items" in notes[0]


def _scores(correct: list[int]) -> list[ItemScore]:
    return [ItemScore(str(i), {}, {"correct": c, "decided": 1}, {}) for i, c in enumerate(correct)]


def test_aggregate_intervals_and_paired_tests():
    suite = Suite("q", "Question Answering", "pubmedqa", ("x",), "decision")
    r = aggregate(suite, _scores([1] * 30 + [0] * 10), model="m")
    acc = r.metrics["accuracy"]
    assert acc.value == 0.75 and acc.low < 0.75 < acc.high and acc.n == 40
    assert aggregate(suite, _scores([1] * 30 + [0] * 10)).metrics["accuracy"] == acc  # seeded: repeatable
    js = r.to_json()
    assert js["accuracy"] == 0.75 and js["accuracy_ci"] == [acc.low, acc.high] and js["n"] == 40
    # McNemar: a right on 5 items b got wrong, never the other way: p = 2 * 0.5**5
    a, b = _scores([1] * 5 + [1] * 10), _scores([0] * 5 + [1] * 10)
    (res,) = paired(suite, a, b)
    assert res.test == "mcnemar" and res.discordant == (5, 0) and res.p_value == pytest.approx(0.0625)
    assert res.difference.value == pytest.approx(5 / 15) and res.difference.n == 15
    (same,) = paired(suite, a, a)
    assert same.p_value == 1.0 and same.difference.value == 0.0
    assert paired(suite, a, [ItemScore("other", {}, {"correct": 1, "decided": 1}, {})]) == []


def test_paired_bootstrap_for_f1():
    suite = Suite("n", "ner", "pubtator", ("x",), "ner")
    rng = np.random.default_rng(0)
    a = [ItemScore(str(i), {}, {"tp": 4, "fp": 0, "fn": 0}, {}) for i in range(30)]
    b = [
        ItemScore(str(i), {}, {"tp": int(t), "fp": 2, "fn": 4 - int(t)}, {})
        for i, t in enumerate(rng.integers(0, 3, 30))
    ]
    res = {r.metric: r for r in paired(suite, a, b)}
    f1 = res["f1"]
    assert f1.test == "paired bootstrap" and f1.value_a == 1.0 and f1.difference.low > 0 and f1.p_value < 0.01
