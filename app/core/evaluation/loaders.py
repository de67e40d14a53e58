"""A suite's items from a gold file: the documents read (``gold`` for PubTator and BioC, here for PubMedQA and
tables), filtered to the suite's types, drawn (seeded) and given their instructions.

* **PubMedQA JSON** (``{"PMID": {"QUESTION", "CONTEXTS", "LABELS", "LONG_ANSWER", "final_decision"}}``): the
  note is the abstract's sections, one paragraph each, headed by their label ("METHODS: ..."); the field
  ``{question}`` is the question; gold: the decision (``yes``/``no``/``maybe``; anything else refused, naming
  the PMID; missing: an item with no gold) and the long answer as the reference.
* **Table** (CSV or JSON Lines, through ``app.core.records``): a ``note`` column (required), and optionally
  ``id`` (default: the line number), ``instruction``, ``reference`` and ``decision``; every column is a
  template field (``{instruction}`` uses the row's own instruction).

Items: a document drawn by the suite (``sample`` documents with ``random.Random(seed)``, kept in file order)
becomes one item per instruction template; with one template the item id is the document id (the PMID for
PubTator and PubMedQA, the document id for BioC), with several it is ``ID#1``, ``ID#2``... Items with no gold
for the suite's scorer (no mention of the kept types, no relation, no decision, no reference) are kept:
their answers are still scored (every item named is a false positive), and they are counted in the notes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from app.core import safejson
from app.core.errors import UsageError
from app.core.evaluation.files import MAX_GOLD_BYTES, read_text
from app.core.evaluation.gold import Gold, GoldDoc, GoldMention, read_bioc, read_pubtator
from app.core.evaluation.suites import Suite
from app.core.records import read_records, type_problems

__all__ = ["DECISIONS", "EvalItem", "Gold", "GoldMention", "has_gold", "load_items", "load_items_with_notes"]

DECISIONS = ("yes", "no", "maybe")
TABLE_COLUMNS = ("id", "note", "instruction", "reference", "decision")


@dataclass(frozen=True)
class EvalItem:
    """One question to ask and score."""

    id: str
    """Unique in the suite: the document id, with ``#k`` for the k-th of several templates."""
    note: str
    """The text the model is given."""
    instruction: str
    """The suite's template filled with the item's fields."""
    gold: Gold
    fields: dict[str, str]
    """The document's fields (``id``, ``question``, a table's columns...)."""


def _pubmedqa(text: str, name: str) -> list[GoldDoc]:
    try:
        data = safejson.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{name}: not PubMedQA JSON (expected an object keyed by PMID)")
    out = []
    for pmid, rec in data.items():
        where = f"{name}, PMID {pmid}"
        if not isinstance(rec, dict) or not isinstance(rec.get("QUESTION"), str):
            raise UsageError(f"{where}: an item needs a QUESTION")
        contexts, labels = rec.get("CONTEXTS"), rec.get("LABELS") or []
        if not isinstance(contexts, list) or not contexts or not all(isinstance(c, str) for c in contexts):
            raise UsageError(f"{where}: CONTEXTS must be a non-empty list of text")
        labels = labels if isinstance(labels, list) and len(labels) == len(contexts) else [""] * len(contexts)
        note = "\n\n".join(
            f"{lab}: {c}" if isinstance(lab, str) and lab else c for lab, c in zip(labels, contexts, strict=True)
        )
        decision = rec.get("final_decision")
        if decision is not None and (not isinstance(decision, str) or decision.strip().lower() not in DECISIONS):
            raise UsageError(f"{where}: final_decision must be yes, no or maybe, not {decision!r}")
        reference = rec.get("LONG_ANSWER") if isinstance(rec.get("LONG_ANSWER"), str) else None
        gold = Gold(decision=decision.strip().lower() if decision else None, reference=reference or None)
        out.append(GoldDoc(str(pmid), note, gold, {"id": str(pmid), "question": rec["QUESTION"]}))
    return out


def _table(path: Path) -> list[GoldDoc]:
    names, rows = read_records(path, max_bytes=MAX_GOLD_BYTES, what="gold table")
    if "note" not in names:
        raise UsageError(f"{path.name}: a gold table needs a 'note' column (it has: {', '.join(names) or 'none'})")
    problems, out, seen = [], [], {}
    for line, rec in rows:
        if isinstance(rec, str):
            problems.append(f"line {line}: {rec}")
            continue
        bad = type_problems(rec, names, numbers_ok=("id",))
        note = rec.get("note") or ""
        if not isinstance(note, str) or not note.strip():
            bad.append("empty note")
        decision = (rec.get("decision") or "").strip().lower() if isinstance(rec.get("decision"), str) else ""
        if decision and decision not in DECISIONS:
            bad.append(f"decision must be yes, no or maybe, not {rec['decision']!r}")
        item_id = str(rec.get("id") or line)
        if item_id in seen:
            bad.append(f"id {item_id!r} again (first at line {seen[item_id]})")
        seen.setdefault(item_id, line)
        if bad:
            problems.append(f"line {line}: {'; '.join(bad)}")
            continue
        fields = {k: str(v) for k, v in rec.items() if v is not None}
        fields["id"] = item_id
        gold = Gold(decision=decision or None, reference=(rec.get("reference") or "").strip() or None)
        out.append(GoldDoc(item_id, note, gold, fields))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise UsageError(f"{path.name}: {len(problems)} bad row(s): {'; '.join(problems[:5])}{more}")
    return out


def read_documents(suite: Suite, path: str | Path, notes: list[str]) -> list[GoldDoc]:
    """Every document of the gold file in the suite's format, in file order."""
    p = Path(path)
    if suite.loader == "table":
        docs = _table(p)
    else:
        text = read_text(p, f"{suite.loader} gold file", MAX_GOLD_BYTES)
        readers = {"pubtator": read_pubtator, "bioc": read_bioc}
        docs = readers[suite.loader](text, p.name, notes) if suite.loader in readers else _pubmedqa(text, p.name)
    if not docs:
        raise UsageError(f"{p}: no documents in this {suite.loader} file")
    return docs


def _kept(doc: GoldDoc, suite: Suite) -> GoldDoc:
    """The document with only the suite's entity and relation types (compared ignoring case)."""
    gold = doc.gold
    if suite.entity_types:
        types = {t.casefold() for t in suite.entity_types}
        gold = replace(gold, mentions=tuple(m for m in gold.mentions if m.type.casefold() in types))
    if suite.relation_types:
        types = {t.casefold() for t in suite.relation_types}
        gold = replace(gold, relations=tuple(r for r in gold.relations if r[1].casefold() in types))
    return replace(doc, gold=gold)


def has_gold(gold: Gold, scorer: str) -> bool:
    """Whether an item carries what ``scorer`` compares against (``support`` needs none)."""
    return {
        "ner": bool(gold.mentions),
        "relation": bool(gold.relations),
        "decision": gold.decision is not None,
        "rouge": gold.reference is not None,
    }.get(scorer, True)


def _instruction(template: str, fields: dict[str, str], doc_id: str) -> str:
    try:
        return template.format_map(fields)
    except KeyError as exc:
        raise UsageError(
            f"document {doc_id}: the instruction {template!r} uses {{{exc.args[0]}}}, which this item does not have "
            f"(it has: {', '.join(sorted(fields))})"
        ) from None


def _drawn(docs: list[GoldDoc], suite: Suite, notes: list[str]) -> list[GoldDoc]:
    if suite.sample is None:
        return docs
    if suite.sample >= len(docs):
        notes.append(f"sample {suite.sample} is not less than the file's {len(docs)} documents: all were taken")
        return docs
    picked = sorted(random.Random(suite.seed).sample(range(len(docs)), suite.sample))
    return [docs[i] for i in picked]


def load_items_with_notes(suite: Suite, path: str | Path) -> tuple[list[EvalItem], list[str]]:
    """The suite's items from ``path`` and what was noticed on the way (repeated documents, skipped relation
    lines, items with no gold...), in words. Every problem that makes scores untrustworthy raises
    ``UsageError`` naming the file and the line or document."""
    notes: list[str] = []
    docs = [_kept(d, suite) for d in _drawn(read_documents(suite, path, notes), suite, notes)]
    many = len(suite.instructions) > 1
    items = [
        EvalItem(f"{d.id}#{k}" if many else d.id, d.note, _instruction(t, d.fields, d.id), d.gold, d.fields)
        for d in docs
        for k, t in enumerate(suite.instructions, start=1)
    ]
    empty = sum(1 for d in docs if not has_gold(d.gold, suite.scorer))
    if empty:
        notes.append(
            f"{empty} of {len(docs)} documents have no gold for the {suite.scorer} scorer; kept (anything an answer "
            "names there is a false positive)"
        )
    wild = (
        0
        if suite.scorer != "relation"
        else sum(1 for d in docs for r in d.gold.relations for a in (r[0], r[2]) if not a)
    )
    if wild:
        notes.append(
            f"{wild} relation argument(s) name no annotation (such as the patient): each matches any answer argument"
        )
    return items, notes


def load_items(suite: Suite, path: str | Path) -> list[EvalItem]:
    """The suite's items from the gold file at ``path`` (see the module docstring); ``UsageError`` naming the
    file and line or document for every format problem."""
    return load_items_with_notes(suite, path)[0]
