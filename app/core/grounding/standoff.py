"""Aligned spans in the standoff forms clinical NLP tools load: BioC JSON and brat.

What is annotated on the note: each aligned extraction item (``ItemSpan``, one annotation per note span;
unaligned items have none) and each claim part found in the note (``ClaimPart`` with note spans: the drug, the
dose, ...; a part found only elsewhere in the note is annotated too, with ``found`` false and what it belongs
to there). Offsets are character offsets into the note text the report was made against.

* ``to_bioc(docs)``: a BioC JSON collection (the ``bioc`` library's JSON layout: ``source``, ``date``, ``key``,
  ``infons``, ``documents``), one document per run, the note as one passage at offset 0 (with its text when
  the caller has it), annotations with ``infons`` (``type``, ``role``, ``task``, ``match``, ``status``,
  ``run``, ...), ``locations`` (offset, length) and ``text``; a relation's arguments as a BioC relation.
* ``to_brat(note, report)``: the ``.txt`` (the note verbatim) and ``.ann``: ``T`` lines (a span crossing a line
  break is written as fragments, as brat requires), ``A`` attribute lines (``Match``, ``Status``, ``Sense``),
  ``#`` AnnotatorNotes (score, expansion, reason), ``R`` lines for relations and ``*`` lines for
  coreference chains. Write the ``.txt`` byte for byte (``newline=""``): brat offsets count characters of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.core.grounding.report import Claim, ClaimPart, GroundingReport, ItemSpan, Span


@dataclass(frozen=True)
class StandoffDoc:
    """One run to export."""

    id: str
    """The document id (a run's uuid)."""
    note_text: str | None
    """The note the report's offsets index; None when the log keeps hashes only (locations still given)."""
    report: GroundingReport
    task: str = ""
    """The run's task (name or slug), written into every annotation."""
    infons: dict[str, str] = field(default_factory=dict)
    """Extra document infons (model, created, ...)."""


@dataclass(frozen=True)
class _Mark:
    """One annotation before formatting."""

    type: str
    span: Span
    infons: dict[str, str]
    group: str = ""
    """Ties annotations together: ``item:3`` (a relation or chain), ``claim:2``."""
    role: str = ""


def _item_type(item: ItemSpan) -> str:
    if item.role == "abbreviation":
        return "Abbreviation"
    if item.role in ("time", "event"):
        return item.role.capitalize()
    if item.role == "mention":
        return "Mention"
    if item.role in ("arg1", "arg2"):
        return "Argument"
    # brat type names cannot hold spaces or punctuation: "Medications" stays, "Lab test" becomes "Lab_test"
    return re.sub(r"[^A-Za-z0-9_-]", "_", item.label) if item.label else "Entity"


def _marks(report: GroundingReport, length: int | None) -> Iterator[_Mark]:
    """Every annotation of a report; spans outside the note (a stale report) are skipped."""

    def inside(span: Span) -> bool:
        return 0 <= span[0] < span[1] and (length is None or span[1] <= length)

    for item in report.items:
        infons = {"match": item.match, "score": f"{item.score:g}", "item": item.text}
        infons.update({k: v for k, v in (("sense", item.sense), ("expansion", item.expansion)) if v})
        if item.label:
            infons["label"] = item.label
        for span in filter(inside, item.note_spans):
            yield _Mark(_item_type(item), span, infons, f"item:{item.group}", item.role or "entity")
    for n, claim in enumerate(report.claims, 1):
        for part in claim.parts:
            for span in filter(inside, part.note_spans):
                yield _Mark(part.role.capitalize() or "Part", span, _part_infons(claim, part), f"claim:{n}", part.role)


def _part_infons(claim: Claim, part: ClaimPart) -> dict[str, str]:
    infons = {
        "status": str(claim.status),
        "claim": claim.text,
        "claim_kind": claim.kind,
        "found": str(part.found).lower(),
    }
    if part.belongs_to:
        infons["belongs_to"] = part.belongs_to
    if claim.reason:
        infons["reason"] = claim.reason
    return infons


def to_bioc(docs: list[StandoffDoc], source: str = "Asclepius Desk grounding") -> dict[str, Any]:
    """A BioC JSON collection of the runs' aligned spans."""
    return {
        "source": source,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "key": "asclepius-grounding.key",
        "infons": {},
        "documents": [_bioc_document(doc) for doc in docs],
    }


def _bioc_document(doc: StandoffDoc) -> dict[str, Any]:
    text = doc.note_text
    annotations: list[dict[str, Any]] = []
    groups: dict[str, list[tuple[str, str]]] = {}
    for n, mark in enumerate(_marks(doc.report, None if text is None else len(text)), 1):
        infons = {"type": mark.type, "role": mark.role, "task": doc.task, "run": doc.id, **mark.infons}
        ann: dict[str, Any] = {
            "id": f"T{n}",
            "infons": infons,
            "locations": [{"offset": mark.span[0], "length": mark.span[1] - mark.span[0]}],
        }
        if text is not None:
            ann["text"] = text[mark.span[0] : mark.span[1]]
        annotations.append(ann)
        if mark.role in ("arg1", "arg2", "mention"):
            groups.setdefault(mark.group, []).append((ann["id"], mark.role))
    relations = [
        {"id": f"R{i}", "infons": {"type": "Coreference" if nodes[0][1] == "mention" else "Relation"},
         "nodes": [{"refid": ref, "role": role} for ref, role in nodes]}
        for i, nodes in enumerate((v for v in groups.values() if len({r for r, _ in v}) > 1), 1)
    ]  # fmt: skip
    passage: dict[str, Any] = {"offset": 0, "infons": {"type": "note"}, "sentences": [], "annotations": annotations}
    passage["relations"] = relations
    if text is not None:
        passage["text"] = text
    return {"id": doc.id, "infons": {"task": doc.task, **doc.infons}, "passages": [passage], "relations": []}


def _fragments(note: str, span: Span) -> list[Span]:
    """A span split at line breaks (brat's T lines cannot hold one), blank fragments dropped."""
    out, at = [], span[0]
    for m in re.finditer(r"[\r\n]+", note[span[0] : span[1]]):
        out.append((at, span[0] + m.start()))
        at = span[0] + m.end()
    out.append((at, span[1]))
    return [(s, e) for s, e in out if note[s:e].strip()]


def to_brat(note: str, report: GroundingReport) -> tuple[str, str]:
    """The brat ``.txt`` (the note) and ``.ann`` of a report."""
    lines: list[str] = []
    groups: dict[str, list[tuple[str, str]]] = {}
    t = a = 0
    for _n, mark in enumerate(_marks(report, len(note)), 1):
        frags = _fragments(note, mark.span)
        if not frags:
            continue
        t += 1
        where = ";".join(f"{s} {e}" for s, e in frags)
        lines.append(f"T{t}\t{mark.type} {where}\t{' '.join(note[s:e] for s, e in frags)}")
        for name in ("match", "status", "sense"):
            if mark.infons.get(name):
                a += 1
                lines.append(f"A{a}\t{name.capitalize()} T{t} {mark.infons[name]}")
        extra = {k: v for k, v in mark.infons.items() if k not in ("match", "status", "sense")}
        lines.append(f"#{t}\tAnnotatorNotes T{t}\t" + "; ".join(f"{k}={_one_line(v)}" for k, v in extra.items()))
        if mark.role in ("arg1", "arg2", "mention"):
            groups.setdefault(mark.group, []).append((f"T{t}", mark.role))
    r = 0
    for nodes in groups.values():
        if nodes[0][1] == "mention" and len(nodes) > 1:
            lines.append("*\tCoreference " + " ".join(ref for ref, _ in nodes))
        args = {role: ref for ref, role in reversed(nodes)}  # the first span of each argument
        if "arg1" in args and "arg2" in args:
            r += 1
            lines.append(f"R{r}\tRelation Arg1:{args['arg1']} Arg2:{args['arg2']}")
    return note, "\n".join(lines) + ("\n" if lines else "")


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace(";", ",")
