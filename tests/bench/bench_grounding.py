"""Precision and recall of grounding's "not in the note" flags on a labelled check set built from real notes.

    .venv/bin/python tests/bench/bench_grounding.py [--limit N] [--seed S] [--json] [--show-errors K]

The check set is generated here from ``shared/data/notes`` (aci_bench and MTS-Dialog, every split):

* **quote** answers: one sentence of the note, verbatim, that holds at least one checkable fact (a number,
  dose, date or drug). Every fact is in the note, so every flag on a quote is a false positive.
* **quote-list** answers: two to four such sentences as a numbered list ("1. ", "2) " or "(3) " lines), the
  way models answer "list the ...": the list numbers are not facts, so flagging one is a false positive.
* **changed** answers: the same kind of sentence with exactly one fact changed: a bare **number**, the number
  of a **dose** (mg, mcg, g, mL, units), of a lab **value** or measurement (mg/dL, mmHg, bpm, kg, %, ...),
  the first number of a **pair** (a blood pressure, a 7/10 score, a 6/92 month and year), a **date** (the
  day moved), or a **drug** replaced by another common drug the note does not name. The changed span is the
  label: a flag overlapping it is a true positive, any other flag a false positive, no flag on it a false
  negative.
* **drug (unlisted)**: a drug replaced by a real drug that is *not* in the grounding lexicon (lower case), to
  show honestly what the lexicon does not cover; reported apart, not in the headline recall.

Changed values never occur anywhere in the note (a changed number is checked against every number in it), so
a "found" changed fact would be a grounding bug, not a labelling accident. Selection is seeded.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.druglex import DRUG_NAMES, is_drug  # noqa: E402
from app.core.grounding.tokens import check_tokens as check_grounding  # noqa: E402

NOTES_DIR = ROOT.parent / "shared" / "data" / "notes"
SOURCES = (
    ("aci_bench_valid.csv", "note"),
    ("aci_bench_train.csv", "note"),
    ("mts_dialog_ValidationSet.csv", "section_text"),
    ("mts_dialog_TrainingSet.csv", "section_text"),
)
REPLACEMENT_DRUGS = [
    "lisinopril",
    "metoprolol",
    "amlodipine",
    "atorvastatin",
    "metformin",
    "furosemide",
    "warfarin",
    "apixaban",
    "gabapentin",
    "sertraline",
    "omeprazole",
    "prednisone",
    "levothyroxine",
    "albuterol",
    "azithromycin",
    "ceftriaxone",
    "vancomycin",
    "insulin",
    "tramadol",
    "clopidogrel",
    "hydrochlorothiazide",
    "losartan",
    "simvastatin",
    "ondansetron",
]
UNLISTED_DRUGS = [
    "cilostazol",
    "dipyridamole",
    "nimodipine",
    "glycopyrrolate",
    "pentoxifylline",
    "tolvaptan",
    "pyridostigmine",
    "riluzole",
    "varenicline",
    "terbutaline",
]
"""Real drugs deliberately absent from app.core.druglex (checked at start)."""

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_NUM = re.compile(r"(?<=[A-Za-z,:;(] )(\d+(?:\.\d+)?)(?![\w/%]|[.,]\d|\s?(?:mg|mcg|g|ml|mL|units?)\b)")
"""A bare number inside a sentence (after a word and a space): never a list marker, a date part or a dose."""
_DOSE = re.compile(r"(?<![\w./])(\d+(?:\.\d+)?)(\s?)(mg|mcg|g|mL|ml|units)\b(?!/)")
_VALUE = re.compile(r"(?<![\w./])(\d+(?:\.\d+)?)(\s?)(mg/dL|mmol/L|mEq/L|g/dL|mmHg|bpm|kg|cm|%)(?![\w/])")
"""A lab value or measurement: a number with a unit that is not a dose."""
_PAIR = re.compile(r"(?<![\w/.,])(\d{1,3})/(\d{1,4})(?![\w/]|[.,]\d)")
"""Two numbers with a slash: a blood pressure (132/84), a score (7/10), a month and year (6/92)."""
_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b")
_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Item:
    note: int
    kind: str
    """quote, number, dose, date, drug, drug-unlisted."""
    answer: str
    changed: tuple[int, int] | None
    """Answer offsets of the changed fact (None for a quote)."""
    original: str = ""
    replacement: str = ""


def load_notes(notes_dir: Path = NOTES_DIR) -> list[str]:
    csv.field_size_limit(2**31 - 1)
    out = []
    for name, column in SOURCES:
        with (notes_dir / name).open(encoding="utf-8", newline="") as fh:
            out += [row[column] for row in csv.DictReader(fh) if row[column] and row[column].strip()]
    return out


def sentences(note: str) -> list[str]:
    out = []
    for line in note.splitlines():
        for s in _SENT_SPLIT.split(line.strip()):
            if 15 <= len(s) <= 400:
                out.append(s)
    return out


def _numbers(note: str) -> set[float]:
    return {float(m.group(0).replace(",", "")) for m in _ANY_NUMBER.finditer(note)}


def _new_number(old: str, taken: set[float], rng: random.Random) -> str | None:
    decimals = len(old.split(".")[1]) if "." in old else 0
    value = float(old)
    for _ in range(50):
        cand = value + rng.choice([-1, 1]) * rng.randint(1, max(3, int(value * 0.4) + 1)) * 10**-decimals
        if cand > 0 and round(cand, decimals) not in taken:
            return f"{cand:.{decimals}f}"
    return None


def _replace(sentence: str, start: int, end: int, new: str) -> tuple[str, tuple[int, int]]:
    return sentence[:start] + new + sentence[end:], (start, start + len(new))


def _has_fact(s: str) -> bool:
    return bool(
        _NUM.search(s)
        or _DOSE.search(s)
        or _VALUE.search(s)
        or _PAIR.search(s)
        or _DATE.search(s)
        or any(is_drug(w) for w in _WORD.findall(s))
    )


def _change(kind: str, s: str, note: str, rng: random.Random) -> Item | None:
    taken = _numbers(note)
    lowered = note.lower()
    if kind == "number":
        ms = list(_NUM.finditer(s))
        if ms:
            m = rng.choice(ms)
            new = _new_number(m.group(1), taken, rng)
            if new:
                answer, span = _replace(s, m.start(1), m.end(1), new)
                return Item(-1, kind, answer, span, m.group(1), new)
    elif kind in ("dose", "value"):
        ms = list((_DOSE if kind == "dose" else _VALUE).finditer(s))
        if ms:
            m = rng.choice(ms)
            new = _new_number(m.group(1), taken, rng)
            if new:
                answer, (a, _) = _replace(s, m.start(1), m.end(1), new)
                return Item(-1, kind, answer, (a, a + len(new) + len(m.group(2)) + len(m.group(3))), m.group(0), new)
    elif kind == "pair":
        ms = list(_PAIR.finditer(s))
        if ms:
            m = rng.choice(ms)
            new_top = _new_number(m.group(1), taken, rng)
            if new_top:
                new = f"{new_top}/{m.group(2)}"
                answer, span = _replace(s, m.start(), m.end(), new)
                return Item(-1, kind, answer, span, m.group(0), new)
    elif kind == "date":
        ms = list(_DATE.finditer(s))
        if ms:
            m = rng.choice(ms)
            day = int(m.group(2))
            new_day = day + 1 if day < 28 else day - 1
            new = f"{m.group(1)}/{new_day}/{m.group(3)}"
            # The same date may be in the note in another spelling (03/04/2021 for 3/4/2021): compare values.
            dates = {(int(a), int(b), int(c) % 100) for a, b, c in _DATE.findall(note)}
            if (int(m.group(1)), new_day, int(m.group(3)) % 100) not in dates:
                answer, span = _replace(s, m.start(), m.end(), new)
                return Item(-1, kind, answer, span, m.group(0), new)
    elif kind in ("drug", "drug-unlisted"):
        ms = [m for m in _WORD.finditer(s) if is_drug(m.group(0))]
        pool = REPLACEMENT_DRUGS if kind == "drug" else UNLISTED_DRUGS
        options = [d for d in pool if d not in lowered]
        if ms and options:
            m = rng.choice(ms)
            new = rng.choice(options)
            answer, span = _replace(s, m.start(), m.end(), new)
            return Item(-1, kind, answer, span, m.group(0), new)
    return None


CHANGE_KINDS = ("number", "dose", "value", "pair", "date", "drug", "drug-unlisted")


def make_items(notes: list[str], seed: int = 20261124) -> list[Item]:
    """One quote and, where the note allows, one change of each kind per note."""
    rng = random.Random(seed)
    items: list[Item] = []
    for i, note in enumerate(notes):
        cands = [s for s in sentences(note) if _has_fact(s)]
        if not cands:
            continue
        items.append(Item(i, "quote", rng.choice(cands), None))
        if len(cands) >= 2:
            # The way models answer "list the ...": numbered lines whose numbers are not in the note.
            picked = rng.sample(cands, min(len(cands), rng.randint(2, 4)))
            style = rng.choice(["{n}. ", "{n}) ", "({n}) "])
            lines = [style.format(n=n) + s for n, s in enumerate(picked, start=1)]
            items.append(Item(i, "quote-list", "\n".join(lines), None))
        for kind in CHANGE_KINDS:
            order = cands[:]
            rng.shuffle(order)
            for s in order:
                item = _change(kind, s, note, rng)
                if item is not None:
                    items.append(Item(i, item.kind, item.answer, item.changed, item.original, item.replacement))
                    break
    return items


@dataclass
class Tally:
    items: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def evaluate(items: list[Item], notes: list[str]) -> tuple[dict[str, Tally], list[tuple[Item, list[str]]]]:
    """Per kind: true/false positives and misses of the "not in the note" flags; plus the errors."""
    tallies: dict[str, Tally] = {}
    errors: list[tuple[Item, list[str]]] = []
    for it in items:
        t = tallies.setdefault(it.kind, Tally())
        t.items += 1
        flags = check_grounding(it.answer, notes[it.note]).unsupported
        hit = False
        wrong = []
        for f in flags:
            if it.changed and f.answer_start < it.changed[1] and it.changed[0] < f.answer_end:
                hit = True
            else:
                wrong.append(f"{f.kind}:{f.text}")
        t.fp += len(wrong)
        if it.changed is not None:
            t.tp += hit
            t.fn += not hit
        if wrong or (it.changed is not None and not hit):
            errors.append((it, wrong))
    return tallies, errors


def overall(tallies: dict[str, Tally], kinds: tuple[str, ...]) -> Tally:
    total = Tally()
    for k in kinds:
        t = tallies.get(k, Tally())
        total.items += t.items
        total.tp += t.tp
        total.fp += t.fp
        total.fn += t.fn
    return total


HEADLINE = ("quote", "quote-list", "number", "dose", "value", "pair", "date", "drug")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="use the first N notes only")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-errors", type=int, default=0, metavar="K", help="print K misclassified items")
    args = ap.parse_args(argv)
    assert not set(UNLISTED_DRUGS) & DRUG_NAMES, "an 'unlisted' drug is in the lexicon"
    notes = load_notes()[: args.limit]
    items = make_items(notes, args.seed)
    tallies, errors = evaluate(items, notes)
    head = overall(tallies, HEADLINE)
    rows = {
        k: {"items": t.items, "tp": t.tp, "fp": t.fp, "fn": t.fn, "precision": t.precision, "recall": t.recall}
        for k, t in sorted(tallies.items())
    }
    result = {
        "notes": len(notes),
        "items": len(items),
        "by_kind": rows,
        "headline": {"precision": head.precision, "recall": head.recall, "tp": head.tp, "fp": head.fp, "fn": head.fn},
        "quotes_with_a_flag": sum(1 for it, w in errors if it.kind == "quote" and w),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(notes)} notes, {len(items)} answers ({Counter(i.kind for i in items)})")
        print("| kind | answers | flags on the change (TP) | other flags (FP) | missed (FN) | precision | recall |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for k, r in rows.items():
            print(
                f"| {k} | {r['items']} | {r['tp']} | {r['fp']} | {r['fn']} | {r['precision']:.3f} | {r['recall']:.3f} |"
            )
        print(
            f"headline (quotes, quote lists and every change but unlisted drugs): precision {head.precision:.3f}, "
            f"recall {head.recall:.3f}"
        )
    for it, wrong in errors[: args.show_errors]:
        print(f"--- {it.kind} {it.original!r}->{it.replacement!r} wrong flags {wrong}\n    {it.answer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
