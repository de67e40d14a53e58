"""Reading case reports: a CSV or JSON Lines file with a text column, or a folder of ``.txt`` files.

Every problem is found before any request is sent: a missing file or column, an empty input, a file that
is not UTF-8 or is binary. Rows with an empty text cell are reported by line and left out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from app.core.errors import UsageError
from app.core.records import read_records

MAX_INPUT_BYTES = 4 * 1024**3
"""PMC-Patients (167k case reports) is about 0.5 GB; far larger is a wrong file."""


@dataclass(frozen=True)
class CaseReport:
    source_id: str
    """The row's id column if given, else ``line N`` / the file name."""
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass
class CaseReports:
    reports: list[CaseReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Rows left out, with why (line number and reason; never the text)."""
    source_sha256: str = ""
    source_name: str = ""


def file_sha256(path: Path) -> str:
    from app.core.hashing import sha256_file  # the app's one streaming file hash

    return sha256_file(path)


def _folder(path: Path) -> CaseReports:
    out = CaseReports(source_name=path.name)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not files:
        raise UsageError(f"{path}: no .txt case reports in this folder")
    h = hashlib.sha256()
    for p in files:
        data = p.read_bytes()
        h.update(p.name.encode() + b"\0" + hashlib.sha256(data).digest())
        if b"\x00" in data[:65536]:
            raise UsageError(f"{p.name}: a binary file, not a text case report")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise UsageError(f"{p.name}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})") from None
        if text.strip():
            out.reports.append(CaseReport(p.name, text.strip()))
        else:
            out.problems.append(f"{p.name}: empty")
    out.source_sha256 = h.hexdigest()
    return out


def read_case_reports(path: Path, text_column: str = "patient", id_column: str | None = None) -> CaseReports:
    """All case reports in ``path``; UsageError (before any request) when the input cannot be used."""
    if path.is_dir():
        out = _folder(path)
    else:
        names, rows = read_records(path, max_bytes=MAX_INPUT_BYTES, what="case-report file")
        if not rows:
            raise UsageError(f"{path.name}: no rows (an empty file)")
        if text_column not in names:
            raise UsageError(
                f"{path.name}: no column {text_column!r} (have: {', '.join(names) or 'none'}); "
                "name the text column with --text-column"
            )
        if id_column is not None and id_column not in names:
            raise UsageError(f"{path.name}: no id column {id_column!r} (have: {', '.join(names)})")
        out = CaseReports(source_name=path.name, source_sha256=file_sha256(path))
        for line, rec in rows:
            if isinstance(rec, str):
                out.problems.append(f"line {line}: {rec}")
                continue
            text = rec.get(text_column)
            if not isinstance(text, str):
                out.problems.append(f"line {line}: {text_column} is {'missing' if text is None else 'not text'}")
                continue
            if not text.strip():
                out.problems.append(f"line {line}: {text_column} is empty")
                continue
            sid = str(rec.get(id_column)) if id_column else f"line {line}"
            out.reports.append(CaseReport(sid, text.strip()))
    if not out.reports:
        raise UsageError(f"{path.name}: no usable case reports ({len(out.problems)} rows left out)")
    return out
