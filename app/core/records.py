"""Reading CSV or JSON Lines input files (batch items, ratings from a spreadsheet) with line numbers.

One reader for every tabular input, so each gets the same clear refusals: missing, a directory, too big,
binary, not UTF-8, an unknown extension. Row-level problems (bad JSON, not an object) are returned as text
beside their line number so the caller can report them and keep the good rows.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from app.core.errors import UsageError

Row = tuple[int, dict[str, Any] | str]
"""(line number as an editor shows it, the record or a problem)."""

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _text(path: Path, max_bytes: int, what: str) -> str:
    if not path.exists():
        raise UsageError(f"{what} not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a directory, not a {what}")
    if path.stat().st_size > max_bytes:
        raise UsageError(f"{path.name}: over {max_bytes // 2**20:,} MB; that is too large for a {what}")
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise UsageError(f"{path.name}: a binary file, not a CSV or JSON Lines {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path.name}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8 CSV and try again"
        ) from None


def read_records(path: Path, *, max_bytes: int, what: str) -> tuple[list[str], list[Row]]:
    """Column names (CSV header, or every key seen in JSON Lines) and the rows."""
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise UsageError(f"{path.name}: a {what} must be .csv or .jsonl")
    text = _text(path, max_bytes, what)
    rows: list[Row] = []
    if suffix in JSONL_SUFFIXES:
        names: dict[str, None] = {}
        for i, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                rows.append((i, f"not valid JSON ({e.msg})"))
                continue
            if isinstance(rec, dict):
                names.update(dict.fromkeys(rec))
                rows.append((i, rec))
            else:
                rows.append((i, "not a JSON object"))
        return list(names), rows
    # A huge cell must become a row error, not abort the reader at Python's default 128 KB field limit.
    csv.field_size_limit(max_bytes)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise UsageError(f"{path.name}: empty file (expected a header line)")
    # line_num counts physical lines, so a quoted cell spanning lines still reports the row's first line.
    start = 2
    for rec in reader:
        rows.append((start, rec))
        start = reader.line_num + 1
    return list(reader.fieldnames), rows
