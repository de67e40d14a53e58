"""Held-out clinical notes for tokenizer parity and perplexity (CSV files from ``shared/data/notes``)."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path

NOTE_COLUMNS = ("note", "section_text")
"""aci_bench CSVs keep the note in ``note``; mts_dialog CSVs keep it in ``section_text``."""

NOTES_DIR_ENV = "ASCLEPIUS_NOTES_DIR"


def default_notes_dir() -> Path:
    """``$ASCLEPIUS_NOTES_DIR``, else ``shared/data/notes`` beside the repository checkout."""
    env = os.environ.get(NOTES_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "notes"


def iter_notes(path: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(source, text)`` for every note in a CSV file, a plain-text file, or a folder of CSVs."""
    if path.is_dir():
        for child in sorted(path.glob("*.csv")):
            yield from iter_notes(child)
        return
    if path.suffix.lower() != ".csv":
        yield str(path), path.read_text(encoding="utf-8")
        return
    # Notes (and the dialogues in the same rows) are longer than csv's default 128 KiB field cap.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        column = next((c for c in NOTE_COLUMNS if c in (reader.fieldnames or ())), None)
        if column is None:
            raise ValueError(f"{path}: no note column (looked for {', '.join(NOTE_COLUMNS)})")
        for i, row in enumerate(reader):
            text = row[column]
            if text and text.strip():
                yield f"{path.name}:{i}", text


def load_notes(path: Path | None = None, limit: int | None = None) -> list[tuple[str, str]]:
    notes = []
    for item in iter_notes(path or default_notes_dir()):
        notes.append(item)
        if limit is not None and len(notes) >= limit:
            break
    return notes
