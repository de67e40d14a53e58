"""``asclepius log export --format bioc|brat``: the runs' grounding as standoff annotations over their notes.

A clinical NLP user loads these beside the note: BioC JSON (one collection, one document per run: the note
as the passage, the answer's claims and items as annotations with note offsets) or brat (a folder with
``<run id>.txt``, the note, and ``<run id>.ann``, per run). The conversion is ``app.core.grounding.standoff``;
this module picks the runs, builds each one's report, and writes the files through ``app.core.privatefile``
(0600 files, a 0700 folder).

Offsets index the note as the log keeps it (the validated note the model saw). Standoff needs the note
text, so a run whose log kept only the note's sha256 (hash-only storage) is refused, naming it, before
anything is written; BioC with ``--no-note-text`` writes the annotations without the passage text.
A run logged before claim-level grounding (a word-level summary) is checked again now, with the same
checker every front end uses; a run without an answer has nothing to annotate and is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.grounding import SCHEMA, GroundingReport
from app.core.grounding.standoff import StandoffDoc, to_bioc, to_brat
from app.core.privatefile import check_output, private_dir, write_private
from app.service import ground

INFONS = ("run_id", "task", "instruction", "model_file", "model_sha256", "note_sha256", "finished_at")
"""Run provenance carried into each document (BioC infons)."""


def _report(row: dict[str, Any]) -> GroundingReport:
    # JSON columns leave the export query as text; an absent value may be SQL NULL or JSON null.
    stored = json.loads(row["grounding"] or "null")
    if stored and stored.get("schema") == SCHEMA:
        return GroundingReport.from_dict(stored)
    kept = (json.loads(row["truncation"] or "null") or {}).get("kept_chars")
    return ground(row["answer"], row["note_text"], kept, row["task"], row["instruction"])


def standoff_docs(log: Any, filters: Any, with_text: bool) -> list[StandoffDoc]:
    """One document per answered run; UsageError naming the first run whose note text the log lacks."""
    from app.store.export import iter_rows

    docs = []
    _, rows = iter_rows(log, "runs", filters, include_note_text=True)
    for row in rows:
        if not row["answer"]:
            continue
        if row["note_text"] is None:
            raise UsageError(
                f"run {row['id']} has no note text: this log keeps only note hashes (store_note_text off), and "
                "BioC and brat annotate the note's text; export --format jsonl keeps the grounding without it"
            )
        infons = {k: str(row[k]) for k in INFONS if row.get(k) is not None}
        docs.append(
            StandoffDoc(str(row["id"]), row["note_text"] if with_text else None, _report(row), row["task"], infons)
        )
    return docs


def _write_brat(folder: Path, docs: list[StandoffDoc]) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} exists and is not an empty folder: give a new folder for the brat files")
    private_dir(folder)
    for doc in docs:
        assert doc.note_text is not None  # brat refuses --no-note-text before
        txt, ann = to_brat(doc.note_text, doc.report)
        write_private(folder / f"{doc.id}.txt", txt, what="brat text file")
        write_private(folder / f"{doc.id}.ann", ann, what="brat annotation file")


def export_standoff(args: argparse.Namespace, log: Any, filters: Any) -> int:
    """Write the standoff export the parsed ``log export`` asks for; returns how many runs."""
    if args.format == "brat":
        if not args.output or args.output == "-":
            raise UsageError("--format brat writes a folder of .txt/.ann files: give it with --output DIR")
        if args.no_note_text:
            raise UsageError("--format brat needs the note text (its .txt files): leave out --no-note-text")
    elif args.output not in (None, "-"):
        check_output(args.output, follow_symlinks=args.follow_symlinks, what="export file")
    docs = standoff_docs(log, filters, with_text=not args.no_note_text)
    if args.format == "brat":
        _write_brat(Path(args.output), docs)
    else:
        text = json.dumps(to_bioc(docs), ensure_ascii=False, indent=1)
        if args.output in (None, "-"):
            sys.stdout.write(text + "\n")
        else:
            write_private(args.output, text + "\n", follow_symlinks=args.follow_symlinks, what="export file")
    return len(docs)
