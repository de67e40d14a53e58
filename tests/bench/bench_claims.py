"""Precision and recall of the claim checker's flags on labelled medication and lab claims from real notes,
side by side with the word-level checker it replaced; and what a check costs.

    .venv/bin/python tests/bench/bench_claims.py [--limit N] [--seed S] [--json] [--show-errors K]
    .venv/bin/python tests/bench/bench_claims.py --cost [--runs N]
    .venv/bin/python tests/bench/bench_claims.py --handset [--json] [--show-errors K]

The claim set is built here from ``shared/data/notes`` (ACI-bench and MTS-Dialog, every split):

* **med** (correct): a drug and the dose after it (with the frequency and route after that dose, when the
  same sentence or list line gives them) taken from one note unit, written as an answer's list item in one
  of three styles: "Metformin 500 mg twice daily", "metformin - 500mg PO BID", "- Metformin: 500
  milligrams, two times a day". Should be *supported*.
* **lab** (correct): a test and the value right after it in one unit ("Creatinine 1.9 mg/dL",
  "hemoglobin: 10.2"). Should be *supported*.
* **dose-moved**, **freq-moved**: a correct medication claim whose dose (or frequency) is replaced by one
  that belongs to another drug of the same note (the drug named before it in its own unit), and that occurs
  in no unit naming this drug. Should be flagged (partly supported or not found).
* **value-moved**: a lab claim whose value is replaced by another test's value from the same note, a value
  that occurs in no unit naming this test. Should be flagged.

A flag is a claim reported partly supported or not found. Positives are the altered claims. The
word-level checker (``grounding.tokens.check_tokens``) flags a claim when any of its facts is not found
anywhere in the note. Selection is seeded.

``--handset``: the hand-labelled claims of ``tests/data/claims_handset.jsonl`` instead (written by reading
21 shared notes, independently of the rules above, so the figure is not circular). Each line names its note
by file and row id (``encounter_id`` for ACI-bench, ``ID`` for MTS-Dialog) and gives a claim a model might
write with its label: supported, partly, not_found or unchecked. Flagged = partly or not found; positives =
labels partly and not_found; an "unchecked" label is a negative. Each claim is checked as a whole answer;
when the checker splits it, the claim's status is the worst of its parts (``claim_status``). Printed: both
checkers' precision and recall, a label x status confusion matrix for each, and how many claims each
checker left unchecked against how many were labelled unchecked.

``--cost``: a 60-item answer (claims from this set) against a note of about 2,000 words (shared notes
joined), median wall time of ``check_answer`` and of ``check_tokens`` over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.grounding import ClaimStatus, check_answer  # noqa: E402
from app.core.grounding.claims import check_claims  # noqa: E402
from app.core.grounding.noteindex import NoteIndex, values_in  # noqa: E402
from app.core.grounding.tokens import check_tokens  # noqa: E402
from app.core.grounding.units import doses_in, frequencies_in, routes_in  # noqa: E402
from tests.bench.bench_grounding import NOTES_DIR, load_notes  # noqa: E402

_UNIT_WORDS = {
    "mg": "milligrams",
    "mcg": "micrograms",
    "g": "grams",
    "ml": "milliliters",
    "units": "units",
    "meq": "mEq",
    "tab": "tablets",
    "cap": "capsules",
    "puff": "puffs",
    "drop": "drops",
    "spray": "sprays",
}
_FREQ_SHORT = {
    "bid": "BID",
    "tid": "TID",
    "qid": "QID",
    "daily": "daily",
    "qhs": "QHS",
    "qod": "QOD",
    "prn": "PRN",
    "weekly": "weekly",
    "monthly": "monthly",
}
_FREQ_LONG = {
    "bid": "two times a day",
    "tid": "three times a day",
    "qid": "four times a day",
    "daily": "once a day",
    "qhs": "at bedtime",
    "qod": "every other day",
    "prn": "as needed",
    "weekly": "once a week",
    "monthly": "once a month",
}
_ROUTE_SHORT = {
    "po": "PO",
    "iv": "IV",
    "sc": "SC",
    "im": "IM",
    "inhaled": "inhaled",
    "topical": "topically",
    "pr": "PR",
    "sl": "SL",
    "transdermal": "transdermal",
    "nasal": "nasal",
}
HANDSET = ROOT / "tests" / "data" / "claims_handset.jsonl"
_ROW_ID = {"aci_bench": ("encounter_id", "note"), "mts_dialog": ("ID", "section_text")}
"""File-name prefix -> (row id column, note column)."""
STATUSES = ("supported", "partly", "not_found", "unchecked")
_FLAGS = ("partly", "not_found")
_PER_NOTE = 2
"""Altered claims of each kind per note (each for another drug or test), so few rich notes do not dominate."""
_WINDOW = 30
"""Characters after a lab test name within which its value must start (so "pain for 2 weeks" is no value)."""


@dataclass(frozen=True)
class Regimen:
    drug: str
    dose: tuple
    freq: str | None
    route: str | None
    unit: int


@dataclass(frozen=True)
class Item:
    note: int
    kind: str
    """med, lab, dose-moved, freq-moved, value-moved."""
    answer: str
    flagged_expected: bool
    moved: object = None
    """The moved key (dose, frequency or value) for altered claims."""
    subject: str = ""
    """The drug (generic) or the test of the claim."""


def _fmt(v: float) -> str:
    return f"{v:g}"


def render(r: Regimen, style: int) -> str:
    low, high, unit = r.dose
    amount = _fmt(low) if low == high else f"{_fmt(low)}-{_fmt(high)}"
    freq, route = r.freq, r.route
    if style == 0:
        bits = [
            r.drug.capitalize(),
            f"{amount} {unit}",
            _ROUTE_SHORT.get(route or "", ""),
            _FREQ_LONG.get(freq or "", ""),
        ]
    elif style == 1:
        bits = [
            r.drug.lower(),
            "-",
            f"{amount}{unit}",
            _ROUTE_SHORT.get(route or "", ""),
            _FREQ_SHORT.get(freq or "", ""),
        ]
    else:
        route_text = f" {_ROUTE_SHORT[route]}" if route else ""
        return f"- {r.drug.capitalize()}: {amount} {_UNIT_WORDS[unit]}{route_text}" + (
            f", {_FREQ_LONG[freq]}" if freq else ""
        )
    return " ".join(b for b in bits if b)


def regimens(idx: NoteIndex) -> list[Regimen]:
    """Drug + the dose after it (+ frequency and route after that dose), each from one unit of the note."""
    note, out = idx.note, []
    for u, mentions in idx.drugs_by_unit.items():
        hi = idx.units[u][1]
        ordered = sorted(mentions, key=lambda d: d.start)
        for i, d in enumerate(ordered):
            if d.negated:
                continue
            stop = ordered[i + 1].start if i + 1 < len(ordered) else hi
            seg = note[d.end : stop]
            doses = doses_in(seg)
            if not doses:
                continue
            after = seg[doses[0][1] :]
            freqs, routes = frequencies_in(after), routes_in(after)
            out.append(
                Regimen(d.text, doses[0][2], freqs[0][2] if freqs else None, routes[0][2] if routes else None, u)
            )
    return out


def lab_values(idx: NoteIndex) -> list[tuple[str, str, str, tuple, int]]:
    """(test as written, canonical test, value text, value key, unit) for a value right after a test."""
    out = []
    for u, tests in idx.labs_by_unit.items():
        hi = idx.units[u][1]
        for i, (s, e, name) in enumerate(sorted(tests)):
            stop = min(sorted(tests)[i + 1][0] if i + 1 < len(tests) else hi, e + _WINDOW)
            # Parsed to the next test (not cut at the window, which made "3" of "3 weeks" a value), kept when
            # it starts inside the window.
            nxt = sorted(tests)[i + 1][0] if i + 1 < len(tests) else hi
            vals = [v for v in values_in(idx.note[e:nxt]) if e + v[0] < stop]
            if vals:
                x, y, key = vals[0]
                out.append((idx.note[s:e], name, idx.note[e + x : e + y], key, u))
    return out


def _units_naming(idx: NoteIndex, drug: str) -> set[int]:
    return {idx.unit_of(m.start) for m in idx.drugs.get(drug, ())}


def _generic(idx: NoteIndex, text: str) -> str:
    return next(g for g, ms in idx.drugs.items() if any(m.text == text for m in ms))


def make_items(notes: list[str], seed: int = 20261207) -> list[Item]:
    rng = random.Random(seed)
    items: list[Item] = []
    for n, note in enumerate(notes):
        idx = NoteIndex.build(note)
        regs = regimens(idx)
        for r in rng.sample(regs, min(2, len(regs))):
            items.append(Item(n, "med", render(r, rng.randrange(3)), False, None, _generic(idx, r.drug)))
        items += _moved_doses(idx, n, regs, rng)
        labs = lab_values(idx)
        for test, name, value, _, _ in rng.sample(labs, min(1, len(labs))):
            items.append(
                Item(
                    n,
                    "lab",
                    rng.choice([f"{test.capitalize()} {value}", f"{test.lower()}: {value}"]),
                    False,
                    None,
                    name,
                )
            )
        items += _moved_values(idx, n, labs, rng)
    return items


def _moved_doses(idx: NoteIndex, n: int, regs: list[Regimen], rng: random.Random) -> list[Item]:
    """Up to ``_PER_NOTE`` claims per kind whose dose (or frequency) is another drug's, each for another drug."""
    out: list[Item] = []
    order = regs[:]
    rng.shuffle(order)
    for kind in ("dose-moved", "freq-moved"):
        done: set[str] = set()
        for a in order:
            ga = _generic(idx, a.drug)
            if ga in done or len(done) >= _PER_NOTE:
                continue
            own = _units_naming(idx, ga)
            donors = [
                b
                for b in regs
                if _generic(idx, b.drug) != ga
                and b.unit not in own
                and (kind == "dose-moved" or b.freq)
                and not (set(idx.units_of(idx.doses[b.dose] if kind == "dose-moved" else idx.freqs[b.freq])) & own)
            ]
            if donors:
                b = rng.choice(donors)
                moved = b.dose if kind == "dose-moved" else b.freq
                new = (
                    a.__class__(a.drug, b.dose, a.freq, a.route, a.unit)
                    if kind == "dose-moved"
                    else a.__class__(a.drug, a.dose, b.freq, a.route, a.unit)
                )
                out.append(Item(n, kind, render(new, rng.randrange(3)), True, moved, ga))
                done.add(ga)
    return out


def _moved_values(idx: NoteIndex, n: int, labs: list, rng: random.Random) -> list[Item]:
    """Up to ``_PER_NOTE`` lab claims whose value is another test's, each for another test."""
    order = labs[:]
    rng.shuffle(order)
    out: list[Item] = []
    done: set[str] = set()
    for test, name, _, _, _ in order:
        if name in done or len(done) >= _PER_NOTE:
            continue
        own = {idx.unit_of(s) for s, _ in idx.labs.get(name, ())}
        donors = [x for x in labs if x[1] != name and not (set(idx.units_of(idx.values[x[3]])) & own)]
        if donors:
            d = rng.choice(donors)
            out.append(Item(n, "value-moved", f"{test.capitalize()} {d[2]}", True, d[3], name))
            done.add(name)
    return out


def flagged_by_claims(answer: str, note: str) -> bool:
    return any(c.status in (ClaimStatus.PARTLY, ClaimStatus.NOT_FOUND) for c in check_claims(answer, note))


def flagged_by_tokens(answer: str, note: str) -> bool:
    return bool(check_tokens(answer, note).unsupported)


def evaluate(items: list[Item], notes: list[str], flagged=flagged_by_claims) -> dict:
    rows: dict[str, dict[str, int]] = {}
    tp = fp = fn = 0
    errors = []
    for it in items:
        got = flagged(it.answer, notes[it.note])
        row = rows.setdefault(it.kind, {"items": 0, "flagged": 0})
        row["items"] += 1
        row["flagged"] += got
        tp += got and it.flagged_expected
        fp += got and not it.flagged_expected
        fn += it.flagged_expected and not got
        if got != it.flagged_expected:
            errors.append(it)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {"by_kind": rows, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "errors": errors}


def cost(notes: list[str], items: list[Item], runs: int) -> dict:
    long_note, used = "", []
    for i, note in enumerate(notes):
        if len(long_note.split()) >= 2000:
            break
        long_note += note + "\n\n"
        used.append(i)
    pool = [it.answer.lstrip("- ") for it in items if it.note in used] or [it.answer for it in items]
    answer = "\n".join(f"{k + 1}. {pool[k % len(pool)]}" for k in range(60))
    out = {"note_words": len(long_note.split()), "answer_items": 60, "runs": runs}
    for name, fn in (
        ("check_answer", lambda: check_answer(answer, long_note)),
        ("check_tokens", lambda: check_tokens(answer, long_note)),
    ):
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        out[f"{name}_median_ms"] = statistics.median(times)
    out["ratio"] = out["check_answer_median_ms"] / out["check_tokens_median_ms"]
    return out


@dataclass(frozen=True)
class HandClaim:
    source: str
    """The notes file (under ``shared/data/notes``)."""
    row_id: str
    """The note's row id in that file."""
    task: str
    instruction: str
    claim: str
    label: str
    """supported, partly, not_found or unchecked: read off the note by hand."""
    why: str


def load_handset(path: Path = HANDSET) -> list[HandClaim]:
    with path.open(encoding="utf-8") as fh:
        return [HandClaim(**json.loads(line)) for line in fh if line.strip()]


def handset_notes(claims: list[HandClaim], notes_dir: Path = NOTES_DIR) -> dict[tuple[str, str], str]:
    """The note of each (file, row id) the hand set names, read from the shared data (never copied)."""
    csv.field_size_limit(2**31 - 1)
    out: dict[tuple[str, str], str] = {}
    for source in sorted({c.source for c in claims}):
        id_col, note_col = next(v for k, v in _ROW_ID.items() if source.startswith(k))
        with (notes_dir / source).open(encoding="utf-8", newline="") as fh:
            out.update({(source, row[id_col]): row[note_col] for row in csv.DictReader(fh)})
    return out


def claim_status(statuses: list[str]) -> str:
    """One status for a claim the checker split: unchecked when nothing was checked, not found when every
    checked part is, partly when some part is flagged, else supported."""
    checked = [s for s in statuses if s != "unchecked"]
    if not checked:
        return "unchecked"
    if all(s == "not_found" for s in checked):
        return "not_found"
    return "partly" if any(s in _FLAGS for s in checked) else "supported"


def status_by_claims(answer: str, note: str) -> str:
    return claim_status([c.status.value for c in check_claims(answer, note)])


def status_by_tokens(answer: str, note: str) -> str:
    facts = check_tokens(answer, note).spans
    return claim_status(["supported" if f.found else "not_found" for f in facts]) if facts else "unchecked"


def evaluate_handset(claims: list[HandClaim], notes: dict[tuple[str, str], str], status=status_by_claims) -> dict:
    """Precision and recall of the flags, the label x status confusion matrix, and the disagreements."""
    matrix = {label: dict.fromkeys(STATUSES, 0) for label in STATUSES}
    tp = fp = fn = 0
    errors: list[tuple[HandClaim, str]] = []
    for c in claims:
        got = status(c.claim, notes[(c.source, c.row_id)])
        matrix[c.label][got] += 1
        flagged, positive = got in _FLAGS, c.label in _FLAGS
        tp += flagged and positive
        fp += flagged and not positive
        fn += positive and not flagged
        if flagged != positive:
            errors.append((c, got))
    return {
        "claims": len(claims),
        "positives": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "matrix": matrix,
        "left_unchecked": sum(row["unchecked"] for row in matrix.values()),
        "labelled_unchecked": sum(matrix["unchecked"].values()),
        "errors": errors,
    }


def print_handset(results: dict[str, dict], notes: dict, show_errors: int, as_json: bool) -> None:
    if as_json:
        strip = {name: {k: v for k, v in r.items() if k != "errors"} for name, r in results.items()}
        print(json.dumps(strip, indent=2))
    for name, r in results.items():
        if as_json:
            break
        print(
            f"{name}: precision {r['precision']:.3f}, recall {r['recall']:.3f} (TP {r['tp']}, FP {r['fp']}, "
            f"FN {r['fn']}; {r['claims']} claims, {r['positives']} positives); left unchecked "
            f"{r['left_unchecked']}, labelled unchecked {r['labelled_unchecked']}"
        )
        print("| label \\ status | " + " | ".join(STATUSES) + " |")
        print("| --- |" + " ---: |" * len(STATUSES))
        for label, row in r["matrix"].items():
            print(f"| {label} | " + " | ".join(str(row[s]) for s in STATUSES) + " |")
    for c, got in results["claim checker"]["errors"][:show_errors]:
        print(f"--- {c.source} {c.row_id} [label {c.label}, got {got}] {c.claim}  ({c.why})")
        for x in check_claims(c.claim, notes[(c.source, c.row_id)]):
            print(f"    [{x.status.value}] {x.reason}")


def run_handset(show_errors: int, as_json: bool) -> dict[str, dict]:
    claims = load_handset()
    notes = handset_notes(claims)
    results = {
        "claim checker": evaluate_handset(claims, notes),
        "word-level checker": evaluate_handset(claims, notes, status_by_tokens),
    }
    print_handset(results, notes, show_errors, as_json)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="use the first N notes only")
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-errors", type=int, default=0, metavar="K", help="print K misclassified claims")
    ap.add_argument("--cost", action="store_true", help="time a 60-item answer against a ~2,000-word note")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--handset", action="store_true", help="the hand-labelled claims of tests/data instead")
    args = ap.parse_args(argv)
    if args.handset:
        run_handset(args.show_errors, args.json)
        return 0
    notes = load_notes()[: args.limit]
    items = make_items(notes, args.seed)
    if args.cost:
        result = cost(notes, items, args.runs)
        print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
        return 0
    claims, tokens = evaluate(items, notes), evaluate(items, notes, flagged_by_tokens)
    if args.json:
        strip = {k: v for k, v in claims.items() if k != "errors"}
        print(
            json.dumps(
                {
                    "notes": len(notes),
                    "items": len(items),
                    "claims": strip,
                    "tokens": {k: v for k, v in tokens.items() if k != "errors"},
                },
                indent=2,
            )
        )
    else:
        print(f"{len(notes)} notes, {len(items)} claims")
        print("| kind | claims | flagged by the claim checker | flagged by the word-level checker |")
        print("| --- | ---: | ---: | ---: |")
        for k, r in sorted(claims["by_kind"].items()):
            print(f"| {k} | {r['items']} | {r['flagged']} | {tokens['by_kind'][k]['flagged']} |")
        for name, res in (("claim checker", claims), ("word-level checker", tokens)):
            print(
                f"{name}: precision {res['precision']:.3f}, recall {res['recall']:.3f} "
                f"(TP {res['tp']}, FP {res['fp']}, FN {res['fn']})"
            )
    for it in claims["errors"][: args.show_errors]:
        print(f"--- {it.kind} (expected {'flag' if it.flagged_expected else 'supported'}): {it.answer}")
        for c in check_claims(it.answer, notes[it.note]):
            print(f"    [{c.status.value}] {c.reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
