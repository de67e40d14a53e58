"""PLACEHOLDER (being written): extraction items aligned to their mentions in the note."""

from __future__ import annotations

from app.core.grounding.report import ItemSpan
from app.core.grounding.senses import SenseInventory

EXTRACTION_TASKS = frozenset({"ner", "abbrev", "relation", "temporal", "coref"})


def align_items(
    answer: str, note: str, task: str | None, senses: SenseInventory | None = None
) -> tuple[list[ItemSpan], list[str]]:
    return [], []
