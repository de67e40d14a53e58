"""Reading CSV or JSON Lines input files (batch items, ratings from a spreadsheet) with line numbers.

One reader for every tabular input, so each gets the same clear refusals: missing, a directory, too big,
binary, not UTF-8, an unknown extension. Row-level problems (bad JSON, not an object) are returned as text
beside their line number so the caller can report them and keep the good rows.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from app.core import safejson
from app.core.errors import UsageError
from app.core.infile import open_regular
from app.core.privatefile import os_problem

Row = tuple[int, dict[str, Any] | str]
"""(line number as an editor shows it, the record or a problem)."""

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def check_file(path: Path, max_bytes: int, what: str) -> None:
    """Refuse the whole file up front (missing, a directory, not a regular file, unreadable, too big, binary,
    not UTF-8).

    UTF-8 is checked in one streamed pass (an incremental decoder, 1 MiB at a time) so a bad byte is
    reported with its offset before any row is used, without holding the file in memory.
    """
    try:
        with open_regular(path, what, UsageError) as fh:  # refuses missing, a directory, a FIFO, a device
            if os.fstat(fh.fileno()).st_size > max_bytes:
                raise UsageError(f"{path.name}: over {max_bytes // 2**20:,} MB; that is too large for a {what}")
            head = fh.read(65536)
            if b"\x00" in head:
                raise UsageError(f"{path.name}: a binary file, not a CSV or JSON Lines {what}")
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            offset, block = 0, head
            while True:
                try:
                    decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    at = offset + exc.start - len(decoder.getstate()[0]) if exc.start >= 0 else offset
                    bad = block[exc.start] if 0 <= exc.start < len(block) else 0
                    raise UsageError(
                        f"{path.name}: not valid UTF-8 (byte 0x{bad:02x} at offset {max(at, 0)}); "
                        "save it as UTF-8 CSV and try again"
                    ) from None
                if not block:
                    break
                offset += len(block)
                block = fh.read(1 << 20)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {os_problem(exc)}") from None


def check_records_file(path: Path, *, max_bytes: int, what: str) -> None:
    """Every refusal of the whole file (an extension that is not CSV or JSON Lines, then ``check_file``), for a
    command that checks its input before it opens anything else (the log)."""
    if path.suffix.lower() not in CSV_SUFFIXES + JSONL_SUFFIXES:
        raise UsageError(f"{path.name}: a {what} must be .csv or .jsonl")
    check_file(path, max_bytes, what)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as fh:
        for i, raw in enumerate(fh, start=1):
            line = raw.decode("utf-8")
            if i == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            yield (i, parse_json_line(line))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
"""A ``\\uD800``-``\\uDFFF`` escape: only a line holding one can decode to a lone surrogate (raw UTF-8 cannot)."""


def parse_json_line(line: str) -> dict[str, Any] | str:
    """One JSON Lines row as an object, or what is wrong with it as text: never raises, whatever the line.

    ``json.loads`` raises more than ``JSONDecodeError``: ``ValueError`` for an integer over Python's 4,300-digit
    limit and ``RecursionError`` for deep nesting; and a lone surrogate escape (``"\\ud800"``) decodes, then
    fails wherever the text is encoded (the log, an output file, a request). Each is one bad row, reported with
    its line while the rest go on; one escaped exception would end the whole reader (issue 21).
    """
    try:
        rec = safejson.loads(line)
    except ValueError as e:
        return str(e)
    if not isinstance(rec, dict):
        return "not a JSON object"
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(rec):
        return "a \\u escape that is no character (a lone UTF-16 surrogate such as \\ud800)"
    return rec


def _has_lone_surrogate(value: Any) -> bool:
    # An explicit stack, not recursion: the record may be nested as deep as json.loads allowed.
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _csv_rows(reader: Any) -> Iterator[Row]:
    # line_num counts physical lines, so a quoted cell spanning lines still reports the row's first line.
    start = 2
    for rec in reader:
        if None in rec:
            yield (start, f"more cells than the {len(reader.fieldnames)} columns of the header")
        else:
            yield (start, rec)
        start = reader.line_num + 1


def iter_records(path: Path, *, max_bytes: int, what: str) -> tuple[list[str], Iterator[Row]]:
    """Column names (the CSV header; empty for JSON Lines) and the rows, streamed: memory stays flat."""
    check_records_file(path, max_bytes=max_bytes, what=what)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return [], _jsonl_rows(path)
    # A huge cell must become a row error, not abort the reader at Python's default 128 KB field limit.
    # The limit is process-wide: raise it, never lower it under another reader (the file size is checked above).
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))
    fh = path.open(encoding="utf-8-sig", newline="")
    reader = csv.DictReader(fh)
    try:
        names = reader.fieldnames
    except csv.Error as exc:
        fh.close()
        raise UsageError(f"{path.name}: the header line is not valid CSV ({exc})") from None
    if not names:
        fh.close()
        raise UsageError(f"{path.name}: empty file (expected a header line)")

    def rows() -> Iterator[Row]:
        with fh:
            try:
                yield from _csv_rows(reader)
            except csv.Error as exc:
                yield (reader.line_num, f"not valid CSV ({exc}); the rest of the file was not read")

    return list(names), rows()


def read_records(path: Path, *, max_bytes: int, what: str) -> tuple[list[str], list[Row]]:
    """Column names (CSV header, or every key seen in JSON Lines) and the rows, as lists."""
    names, rows = iter_records(path, max_bytes=max_bytes, what=what)
    listed = list(rows)
    if not names:
        seen: dict[str, None] = {}
        for _, rec in listed:
            if isinstance(rec, dict):
                seen.update(dict.fromkeys(rec))
        names = list(seen)
    return names, listed


def type_problems(rec: dict[str, Any], text_fields: Iterable[str], *, numbers_ok: Iterable[str] = ()) -> list[str]:
    """One problem per field whose JSON type is wrong: text must be a string (a whole number where allowed).

    JSON ``true`` must not become the note "True", nor an object the text "{'n': 'x'}" (issue 9, item 11).
    """
    allowed_numbers = set(numbers_ok)
    problems = []
    for k in text_fields:
        v = rec.get(k)
        if v is None or isinstance(v, str):
            continue
        if k in allowed_numbers and isinstance(v, int) and not isinstance(v, bool):
            continue
        kind = "a whole number or text" if k in allowed_numbers else "text"
        problems.append(f"{k} must be {kind}, not {_json_kind(v)}")
    return problems


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "a list"
    return type(v).__name__
