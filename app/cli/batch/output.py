"""``--output``: the finished answers of a batch as .csv or .jsonl, read back from the log."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli.batch.items import BatchItem, group_by_note, item_key, windows

FIELDS = ["line", "id", "model_file", "task", "instruction", "answer", "finish_reason", "run_id", "tokens", "grounding"]
"""``grounding`` is the report's one-line summary (``describe_summary``); the claims are in the log."""


def write_output(
    log: Any,
    path: Path,
    out_path: Path,
    plan: list[tuple[Any, Callable[[BatchItem], Any]]],
    follow_symlinks: bool = False,
) -> int:
    """One row per item and model that has a finished answer (skipped items included), streamed: the input
    is read again window by window, so memory does not grow with it. ``plan``: (model, request maker)."""
    from app.core.privatefile import private_file
    from app.store.export import summary_text

    n = 0
    # Answers quote patient data: a new 0600 file renamed over the target, never through a link.
    with private_file(out_path, follow_symlinks=follow_symlinks, what="--output") as fh:
        w = csv.DictWriter(fh, FIELDS, lineterminator="\n") if out_path.suffix.lower() == ".csv" else None
        if w:
            w.writeheader()
        for model, make in plan:
            for items, _errors in windows(path):
                keys = {item_key(model.sha256, make(it), it): it for it in group_by_note(items)}
                answers = log.finished_answers(keys)
                for key, item in keys.items():
                    r = answers.get(key)
                    if r is None:
                        continue
                    rec = {
                        "line": item.line, "id": item.item_id, "model_file": model.file_name, "task": item.task,
                        "instruction": item.instruction, "answer": r.answer, "finish_reason": r.finish_reason,
                        "run_id": r.uuid, "tokens": r.completion_tokens,
                        "grounding": summary_text(r.grounding_counts),
                    }  # fmt: skip
                    if w:
                        w.writerow(rec)
                    else:
                        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
    return n
