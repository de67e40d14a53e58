"""The evaluation scorers on the full development splits: an oracle answer set and an empty one.

    .venv/bin/python tests/bench/bench_eval_scorers.py [--json]

For each built-in suite on its development split in ../shared/data/gold (NCBI disease devel, PubMedQA PQA-L
dev, the 20 case reports for NER and relations): the "oracle" answers render the gold as an answer (each
distinct mention or triple on a "- " line; the decision, then the long answer) and must score 1.0 on every
document-level figure, as high as the annotation allows at the mention level; the empty answers must score 0.
Printed: every figure with its 95% bootstrap interval and n, the scoring time per item, and for NER where the
mention-level gap comes from (occurrences of an annotated text left unmarked by the annotators; discontinuous
gold mentions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core.evaluation import load_items, load_suite, score_item  # noqa: E402
from app.service.evaluation import aggregate  # noqa: E402
from tests.unit.test_eval_scorers import SPLITS, oracle_answer  # noqa: E402

GOLD = ROOT.parent / "shared" / "data" / "gold"


def _fmt(e) -> str:
    ci = f" [{e.low:.3f}, {e.high:.3f}]" if e.low is not None else ""
    return f"{e.value:.4f}{ci} (n={e.n})"


def run() -> dict:
    out = {}
    for name, file in SPLITS:
        suite = load_suite(name)
        items = load_items(suite, GOLD / file)
        row = {"items": len(items)}
        for kind in ("oracle", "empty"):
            t = time.perf_counter()
            scores = [
                score_item(suite, it, oracle_answer(it, suite.scorer) if kind == "oracle" else "") for it in items
            ]
            elapsed = time.perf_counter() - t
            result = aggregate(suite, scores)
            row[kind] = {k: e.to_json() for k, e in result.metrics.items()}
            row[f"{kind}_ms_per_item"] = round(1000 * elapsed / len(items), 2)
            if kind == "oracle" and suite.scorer == "ner":
                row["mention_fp_spans"] = sum(s.counts["mention_fp"] for s in scores)
                row["gold_spans"] = sum(s.counts["mention_tp"] + s.counts["mention_fn"] for s in scores)
                row["discontinuous_gold"] = sum(1 for it in items for m in it.gold.mentions if m.fragments)
                row["missed_document_level"] = [m for s in scores for m in s.details["missed"]]
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    res = run()
    if ap.parse_args().json:
        print(json.dumps(res, indent=1))
        return
    for name, row in res.items():
        print(f"== {name}: {row['items']} items; scoring {row['oracle_ms_per_item']} ms/item (oracle)")
        for kind in ("oracle", "empty"):
            for k, e in row[kind].items():
                low = f" [{e['low']:.3f}, {e['high']:.3f}]" if e["low"] is not None else ""
                print(f"  {kind:6} {k:28} {e['value']:.4f}{low} (n={e['n']})")
        if "gold_spans" in row:
            print(
                f"  mention level: {row['mention_fp_spans']} aligned spans that no gold mention marks, of "
                f"{row['gold_spans']} gold spans; {row['discontinuous_gold']} discontinuous gold mentions; "
                f"document-level texts the splitter reads otherwise: {row['missed_document_level']}"
            )


if __name__ == "__main__":
    main()
