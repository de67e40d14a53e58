"""Standoff export (app.core.grounding.standoff): BioC JSON and brat, parsed back and checked against the note."""

from __future__ import annotations

import json
import re

from app.core.grounding import Claim, ClaimPart, ClaimStatus, GroundingReport, ItemSpan, check_answer
from app.core.grounding.standoff import StandoffDoc, to_bioc, to_brat

NOTE = "Medications: metformin 1000 mg twice daily.\nRobitussin as needed.\nShortness of\nbreath at night."


def _at(text: str) -> tuple[int, int]:
    start = NOTE.index(text)
    return start, start + len(text)


def _report() -> GroundingReport:
    claim = Claim(
        kind="medication",
        text="Ibuprofen 1000 mg twice daily",
        answer_start=0,
        answer_end=29,
        status=ClaimStatus.PARTLY,
        parts=(
            ClaimPart("drug", "Ibuprofen", 0, 9, False),
            ClaimPart("dose", "1000 mg", 10, 17, False, (_at("1000 mg"),), belongs_to="metformin"),
        ),
        reason="1000 mg appears with metformin, not ibuprofen",
    )
    items = (
        ItemSpan("metformin", 0, 9, "exact", 1.0, (_at("metformin"),), role="arg1", group=1, label="treats"),
        ItemSpan("diabetes", 13, 21, "none", 0.0, (), role="arg2", group=1, label="treats"),
        ItemSpan(
            "shortness of breath", 30, 49, "normalized", 1.0, (_at("Shortness of\nbreath"),), "", "", "", "entity", 2,
            "Lab test",
        ),
        ItemSpan("Robitussin", 50, 60, "exact", 1.0, (_at("Robitussin"), (999, 1005)), role="entity", group=3),
    )  # fmt: skip
    return GroundingReport(claims=(claim,), items=items)


def _parse_ann(ann: str) -> dict[str, list[list[str]]]:
    rows: dict[str, list[list[str]]] = {}
    for line in ann.splitlines():
        rows.setdefault(line[0], []).append(line.split("\t"))
    return rows


def test_brat_offsets_slice_the_text_exactly() -> None:
    txt, ann = to_brat(NOTE, _report())
    assert txt == NOTE
    rows = _parse_ann(ann)
    spans = {}
    for tid, middle, text in rows["T"]:
        kind, where = middle.split(" ", 1)
        frags = [tuple(map(int, f.split())) for f in where.split(";")]
        assert " ".join(txt[s:e] for s, e in frags) == text
        assert re.fullmatch(r"[A-Za-z0-9_-]+", kind)
        spans[tid] = (kind, frags, text)
    kinds = sorted(k for k, _, _ in spans.values())
    assert kinds == ["Argument", "Dose", "Entity", "Lab_test"]  # the out-of-range span (999) dropped
    # "Shortness of\nbreath" crosses a line break: written as two fragments
    s, e = _at("Shortness of\nbreath")
    assert next(v for v in spans.values() if v[0] == "Lab_test")[1] == [(s, s + 12), (s + 13, e)]
    attrs = {(a[1].split()[0], a[1].split()[2]) for a in rows["A"]}
    assert ("Match", "exact") in attrs and ("Status", "partly") in attrs
    notes = " ".join(r[2] for r in rows["#"])
    assert "belongs_to=metformin" in notes and "reason=1000 mg appears with metformin, not ibuprofen" in notes


def test_brat_relations_and_coreference() -> None:
    note = "Mr. Smith said he takes metformin for diabetes."
    report = check_answer("metformin -> diabetes", note, task="relation")
    _, ann = to_brat(note, report)
    rows = _parse_ann(ann)
    assert rows["R"][0][1] == "Relation Arg1:T1 Arg2:T2"
    (doc,) = to_bioc([StandoffDoc("r", note, report, "relation")])["documents"]
    nodes = doc["passages"][0]["relations"][0]["nodes"]
    assert [n["role"] for n in nodes] == ["arg1", "arg2"]
    chain = check_answer("he = Mr. Smith", note, task="coref")
    _, ann = to_brat(note, chain)
    assert any(line.startswith("*\tCoreference T") for line in ann.splitlines())


def test_bioc_locations_slice_the_passage_and_survive_json() -> None:
    docs = [
        StandoffDoc("run-1", NOTE, _report(), "ner", {"model": "demo"}),
        StandoffDoc("run-2", None, _report(), "ner"),
    ]
    collection = json.loads(json.dumps(to_bioc(docs)))
    assert set(collection) >= {"source", "date", "key", "infons", "documents"}
    first, second = collection["documents"]
    assert first["id"] == "run-1" and first["infons"] == {"task": "ner", "model": "demo"}
    (passage,) = first["passages"]
    assert passage["offset"] == 0 and passage["text"] == NOTE
    for ann in passage["annotations"]:
        (loc,) = ann["locations"]
        assert passage["text"][loc["offset"] : loc["offset"] + loc["length"]] == ann["text"]
        assert ann["infons"]["run"] == "run-1" and ann["infons"]["task"] == "ner"
    types = {a["infons"]["type"]: a["infons"] for a in passage["annotations"]}
    assert types["Dose"]["status"] == "partly" and types["Dose"]["found"] == "false"
    assert types["Entity"]["match"] == "exact"
    assert passage["relations"] == []  # a relation needs both arguments in the note: arg2 has no span
    # Without the note text: locations kept (the 999 span too: nothing to check it against), no text.
    (p2,) = second["passages"]
    assert "text" not in p2 and all("text" not in a for a in p2["annotations"])
    assert len(p2["annotations"]) == len(passage["annotations"]) + 1


def test_an_empty_report_exports_empty() -> None:
    assert to_brat("note", GroundingReport()) == ("note", "")
    (doc,) = to_bioc([StandoffDoc("r", "note", GroundingReport())])["documents"]
    assert doc["passages"][0]["annotations"] == []
