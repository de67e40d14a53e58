"""A grounding report in lines of plain text: ``asclepius ground``, ``ask``, ``log show`` and the footer of
an answer copied from the desktop app all print it this way."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.grounding.report import Claim, ClaimStatus, GroundingReport

STATUS_LABEL = {
    ClaimStatus.SUPPORTED: "supported",
    ClaimStatus.PARTLY: "partly supported",
    ClaimStatus.NOT_FOUND: "not found",
    ClaimStatus.UNCHECKED: "not checked",
}


def _spans(spans: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}-{b}" for a, b in spans)


def claim_lines(c: Claim, parts: bool = True) -> list[str]:
    """One claim: status, text, offsets and reason; with ``parts``, each part on its own line."""
    where = f"answer {c.answer_start}-{c.answer_end}" + (f", note {_spans([c.note_unit])}" if c.note_unit else "")
    head = f"[{STATUS_LABEL[c.status]}] {c.text} ({where})" + (f": {c.reason}" if c.reason else "")
    out = [head]
    for p in c.parts if parts else ():
        state = "found" if p.found else "missing"
        if not p.found and p.belongs_to:
            state += f" (with {p.belongs_to} in the note)"
        at = f"; note {_spans(p.note_spans)}" if p.note_spans else ""
        out.append(f"    {p.role}: {p.text} - {state} (answer {p.answer_start}-{p.answer_end}{at})")
    return out


def report_lines(report: GroundingReport, flagged_only: bool = False) -> list[str]:
    """The report in lines of plain text: claims (flagged only: partly and not found, parts left out),
    items, possible omissions and what was not done. The summary line is ``report.headline()``."""
    out: list[str] = []
    for c in report.claims:
        if not flagged_only:
            out += claim_lines(c)
        elif c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND):
            out += claim_lines(c, parts=False)
    for i in report.items if not flagged_only else report.unaligned:
        sense = f", {i.sense} sense of {i.abbreviation}" if i.sense else ""
        where = f"note {_spans(i.note_spans)}" if i.note_spans else "not in the note"
        out.append(f"[item, {i.match}{sense}] {i.text} (answer {i.answer_start}-{i.answer_end}; {where})")
    for o in report.omissions:
        out.append(f"[possible omission] {o.text} (a {o.kind} in the note at {o.note_start}-{o.note_end})")
    out += [f"[note] {n}" for n in report.notes]
    return out
