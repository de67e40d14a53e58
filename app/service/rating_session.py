"""What the Study screen rates: an opened packet (a rater's own workstation) or a study in the log itself.

The screen (``app/qt/study_tab.py``) shows one item at a time and saves each rating before it moves on; it
does not know where items come from or where ratings go. Two sources, one interface:

- ``PacketSession``: a packet opened with its passphrase; ratings go to the rater's own log
  (``EvalLog.save_packet_response``) and leave as a sealed responses file (``export``).
- ``LogStudySession``: the shared-workstation path; the rater chose themself from the study's rater list, items
  come from ``EvalLog.packet_items`` and ratings go straight to ``EvalLog.rate_study_answer``, where the
  study's rules (a rater of the study, an answer assigned to them, a score of 1-4) are checked.

Neither ever holds another rater's scores or an answer's arm: a packet has none, and the log session keeps
only this rater's own ratings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from app.core.packets import Packet, PacketItem, ResponseRow, Responses, utc_now, write_responses
from app.store import EvalLog
from resources import RUBRIC


class RatingSession(Protocol):
    title: str
    """What the screen names as the work in hand: the study (never an arm)."""
    rater: str
    rubric: list[dict[str, Any]]
    items: tuple[PacketItem, ...]
    can_export: bool
    """True when ratings leave as a responses file (the packet path)."""

    def saved(self) -> dict[str, ResponseRow]:
        """This rater's saved ratings by answer uid (read once when the session opens, for resume)."""
        ...

    def save(self, row: ResponseRow) -> None:
        """Save one rating, whole or not at all; raises a UsageError/StoreError with the reason."""
        ...

    def export(self, path: str | Path) -> int:
        """Write the sealed responses file; the number of ratings in it."""
        ...


@dataclass
class PacketSession:
    log: EvalLog
    packet: Packet
    passphrase: str
    """Held in memory for the export only (the responses file is sealed with the packet's passphrase); never
    written anywhere, never shown."""

    def __post_init__(self) -> None:
        self.title = self.packet.study_name
        self.rater = self.packet.rater
        self.rubric = self.packet.rubric
        self.items = self.packet.items
        self.can_export = True

    def __repr__(self) -> str:  # the dataclass repr would print the passphrase into a traceback or a log
        return f"PacketSession(study={self.packet.study_name!r}, rater={self.rater!r})"

    def saved(self) -> dict[str, ResponseRow]:
        mine = {it.answer_uid for it in self.items}
        rows = self.log.packet_responses(self.packet.study_uuid, self.rater)
        return {r.answer_uid: r for r in rows if r.answer_uid in mine}

    def save(self, row: ResponseRow) -> None:
        self.log.save_packet_response(self.packet.study_uuid, self.rater, row)

    def responses(self) -> Responses:
        saved = self.saved()
        rows = tuple(saved[it.answer_uid] for it in self.items if it.answer_uid in saved)
        return Responses(self.packet.study_uuid, self.rater, utc_now(), rows)

    def export(self, path: str | Path) -> int:
        responses = self.responses()
        write_responses(path, responses, self.passphrase)
        return len(responses.rows)


@dataclass
class LogStudySession:
    log: EvalLog
    study: str
    """The study's name or uuid."""
    rater: str

    def __post_init__(self) -> None:
        # Each call refuses what the study refuses (an unknown study, a rater not in it) before the screen opens.
        info = self.log.study(self.study)  # type: ignore[attr-defined]
        self.title = info.name
        self.items = tuple(self.log.packet_items(self.study, self.rater))  # type: ignore[attr-defined]
        self.rubric = [asdict(lv) for lv in RUBRIC]
        self.can_export = False

    def saved(self) -> dict[str, ResponseRow]:
        data = self.log.study_data(self.study)  # type: ignore[attr-defined]
        mine = {it.answer_uid for it in self.items}
        # StudyData carries no comment or time: a resumed item shows its score and flag only.
        return {
            r.answer: ResponseRow(r.answer, r.score, r.hallucination, None, None, utc_now())
            for r in data.ratings
            if r.rater == self.rater and r.answer in mine
        }

    def save(self, row: ResponseRow) -> None:
        self.log.rate_study_answer(  # type: ignore[attr-defined]
            self.study,
            self.rater,
            row.answer_uid,
            row.score,
            hallucination=row.hallucination,
            comment=row.comment,
            corrected_answer=row.corrected_answer,
            rated_at=row.rated_at,
        )

    def export(self, path: str | Path) -> int:
        raise NotImplementedError("ratings made on the log need no responses file")


def first_unrated(items: tuple[PacketItem, ...], saved: dict[str, ResponseRow]) -> int:
    """Where a rater resumes: the first item in their order without a rating (the last item when all are)."""
    for i, it in enumerate(items):
        if it.answer_uid not in saved:
            return i
    return max(len(items) - 1, 0)
