"""What the grounding checker reports: claims with their parts, extraction items aligned to the note, and
possible omissions; offsets in both texts. Plain data (stdlib only), stored with each run as JSON.

* A **claim** is one list item or one sentence of the answer, checked as a unit. Its ``status`` is
  ``supported`` (every part occurs together in one sentence or list line of the note), ``partly`` (some part
  is missing there or belongs to something else; ``reason`` says which), ``not_found`` (its anchor, the
  drug, the test or the event, is not in the note at all) or ``unchecked`` (nothing checkable, or a kind of
  statement the checker does not judge: a negation, reasoning; ``reason`` says which).
* An **item** is one entry of an extraction task's answer (NER, abbreviations, relations, temporal,
  coreference) with where it occurs in the note (``match``: exact, normalized, fuzzy or none).
* An **omission** is something the note names that the answer leaves out, reported only when the
  instruction asks for all of them (e.g. every medication).

Offsets: ``answer_start``/``answer_end`` index the answer; note spans index the validated note the model
saw (the service's ``ground`` documents which text that is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

SCHEMA = 2
"""Version of the stored form (``GroundingReport.summary``). Version 1 (before claims) stored
``{"checked", "supported", "unsupported"}``; ``describe_summary`` still reads it."""


class ClaimStatus(StrEnum):
    SUPPORTED = "supported"
    PARTLY = "partly"
    NOT_FOUND = "not_found"
    UNCHECKED = "unchecked"


Span = tuple[int, int]


@dataclass(frozen=True)
class ClaimPart:
    role: str
    """``drug``, ``dose``, ``route``, ``frequency``, ``test``, ``value``, ``date``, ``event``, ``number``,
    ``term`` or ``quote``."""
    text: str
    answer_start: int
    answer_end: int
    found: bool
    """Occurs in the note unit that supports the claim (together with the claim's other parts)."""
    note_spans: tuple[Span, ...] = ()
    """Where it occurs in the note: inside the supporting unit when ``found``, elsewhere when not."""
    belongs_to: str = ""
    """When not found with the claim but present elsewhere: what it appears with there ("metformin")."""


@dataclass(frozen=True)
class Claim:
    kind: str
    """``medication``, ``lab``, ``date`` or ``fact`` (any other sentence with something checkable)."""
    text: str
    answer_start: int
    answer_end: int
    status: ClaimStatus
    parts: tuple[ClaimPart, ...] = ()
    note_unit: Span | None = None
    """The sentence or list line of the note that supports the claim best (None when none does)."""
    reason: str = ""
    """Why it is partly supported, not found or unchecked, in words."""


@dataclass(frozen=True)
class ItemSpan:
    """One item of an extraction task's answer aligned to its mentions in the note."""

    text: str
    answer_start: int
    answer_end: int
    match: str
    """``exact``, ``normalized`` (case/spacing-insensitive), ``fuzzy`` or ``none`` (no mention: flagged)."""
    score: float = 1.0
    """Similarity of the best mention (1.0 for exact and normalized matches, 0 for none)."""
    note_spans: tuple[Span, ...] = ()
    abbreviation: str = ""
    expansion: str = ""
    sense: str = ""
    """For an abbreviation expansion: ``known`` (among the inventory's senses), ``unusual`` (the abbreviation
    is listed, this expansion is not) or ``""`` (not listed, or no inventory configured)."""
    role: str = ""
    """What the part is in its item: ``entity`` (NER), ``abbreviation``, ``arg1``/``arg2`` (a relation),
    ``time``/``event`` (temporal), ``mention`` (a coreference chain); "" in reports made before roles."""
    group: int = 0
    """The answer item it belongs to (1-based; 0: unknown): a relation's two arguments, a temporal item's
    time and event, a chain's mentions share one."""
    label: str = ""
    """The category the answer gave the item ("Problem", "Medications") or a relation's name ("treats")."""


@dataclass(frozen=True)
class Omission:
    text: str
    note_start: int
    note_end: int
    kind: str = "medication"


@dataclass(frozen=True)
class GroundingReport:
    claims: tuple[Claim, ...] = ()
    items: tuple[ItemSpan, ...] = ()
    omissions: tuple[Omission, ...] = ()
    notes: tuple[str, ...] = ()
    """What the checker could not do for this answer, in words (e.g. "no abbreviation sense inventory is
    configured: expansions were aligned, not checked against known senses")."""

    def by_status(self, status: ClaimStatus) -> list[Claim]:
        return [c for c in self.claims if c.status == status]

    @property
    def checked(self) -> list[Claim]:
        return [c for c in self.claims if c.status != ClaimStatus.UNCHECKED]

    @property
    def unaligned(self) -> list[ItemSpan]:
        return [i for i in self.items if i.match == "none"]

    @property
    def clean(self) -> bool:
        """Nothing to warn about: every checked claim supported, every item aligned, no omission."""
        return not (
            self.by_status(ClaimStatus.PARTLY)
            or self.by_status(ClaimStatus.NOT_FOUND)
            or self.unaligned
            or self.omissions
        )

    def counts(self) -> dict[str, int]:
        return {
            "claims": len(self.claims),
            "supported": len(self.by_status(ClaimStatus.SUPPORTED)),
            "partly": len(self.by_status(ClaimStatus.PARTLY)),
            "not_found": len(self.by_status(ClaimStatus.NOT_FOUND)),
            "unchecked": len(self.by_status(ClaimStatus.UNCHECKED)),
            "items": len(self.items),
            "items_found": len(self.items) - len(self.unaligned),
            "unusual_senses": sum(1 for i in self.items if i.sense == "unusual"),
            "omissions": len(self.omissions),
        }

    def headline(self) -> str:
        return describe_summary(self.summary())

    def summary(self) -> dict[str, Any]:
        """The stored form (``runs.grounding``): counts, the flagged texts, and every claim and item with
        its status and offsets (``to_dict``)."""
        return {
            "schema": SCHEMA,
            **self.counts(),
            "flagged": [_flag_text(c) for c in self.claims if c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND)]
            + [f"{i.text} (not in the note)" for i in self.unaligned],
            "omitted": [o.text for o in self.omissions],
            **self.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": {
                "claims": [asdict(c) for c in self.claims],
                "items": [asdict(i) for i in self.items],
                "omissions": [asdict(o) for o in self.omissions],
                "notes": list(self.notes),
            }
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundingReport:
        """Read ``to_dict``/``summary`` output back (an older stored form gives an empty report)."""
        rep = (data or {}).get("report") or {}

        def spans(v: Any) -> tuple[Span, ...]:
            return tuple((int(a), int(b)) for a, b in v or ())

        claims = tuple(
            Claim(
                **{
                    **c,
                    "status": ClaimStatus(c["status"]),
                    "parts": tuple(ClaimPart(**{**p, "note_spans": spans(p.get("note_spans"))}) for p in c["parts"]),
                    "note_unit": tuple(c["note_unit"]) if c.get("note_unit") else None,
                }
            )
            for c in rep.get("claims", ())
        )
        items = tuple(ItemSpan(**{**i, "note_spans": spans(i.get("note_spans"))}) for i in rep.get("items", ()))
        omissions = tuple(Omission(**o) for o in rep.get("omissions", ()))
        return cls(claims, items, omissions, tuple(rep.get("notes", ())))


def _flag_text(c: Claim) -> str:
    return f"{c.text} ({c.reason})" if c.reason else c.text


def _count(n: int, noun: str) -> str:
    """``1 item``, ``2 items``: the summary reads as a sentence, not "1 checked claims"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe_summary(s: dict[str, Any] | None) -> str:
    """The one-line grounding summary for a stored summary (app, ``ask``, batch, History, exports).

    Never says that everything was found when a claim was only partly supported, and always says how
    many claims were not checked. Reads the pre-claims form (schema 1) as what it was: a token count.
    """
    if not s:
        return "not checked"
    if s.get("schema") != SCHEMA:  # schema 1: {"checked", "supported", "unsupported"}
        return f"{s.get('supported', 0)} of {s.get('checked', 0)} facts found (word-level check, older run)"
    bits: list[str] = []
    n = s["claims"] - s["unchecked"]
    if n:
        if s["supported"] == n:
            bits.append(
                "the one checked claim supported by the note"
                if n == 1
                else f"all {n} checked claims supported by the note"
            )
        else:
            part = [f"{s['supported']} of {_count(n, 'checked claim')} supported"]
            if s["partly"]:
                part.append(f"{s['partly']} partly supported")
            if s["not_found"]:
                part.append(f"{s['not_found']} not found")
            bits.append(", ".join(part))
    elif s["claims"]:
        bits.append("no claim could be checked")
    else:
        bits.append("nothing to check")
    if s["unchecked"]:
        bits.append(f"{s['unchecked']} not checked")
    if s["items"]:
        missing = s["items"] - s["items_found"]
        if missing:
            bits.append(f"{s['items_found']} of {_count(s['items'], 'item')} found in the note, {missing} not")
        else:
            bits.append(
                "the one item found in the note" if s["items"] == 1 else f"all {s['items']} items found in the note"
            )
    if s["unusual_senses"]:
        bits.append(_count(s["unusual_senses"], "unusual abbreviation sense"))
    if s["omissions"]:
        bits.append(_count(s["omissions"], "possible omission"))
    return "; ".join(bits)
