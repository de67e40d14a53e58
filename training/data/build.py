"""``asclepius data build``: the instruction dataset and the pretraining corpus, with a manifest.

Under ``--out DIR/dataset``: ``instructions.jsonl`` and ``corpus.jsonl``, the same two tables saved with
``datasets`` (``arrow/instructions``, ``arrow/corpus``: ``datasets.load_from_disk`` reads them), and
``manifest.json``: source file hashes, endpoint, model, prompt version and seed per stage, the filters'
reports, counts, token usage per stage, and the sha256 of every file written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from app import __version__
from app.core.errors import UsageError
from app.core.privatefile import private_dir, write_private
from training.data.inputs import file_sha256
from training.data.stage_runner import STAGES
from training.prompts import PROMPTS
from training.runner import read_jsonl, utc_now

INSTRUCTION_COLUMNS = ("id", "note_id", "note", "task", "question", "answer")
CORPUS_COLUMNS = ("id", "text")


def _load_reports(out: Path) -> dict[str, Any]:
    reports = {}
    for stage in STAGES:
        path = out / f"{stage}.report.json"
        if not path.exists() or not (out / f"{stage}.jsonl").exists():
            raise UsageError(f"{out} has no finished {stage} stage: run `asclepius data {stage} ... --out {out}` first")
        reports[stage] = json.loads(path.read_text(encoding="utf-8"))
    return reports


def build_dataset(out: Path) -> dict[str, Any]:
    """Write the dataset directory and return the manifest."""
    reports = _load_reports(out)
    answers = list(read_jsonl(out / "answers.jsonl"))
    notes = list(read_jsonl(out / "notes.jsonl"))
    if not answers:
        raise UsageError(f"{out / 'answers.jsonl'} has no rows: nothing to build")
    instructions = [{k: row[k] for k in INSTRUCTION_COLUMNS} for row in answers]
    corpus = [{"id": n["id"], "text": n["note"]} for n in notes]

    dest = private_dir(out / "dataset")
    files = {
        "instructions.jsonl": instructions,
        "corpus.jsonl": corpus,
    }
    for name, rows in files.items():
        write_private(dest / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # datasets must never reach the Hub from here
    import datasets

    datasets.disable_progress_bars()

    arrow = dest / "arrow"
    if arrow.exists():
        shutil.rmtree(arrow)
    private_dir(arrow)
    datasets.Dataset.from_list(instructions).save_to_disk(str(arrow / "instructions"))
    datasets.Dataset.from_list(corpus).save_to_disk(str(arrow / "corpus"))

    hashes = {
        str(p.relative_to(dest)): file_sha256(p)
        for p in sorted(dest.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    stages = {}
    for stage, rep in reports.items():
        prompt_id = rep["prompt"].split("@")[0]
        stages[stage] = {
            "endpoint": rep["endpoint"],
            "model": rep["model"],
            "prompt": rep["prompt"],
            "prompt_sha256": hashlib.sha256(PROMPTS[prompt_id].template.encode()).hexdigest(),
            "seed": rep["seed"],
            "counts": rep.get("counts", {}),
            "filter": rep.get("filter"),
            "skipped": len(rep.get("skipped", [])),
            "usage": rep.get("usage_total", {}),
            "runs": len(rep.get("runs", [])),
        }
    manifest = {
        "created_at": utc_now(),
        "asclepius_desk": __version__,
        "sources": [reports["notes"]["source"]],
        "stages": stages,
        "counts": {
            "instructions": len(instructions),
            "corpus_notes": len(corpus),
            "tasks": _count(instructions, "task"),
        },
        "usage_total": _sum_usage(stages),
        "files": hashes,
        "columns": {"instructions": list(INSTRUCTION_COLUMNS), "corpus": list(CORPUS_COLUMNS)},
    }
    write_private(dest / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items()))


def _sum_usage(stages: dict[str, Any]) -> dict[str, int]:
    keys = ("prompt_tokens", "completion_tokens", "attempts", "retries", "failed")
    return {k: int(sum(s["usage"].get(k, 0) for s in stages.values())) for k in keys}
