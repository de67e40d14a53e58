"""Span alignment (``app.core.grounding.align``) on the NCBI disease corpus, its fuzzy threshold, and its cost.

    .venv/bin/python tests/bench/bench_align.py [--limit N] [--json]

* **gold**: each DEVEL abstract's gold mentions rendered as an answer list ("- mention" lines, each distinct
  text once) and aligned back to the abstract (title + " " + abstract, as PubTator offsets count): the share
  of items with a span on one of that text's gold offsets (target >= 0.99), and how many were exact,
  normalized or fuzzy matches.
* **threshold**: positives are variants of gold mentions that exact and normalized matching miss (plural
  switched, one-letter typo, adjacent letters swapped, a word of a long mention dropped, the first two words
  swapped), each counted right only when its best window overlaps a gold offset of the mention; negatives
  are gold mentions of *other* abstracts that do not occur in this one (they are disease names too: the
  hardest non-mentions there are). The threshold maximising F1 is chosen on TRAIN and reported on DEVEL.
* **cost**: a 60-item NER answer (30 phrases of the note, 30 phrases with a typo or not in it) aligned
  against a 2,000-word note built from ACI-bench notes, median of 30 runs; the word-level checker
  (``grounding.tokens.check_tokens``) on the same input, side by side.
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

from app.core.grounding.align import align_items  # noqa: E402
from app.core.grounding.mention import NoteIndex, align_mention, fuzzy_score  # noqa: E402
from app.core.grounding.tokens import check_tokens  # noqa: E402

GOLD = ROOT.parent / "shared" / "data" / "gold"
NOTES = ROOT.parent / "shared" / "data" / "notes"


@dataclass(frozen=True)
class Abstract:
    pmid: str
    text: str
    mentions: tuple[tuple[int, int, str], ...]
    """(start, end, text) of each gold mention."""


def load_pubtator(path: Path) -> list[Abstract]:
    """PubTator blocks: ``pmid|t|title``, ``pmid|a|abstract``, then ``pmid\\tstart\\tend\\ttext\\ttype\\tid``."""
    out: list[Abstract] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if len(lines) < 2:
            continue
        pmid, _, title = lines[0].split("|", 2)
        abstract = lines[1].split("|", 2)[2]
        mentions = []
        for line in lines[2:]:
            cols = line.split("\t")
            mentions.append((int(cols[1]), int(cols[2]), cols[3]))
        out.append(Abstract(pmid, f"{title} {abstract}", tuple(mentions)))
    return out


def gold_alignment(abstracts: list[Abstract]) -> dict[str, float | int]:
    """Gold mentions as an NER answer list, aligned back through ``align_items``."""
    items = landed = 0
    kinds = {"exact": 0, "normalized": 0, "fuzzy": 0, "none": 0}
    for ab in abstracts:
        gold: dict[str, set[tuple[int, int]]] = {}
        for s, e, t in ab.mentions:
            gold.setdefault(t, set()).add((s, e))
        answer = "\n".join(f"- {t}" for t in gold)
        spans, _ = align_items(answer, ab.text, "ner")
        for item in spans:
            items += 1
            kinds[item.match] += 1
            landed += bool(gold.get(item.text, set()) & set(item.note_spans))
    return {"items": items, "landed": landed, "share": landed / items if items else 0.0, **kinds}


def _variants(mention: str, rng: random.Random) -> list[str]:
    words = mention.split()
    out = []
    last = words[-1]
    out.append(" ".join([*words[:-1], last[:-1] if last.endswith("s") else last + "s"]))
    long_words = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        w = words[i]
        j = rng.randrange(1, len(w) - 2)
        out.append(" ".join([*words[:i], w[:j] + w[j + 1] + w[j] + w[j + 2 :], *words[i + 1 :]]))  # swap
        k = rng.randrange(1, len(w) - 1)
        out.append(" ".join([*words[:i], w[:k] + rng.choice("aeiourst") + w[k + 1 :], *words[i + 1 :]]))  # typo
    if len(words) >= 4:
        i = rng.randrange(len(words))
        out.append(" ".join(words[:i] + words[i + 1 :]))
    if len(words) >= 2:
        out.append(" ".join([words[1], words[0], *words[2:]]))
    return out


def threshold_samples(abstracts: list[Abstract], seed: int = 7, negatives: int = 2000):
    """(score, overlaps_gold) for positives and score for negatives, from the fuzzy step alone."""
    rng = random.Random(seed)
    pos: list[tuple[float, bool]] = []
    neg: list[float] = []
    all_mentions = sorted({t for ab in abstracts for _, _, t in ab.mentions})
    for ab in abstracts:
        index = NoteIndex(ab.text)
        gold: dict[str, list[tuple[int, int]]] = {}
        for s, e, t in ab.mentions:
            gold.setdefault(t, []).append((s, e))
        for text, offsets in gold.items():
            for v in _variants(text, rng):
                if align_mention(v, index, threshold=1.1).match != "none":
                    continue  # exact or normalized already: not the fuzzy step's work
                score, spans = fuzzy_score(v, index)
                hit = any(s < ge and gs < e for s, e in spans for gs, ge in offsets)
                pos.append((score, hit))
    per_abstract = max(1, negatives // max(1, len(abstracts)))
    for ab in abstracts:
        index = NoteIndex(ab.text)
        low = ab.text.lower()
        picked = [t for t in rng.sample(all_mentions, min(len(all_mentions), 40)) if t.lower() not in low]
        neg += [fuzzy_score(t, index)[0] for t in picked[:per_abstract]]
    return pos, neg[:negatives]


def prf(pos: list[tuple[float, bool]], neg: list[float], threshold: float) -> dict[str, float]:
    tp = sum(1 for s, hit in pos if s >= threshold and hit)
    fp = sum(1 for s, hit in pos if s >= threshold and not hit) + sum(1 for s in neg if s >= threshold)
    fn = len(pos) - tp
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"threshold": threshold, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def choose_threshold(train: list[Abstract]) -> tuple[float, list[dict[str, float]]]:
    pos, neg = threshold_samples(train)
    curve = [prf(pos, neg, t / 100) for t in range(60, 100, 2)]
    best = max(curve, key=lambda row: (row["f1"], row["threshold"]))
    return best["threshold"], curve


def cost(runs: int = 30) -> dict[str, float]:
    with (NOTES / "aci_bench_train.csv").open(encoding="utf-8", newline="") as fh:
        notes = [row["note"] for row in csv.DictReader(fh)]
    words: list[str] = []
    for n in notes:
        words += n.split()
        if len(words) >= 2000:
            break
    note = " ".join(words[:2000])
    rng = random.Random(3)
    items = []
    for i in range(60):
        start = rng.randrange(0, 1990)
        phrase = " ".join(words[start : start + rng.randint(1, 3)]).strip(".,:;")
        if i % 2:
            phrase = phrase[:-2] + phrase[-1] + phrase[-2] if len(phrase) > 4 else phrase + "x"  # typo
        items.append(f"{i + 1}. {phrase}")
    answer = "\n".join(items)

    def median_ms(fn) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 2)

    align = median_ms(lambda: align_items(answer, note, "ner"))
    tokens = median_ms(lambda: check_tokens(answer, note))
    return {"note_words": 2000, "items": 60, "align_ms": align, "tokens_ms": tokens}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=0, help="abstracts per split (0: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    devel = load_pubtator(GOLD / "ncbi_disease_devel.pubtator.txt")
    train = load_pubtator(GOLD / "ncbi_disease_train.pubtator.txt")
    if args.limit:
        devel, train = devel[: args.limit], train[: args.limit]
    out: dict[str, object] = {"gold_devel": gold_alignment(devel)}
    chosen, curve = choose_threshold(train)
    pos, neg = threshold_samples(devel)
    out["threshold"] = {
        "chosen_on_train": chosen,
        "train_curve": curve,
        "devel_at_chosen": {**prf(pos, neg, chosen), "positives": len(pos), "negatives": len(neg)},
    }
    out["cost"] = cost()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        g = out["gold_devel"]
        print(f"gold devel: {g['landed']}/{g['items']} on a gold offset ({g['share']:.4f}); "
              f"exact {g['exact']}, normalized {g['normalized']}, fuzzy {g['fuzzy']}, none {g['none']}")  # fmt: skip
        d = out["threshold"]["devel_at_chosen"]
        print(f"threshold {chosen} (train F1-best); devel precision {d['precision']}, recall {d['recall']}, "
              f"{d['positives']} variants, {d['negatives']} negatives")  # fmt: skip
        c = out["cost"]
        print(f"cost: 60 items vs 2,000 words: align {c['align_ms']} ms median, word-level {c['tokens_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
