"""What a gold annotation holds, and the two span-annotated formats: PubTator and BioC JSON.

* **PubTator** (NCBI disease, BC5CDR): ``PMID|t|title``, ``PMID|a|abstract``, then one line per mention,
  ``PMID<TAB>start<TAB>end<TAB>text<TAB>type<TAB>concept[<TAB>...]``, offsets into ``title + " " + abstract``.
  Relation lines (``PMID<TAB>CID<TAB>C1<TAB>C2``, between concept ids, not text) are skipped and counted.
  A document repeated byte for byte (NCBI-disease train holds PMID 8528200 twice) is kept once and noted;
  a PMID repeated with other content is refused (item ids must be unique).
* **BioC JSON**: ``documents[].passages[]`` with ``text``, ``offset`` (document offset), ``annotations[]``
  (``id``, ``infons.type`` or ``infons.entityType``, ``locations`` as a list or a single object, ``text``) and
  ``relations[]`` in the passages or the document (``infons.type``, ``nodes[{refid, role}]``). Passages are
  placed at their offsets (a gap filled with spaces, the last of them a line break), so annotation offsets
  index the note as given.

Problems, each with the file and the line (PubTator) or the document and annotation id (BioC):

* an **offset mismatch** (the note's text at a mention's offsets is not the mention's text) refuses the file,
  listing the first five: it almost always means the wrong file, a changed encoding or a broken export, and
  scores computed on it would be wrong without anyone noticing. Only surrounding whitespace is forgiven: a
  mention ``" no "`` is kept as ``no`` with its offsets narrowed.
* **overlapping** mentions (one inside or across another) are all kept, each with its own span;
  **discontinuous** mentions (several BioC locations) keep every fragment (``GoldMention.fragments``), their
  text the fragments' texts joined by a space (BioC writers join them with a space or write the covering text;
  both are accepted); a mention annotated twice with the same span and type is kept once.
* a relation argument that names no annotation of its document (the case-report corpus's ``has`` relations
  point at the patient, who is never annotated) becomes the empty string: it matches any answer argument.
  Relations with other than two arguments are skipped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.core import safejson
from app.core.errors import UsageError

Span = tuple[int, int]
SHOWN = 5
"""Problems quoted in one message (the count says how many there are)."""


@dataclass(frozen=True)
class GoldMention:
    """One annotated mention."""

    text: str
    """The mention as annotated (surrounding whitespace removed)."""
    start: int
    end: int
    """Note offsets of the mention (of the span covering every fragment for a discontinuous one)."""
    type: str
    """The annotation's type ("SpecificDisease", "finding"); "" when the file gives none."""
    fragments: tuple[Span, ...] = ()
    """For a discontinuous mention, its pieces in note order; () for a contiguous one."""


@dataclass(frozen=True)
class Gold:
    """What an item is scored against; a scorer reads the part it needs."""

    mentions: tuple[GoldMention, ...] = ()
    """Every annotated mention (NER)."""
    relations: tuple[tuple[str, str, str], ...] = ()
    """(first argument's text, relation type, second argument's text); "" for an argument no annotation names."""
    decision: str | None = None
    """``yes``, ``no`` or ``maybe`` (question answering)."""
    reference: str | None = None
    """A reference answer (PubMedQA's long answer, a table's ``reference``)."""


@dataclass(frozen=True)
class GoldDoc:
    """One document of a gold file, before the instructions are applied."""

    id: str
    note: str
    gold: Gold
    fields: dict[str, str]
    """Values an instruction template may use (``{question}``)."""


@dataclass
class Problems:
    """Problems found while reading one file, raised together (the first few quoted, all counted)."""

    where: str
    mismatches: list[str]

    def raise_if_any(self) -> None:
        if self.mismatches:
            shown = "; ".join(self.mismatches[:SHOWN])
            more = f" (and {len(self.mismatches) - SHOWN} more)" if len(self.mismatches) > SHOWN else ""
            raise UsageError(
                f"{self.where}: {len(self.mismatches)} mention(s) whose offsets do not match their text: "
                f"{shown}{more}; is it the right file, in its original encoding?"
            )


def checked_mention(
    note: str, text: str, fragments: list[Span], type_: str, where: str, problems: Problems
) -> GoldMention | None:
    """A mention whose text matches the note at its offsets (surrounding whitespace forgiven), else None with
    the mismatch recorded."""
    bad = [f"{s}-{e}" for s, e in fragments if not 0 <= s < e <= len(note)]
    if bad:
        problems.mismatches.append(f"{where}: offsets {', '.join(bad)} outside the note's {len(note)} characters")
        return None
    if len(fragments) == 1:
        s, e = fragments[0]
        got = note[s:e]
        if got.strip() != text.strip() or not got.strip():
            problems.mismatches.append(f"{where}: {text!r} annotated at {s}-{e}, where the note has {got!r}")
            return None
        s += len(got) - len(got.lstrip())
        e -= len(got) - len(got.rstrip())
        return GoldMention(note[s:e], s, e, type_)
    pieces = [note[s:e] for s, e in fragments]
    if text.strip() not in (
        " ".join(p.strip() for p in pieces),
        "".join(pieces).strip(),
        note[fragments[0][0] : fragments[-1][1]].strip(),
    ):
        shown = " ... ".join(pieces)
        problems.mismatches.append(f"{where}: {text!r} annotated at {fragments}, where the note has {shown!r}")
        return None
    return GoldMention(" ".join(p.strip() for p in pieces), fragments[0][0], fragments[-1][1], type_, tuple(fragments))


def unique_mentions(mentions: list[GoldMention]) -> tuple[GoldMention, ...]:
    """In note order, a mention annotated twice (same span, fragments and type) once."""
    seen: dict[tuple[int, int, tuple[Span, ...], str], GoldMention] = {}
    for m in mentions:
        seen.setdefault((m.start, m.end, m.fragments, m.type), m)
    return tuple(sorted(seen.values(), key=lambda m: (m.start, m.end)))


# ---- PubTator ----------------------------------------------------------------------------------------------


@dataclass
class _PubTatorDoc:
    pmid: str
    line: int
    title: str
    abstract: str = ""
    raw: list[tuple[int, list[str]]] | None = None


def _pubtator_docs(text: str, name: str, notes: list[str]) -> list[_PubTatorDoc]:
    docs: list[_PubTatorDoc] = []
    cur: _PubTatorDoc | None = None
    skipped_relations = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
            if head[1] == "t":
                cur = _PubTatorDoc(head[0].strip(), n, head[2], raw=[])
                docs.append(cur)
            elif cur is None or cur.pmid != head[0].strip():
                raise UsageError(f"{name}:{n}: abstract of {head[0].strip()} without its title line just before")
            else:
                cur.abstract = head[2]
            continue
        cols = line.split("\t")
        if len(cols) == 4 and not cols[1].strip().isdigit():
            skipped_relations += 1
            continue
        if len(cols) < 5:
            raise UsageError(
                f"{name}:{n}: not a PubTator line (expected PMID|t|title, PMID|a|abstract or "
                "PMID<TAB>start<TAB>end<TAB>text<TAB>type)"
            )
        if cur is None or cols[0].strip() != cur.pmid:
            raise UsageError(
                f"{name}:{n}: a mention of {cols[0].strip()} outside its document "
                f"(after {cur.pmid if cur else 'no title line'})"
            )
        assert cur.raw is not None
        cur.raw.append((n, cols))
    if skipped_relations:
        notes.append(f"{name}: {skipped_relations} relation line(s) between concept ids skipped (not scored as text)")
    return docs


def read_pubtator(text: str, name: str, notes: list[str]) -> list[GoldDoc]:
    """Every document of a PubTator file (see the module docstring)."""
    problems = Problems(name, [])
    out: dict[str, tuple[GoldDoc, _PubTatorDoc]] = {}
    for d in _pubtator_docs(text, name, notes):
        note = f"{d.title} {d.abstract}" if d.abstract else d.title
        mentions = []
        for n, cols in d.raw or []:
            try:
                s, e = int(cols[1]), int(cols[2])
            except ValueError:
                raise UsageError(
                    f"{name}:{n}: start and end must be whole numbers, not {cols[1]!r} and {cols[2]!r}"
                ) from None
            m = checked_mention(note, cols[3], [(s, e)], cols[4].strip(), f"line {n}", problems)
            if m:
                mentions.append(m)
        doc = GoldDoc(
            d.pmid,
            note,
            Gold(mentions=unique_mentions(mentions)),
            {"id": d.pmid, "title": d.title, "abstract": d.abstract},
        )
        if d.pmid in out:
            first, first_raw = out[d.pmid]
            if first != doc:
                raise UsageError(
                    f"{name}:{d.line}: PMID {d.pmid} again (first at line {first_raw.line}) with other text or mentions"
                )
            notes.append(f"{name}:{d.line}: PMID {d.pmid} repeated as at line {first_raw.line}; kept once")
            continue
        out[d.pmid] = (doc, d)
    problems.raise_if_any()
    return [doc for doc, _ in out.values()]


# ---- BioC JSON ---------------------------------------------------------------------------------------------


def _passages_note(doc: dict[str, Any], where: str) -> str:
    note = ""
    for p in doc.get("passages") or []:
        if not isinstance(p, dict) or not isinstance(p.get("text", ""), str):
            raise UsageError(f"{where}: a passage must be an object with a text")
        offset = p.get("offset", len(note))
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < len(note):
            raise UsageError(f"{where}: passage offset {offset!r} overlaps the passage before it (ends at {len(note)})")
        if offset > len(note):  # a gap: spaces, the last one a line break between passages
            gap = offset - len(note)
            note += " " * (gap - 1) + "\n" if note else " " * gap
        note += p.get("text") or ""
    return note


def _locations(a: dict[str, Any], where: str) -> list[Span]:
    locs = a.get("locations")
    locs = [locs] if isinstance(locs, dict) else locs
    if not isinstance(locs, list) or not locs:
        raise UsageError(f"{where}: no locations")
    out = []
    for loc in locs:
        off, length = (loc.get("offset"), loc.get("length")) if isinstance(loc, dict) else (None, None)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (off, length)):
            raise UsageError(f"{where}: a location needs whole-number offset and length, not {loc!r}")
        out.append((off, off + length))
    return sorted(out)


def _bioc_relations(rels: list[Any], texts: dict[str, str], counts: dict[str, int]) -> list[tuple[str, str, str]]:
    out = []
    for r in rels:
        nodes = r.get("nodes") if isinstance(r, dict) else None
        if not isinstance(nodes, list) or len(nodes) != 2 or not all(isinstance(n, dict) for n in nodes):
            counts["skipped"] += 1
            continue
        if [str(n.get("role", "")).lower() for n in nodes] == ["dependent", "governor"]:
            nodes = nodes[::-1]
        infons = r.get("infons") if isinstance(r.get("infons"), dict) else {}
        kind = str(infons.get("type") or infons.get("relation type") or "")
        args = [texts.get(str(n.get("refid")), "") for n in nodes]
        out.append((args[0], kind, args[1]))
    return out


def _bioc_doc(doc: Any, i: int, name: str, problems: Problems, counts: dict[str, int]) -> GoldDoc:
    if not isinstance(doc, dict):
        raise UsageError(f"{name}: document {i + 1} is not an object")
    doc_id = str(doc.get("id") or f"document {i + 1}")
    where = f"{name}, document {doc_id}"
    note = _passages_note(doc, where)
    mentions, texts, rels = [], {}, list(doc.get("relations") or [])
    for p in doc.get("passages") or []:
        rels += p.get("relations") or []
        for a in p.get("annotations") or []:
            if not isinstance(a, dict) or not isinstance(a.get("text", ""), str):
                raise UsageError(f"{where}: an annotation must be an object with a text")
            aid = str(a.get("id", ""))
            infons = a.get("infons") if isinstance(a.get("infons"), dict) else {}
            kind = str(infons.get("entityType") or infons.get("type") or "")
            m = checked_mention(
                note,
                a.get("text") or "",
                _locations(a, f"{where}, annotation {aid}"),
                kind,
                f"document {doc_id}, annotation {aid}",
                problems,
            )
            if m:
                mentions.append(m)
                texts[aid] = m.text
    relations = _bioc_relations(rels, texts, counts)
    return GoldDoc(doc_id, note, Gold(mentions=unique_mentions(mentions), relations=tuple(relations)), {"id": doc_id})


def read_bioc(text: str, name: str, notes: list[str]) -> list[GoldDoc]:
    """Every document of a BioC JSON collection (see the module docstring)."""
    try:
        data = safejson.loads(text)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None
    docs = data.get("documents") if isinstance(data, dict) else None
    if not isinstance(docs, list):
        raise UsageError(f"{name}: not a BioC JSON collection (expected an object with a list of documents)")
    problems = Problems(name, [])
    counts = {"skipped": 0}
    out = [_bioc_doc(d, i, name, problems, counts) for i, d in enumerate(docs)]
    problems.raise_if_any()
    seen: dict[str, int] = {}
    for i, d in enumerate(out):
        if d.id in seen:
            raise UsageError(f"{name}: document id {d.id!r} twice (documents {seen[d.id] + 1} and {i + 1})")
        seen[d.id] = i
    if counts["skipped"]:
        notes.append(f"{name}: {counts['skipped']} relation(s) without exactly two arguments skipped")
    return out
