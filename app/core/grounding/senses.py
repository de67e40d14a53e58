"""Abbreviation sense inventories: which expansions of an abbreviation are known.

An inventory is a folder of files (none ships with the app: ``AppConfig.abbreviation_senses`` names one, the
tests use the public ones in ``shared/data/abbreviations``). Each file is read by what it looks like:

* ``.tsv`` (or any file with tabs): columns ``abbreviation``/``sense`` by header name when the first row is a
  header (Vanderbilt: ``abbreviation, sense, variation, CUI, frequency``; the ``variation`` column's surface
  forms, ``A/P_2|a/p_4``, become keys too), else the first two columns (Stetson: ``po<TAB>by mouth<TAB>1``);
* ``.csv``: ``abr,long_form`` (or ``abbreviation,sense``) by header, else the first two columns;
* anything else: one ``ABBR long form`` per line, split at the first run of spaces (Columbia).

Rows with fewer than two fields or an empty side are skipped (counted in ``skipped``). Abbreviations are keyed
case-insensitively with punctuation removed ("A/P", "a_p", "a.p." are one key), because inventories spell them
differently and a note's casing is not meaningful for the lookup. Expansions are compared normalised: case,
punctuation and hyphens ("status-post" is "status post"), "&" as "and", "a day" as "daily", a plural word as
its singular and the small words "of, the, a, an, and, in, to, by" ignored. A trailing parenthetical of an
inventory's sense ("before (ante)") is also accepted without it.

``check`` says ``known`` (among the senses), ``unusual`` (the abbreviation is listed, this expansion is not:
not *wrong*, a rarer sense may be right) or ``""`` (not listed).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from app.core.errors import UsageError

_SMALL_WORDS = frozenset({"of", "the", "a", "an", "and", "in", "to", "by"})
_NON_ALNUM = re.compile(r"[^\w]+|_+")
_A_DAY = re.compile(r"\b(?:a|per|each) day\b")
_PAREN = re.compile(r"\s*\([^()]*\)\s*$")
_VARIATION_SUFFIX = re.compile(r"_\d+$")
_ABBR_HEADERS = ("abbreviation", "abbr", "abr")
_SENSE_HEADERS = ("sense", "long_form", "longform", "expansion", "long form")


def abbreviation_key(abbreviation: str) -> str:
    """The lookup key of an abbreviation: lower case, letters and digits only ("A/P" -> "ap")."""
    return "".join(ch for ch in abbreviation.lower() if ch.isalnum())


def _singular(word: str) -> str:
    # Plural "s" only, applied to both sides alike ("diabetes" is cut to "diabete" everywhere, which is
    # harmless for a comparison); "ies"/"es" rules would merge more words that differ, and a missed plural
    # costs an "unusual" flag, never a false "known".
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def expansion_key(expansion: str) -> str:
    """An expansion normalised for comparison (see the module docstring)."""
    text = _A_DAY.sub("daily", expansion.lower().replace("&", " and "))  # "twice a day" is "twice daily"
    words = _NON_ALNUM.sub(" ", text).split()
    return " ".join(_singular(w) for w in words if w not in _SMALL_WORDS)


@dataclass(frozen=True)
class SenseInventory:
    """Known senses per abbreviation key, merged from every file of a folder."""

    senses: dict[str, frozenset[str]] = field(default_factory=dict)
    """Abbreviation key -> normalised expansions."""
    display: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Abbreviation key -> the senses as the inventories spell them (first spelling of each), for messages."""
    files: tuple[str, ...] = ()
    """The files read, by name."""
    skipped: int = 0
    """Rows that could not be read (too few fields, an empty side)."""

    @classmethod
    def load(cls, folder: Path | str) -> SenseInventory:
        """Read every inventory file of ``folder`` (cached per folder and its files' modification times).

        Raises ``UsageError`` for a folder that is missing, unreadable or holds no inventory file."""
        path = Path(folder).expanduser()
        try:
            resolved = path.resolve()
            entries = sorted(p for p in resolved.iterdir() if p.is_file() and not p.name.startswith("."))
            stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in entries)
        except OSError as exc:
            raise UsageError(f"abbreviation sense inventory folder {str(path)!r} cannot be read: {exc}") from exc
        if not entries:
            raise UsageError(f"abbreviation sense inventory folder {str(path)!r} holds no inventory file")
        return _load_cached(str(resolved), stamp)

    def check(self, abbreviation: str, expansion: str) -> str:
        """``known``, ``unusual`` or ``""`` (the abbreviation is not listed, or the expansion is empty)."""
        known = self.senses.get(abbreviation_key(abbreviation))
        key = expansion_key(expansion)
        if not known or not key:
            return ""
        return "known" if key in known else "unusual"

    def senses_of(self, abbreviation: str) -> tuple[str, ...]:
        """The known senses of an abbreviation as the inventories spell them (empty when not listed)."""
        return self.display.get(abbreviation_key(abbreviation), ())

    def __len__(self) -> int:
        return len(self.senses)


@lru_cache(maxsize=8)
def _load_cached(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> SenseInventory:
    """One read per folder state: ``stamp`` (names, mtimes, sizes) changes when a file does."""
    pairs: list[tuple[str, str]] = []
    skipped = 0
    read: list[str] = []
    for name, _, _ in stamp:
        path = Path(folder) / name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"abbreviation sense inventory {str(path)!r} cannot be read: {exc}") from exc
        if b"\0" in raw[:4096]:
            continue  # not a text file: not an inventory
        text = raw.decode("utf-8") if _is_utf8(raw) else raw.decode("latin-1")
        rows, bad = _rows(name, text)
        pairs += rows
        skipped += bad
        read.append(name)
    return _build(pairs, tuple(read), skipped)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _rows(name: str, text: str) -> tuple[list[tuple[str, str]], int]:
    """(abbreviation, sense) pairs of one file and the count of rows skipped."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines:
        return [], 0
    if name.lower().endswith(".csv"):
        table = list(csv.reader(io.StringIO("\n".join(lines))))
    elif name.lower().endswith(".tsv") or "\t" in lines[0]:
        table = [line.split("\t") for line in lines]
    else:
        table = [line.strip().split(None, 1) for line in lines]
    return _pairs(table)


def _pairs(table: list[list[str]]) -> tuple[list[tuple[str, str]], int]:
    head = [c.strip().lower() for c in table[0]] if table else []
    a_col = next((head.index(h) for h in _ABBR_HEADERS if h in head), None)
    s_col = next((head.index(h) for h in _SENSE_HEADERS if h in head), None)
    header = a_col is not None and s_col is not None
    a_col, s_col = (a_col, s_col) if header else (0, 1)
    v_col = head.index("variation") if header and "variation" in head else None
    out: list[tuple[str, str]] = []
    skipped = 0
    for row in table[1:] if header else table:
        if not any(c.strip() for c in row):
            continue  # blank line
        if len(row) <= max(a_col, s_col) or not row[a_col].strip() or not row[s_col].strip():
            skipped += 1
            continue
        sense = row[s_col].strip()
        out.append((row[a_col].strip(), sense))
        if v_col is not None and len(row) > v_col:
            out += [(_VARIATION_SUFFIX.sub("", v), sense) for v in row[v_col].split("|") if v.strip()]
    return out, skipped


def _build(pairs: list[tuple[str, str]], files: tuple[str, ...], skipped: int) -> SenseInventory:
    senses: dict[str, set[str]] = {}
    display: dict[str, dict[str, str]] = {}
    for abbr, sense in pairs:
        key = abbreviation_key(abbr)
        if not key:
            continue
        for form in {sense, _PAREN.sub("", sense)}:
            norm = expansion_key(form)
            if norm:
                senses.setdefault(key, set()).add(norm)
        display.setdefault(key, {}).setdefault(expansion_key(sense), sense)
    return SenseInventory(
        {k: frozenset(v) for k, v in senses.items()},
        {k: tuple(v.values()) for k, v in display.items()},
        files,
        skipped,
    )
