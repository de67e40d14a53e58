"""Notes as History lists them: the notes that have runs, and the name a user gives one (revision 0008)."""

from __future__ import annotations

from sqlalchemy import select, update

from app.core.errors import UsageError
from app.store.base import LogBase
from app.store.models import Note
from app.store.queries import NoteView, notes_select

LABEL_MAX = 200
"""Characters a note's name may have (the column's size)."""


class NotesMixin(LogBase):
    def notes(self) -> list[NoteView]:
        """Notes with runs, most recently used first (names and first lines, never whole texts)."""
        with self.read_session() as s:
            return [NoteView(**dict(r._mapping)) for r in s.execute(notes_select())]

    def name_note(self, sha256: str, label: str | None) -> None:
        """Give the note with this sha256 a name (blank or None removes it); every run of it shows the name."""
        name = " ".join((label or "").split()) or None  # one line: it names a row in a list
        if name is not None and len(name) > LABEL_MAX:
            raise UsageError(f"a note's name has at most {LABEL_MAX} characters, not {len(name)}")
        with self.write_session() as s:
            if s.scalar(select(Note.id).where(Note.sha256 == sha256)) is None:
                raise UsageError(f"no note with sha256 {sha256[:12]}… in this log")
            s.execute(update(Note).where(Note.sha256 == sha256).values(label=name))


__all__ = ["LABEL_MAX", "NotesMixin"]
