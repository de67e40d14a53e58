"""The three generation stages of REFERENCE.md section 1: notes (1a), instructions (1b), answers (1c + 1d).

Request ids (training.runner.request_id) come from the stage, the prompt version and the content the
request is about: the case report's sha256 (notes), the note id, task and seed (instructions), the
instruction's id (answers). A stage's output keeps the ids, so every row can be traced to its request.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.openai_policy import estimate_tokens
from resources import TASKS
from training.data.filters import ROUGE_THRESHOLD, DropReport, SimilarityPool, reference_filter
from training.data.inputs import read_case_reports
from training.data.stage_runner import (
    Planned,
    StageOptions,
    StageResult,
    check_state,
    execute,
    out_file,
    plan_estimate,
    previous_failures,
    read_previous,
    write_report,
    write_rows,
)
from training.endpoint.chat import ChatRequest, Completion
from training.prompts import (
    ANSWER,
    ANSWER_MAX_TOKENS,
    INSTRUCTION,
    NOTE,
    NOTE_CONTEXT_MARGIN,
    NOTE_CONTEXT_TOKENS,
    POOL_EXAMPLES,
    SEED_EXAMPLES,
)
from training.runner import ResultLog, request_id

SEED_QUESTIONS = 5
"""The reference hand-wrote five seed questions per task; ours are the first five examples of each preset."""
MIN_NOTE_TOKENS = 256
"""A case report that leaves less room than this for the note is skipped as over the context."""


def seed_questions(task_name: str) -> list[str]:
    task = next(t for t in TASKS if t.name == task_name)
    return list(task.examples[:SEED_QUESTIONS])


# -- notes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotesInput:
    path: Path
    text_column: str = "patient"
    id_column: str | None = None
    context_tokens: int = NOTE_CONTEXT_TOKENS
    """The generating model's context: prompt + note must fit (the reference: 4,096)."""
    limit: int | None = None
    """Use only the first N case reports."""

    def __post_init__(self) -> None:
        if self.context_tokens < MIN_NOTE_TOKENS + NOTE_CONTEXT_MARGIN:
            raise UsageError(f"--context-tokens must be at least {MIN_NOTE_TOKENS + NOTE_CONTEXT_MARGIN}")
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")


def run_notes(opts: StageOptions, src: NotesInput) -> StageResult:
    reports = read_case_reports(src.path, src.text_column, src.id_column)
    items = reports.reports[: src.limit] if src.limit else reports.reports
    skipped: list[str] = list(reports.problems)
    planned: list[Planned] = []
    seen: dict[str, str] = {}
    for rep in items:
        prompt = NOTE.render({"pmc": rep.text})
        room = src.context_tokens - NOTE_CONTEXT_MARGIN - estimate_tokens(prompt)
        limit = opts.max_tokens or room
        if room < MIN_NOTE_TOKENS or limit > room:
            skipped.append(
                f"{rep.source_id}: over the model's context (about {estimate_tokens(prompt):,} prompt tokens of "
                f"{src.context_tokens:,}, leaving {max(room, 0):,} for the note)"
            )
            continue
        rid = request_id("notes", NOTE.key, rep.sha256)
        if rid in seen:
            skipped.append(f"{rep.source_id}: the same text as {seen[rid]}")
            continue
        seen[rid] = rep.source_id
        meta = {"source_id": rep.source_id, "source_sha256": rep.sha256}

        def build(rep: Any = rep, rid: str = rid, limit: int = limit, meta: dict[str, Any] = meta) -> ChatRequest:
            # built when sent, so pending prompts are not all held in memory at once
            return ChatRequest(rid, NOTE.render({"pmc": rep.text}), limit, NOTE.temperature, meta, opts.seed)

        planned.append(Planned(rid, build, plan_estimate(prompt, limit)))
    state = check_state(opts, "notes", NOTE, {"source": reports.source_name, "source_sha256": reports.source_sha256})
    log, result = execute(opts, "notes", planned)
    report: dict[str, Any] = {
        "source": {"name": reports.source_name, "sha256": reports.source_sha256},
        "text_column": src.text_column,
        "context_tokens": src.context_tokens,
        "skipped": skipped,
    }
    if log is not None:
        rows, empty, cut = [], 0, 0
        for rec in log.records():
            text = (rec["text"] or "").strip()
            if not text:
                empty += 1
                continue
            cut += rec.get("finish_reason") == "length"
            rows.append({"id": rec["id"], **rec["meta"], "note": text, "finish_reason": rec.get("finish_reason")})
        report["failures"] = log.failures()
        failed = sum(report["failures"].values())
        log.close()
        write_rows(out_file(opts, "notes", ".jsonl"), rows)
        report["counts"] = {
            "planned": len(planned),
            "notes": len(rows),
            "failed": failed,
            "empty_replies": empty,
            "cut_at_max_tokens": cut,
            "skipped": len(skipped),
        }
    write_report(opts, result, state, report)
    return result


# -- instructions ---------------------------------------------------------------------------------------


def clean_question(text: str) -> str:
    """The question in a reply, on one line: its first paragraph (a blank line starts the explanation some
    models add), lines joined with single spaces, outer quotes removed. Questions become the one-per-line
    example list of later prompts, where a line break would split one question into two."""
    first = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    return " ".join(first.split()).strip('"').strip()


def draw_task(seed: int, note_id: str) -> str:
    """Uniform over the eight tasks; depends only on the seed and the note, so a resumed run agrees."""
    return random.Random(f"{seed}:task:{note_id}").choice(TASKS).name


def run_instructions(opts: StageOptions, rouge_threshold: float = ROUGE_THRESHOLD) -> StageResult:
    if not 0 < rouge_threshold <= 1:
        raise UsageError("--rouge-threshold must be in (0, 1]")
    notes = read_previous(opts, "instructions")
    state = check_state(opts, "instructions", INSTRUCTION, {"rouge_threshold": rouge_threshold})
    limit = opts.max_tokens or INSTRUCTION.max_tokens or 300
    # The live pool gives the bootstrap examples; it grows as replies arrive (the reference's behaviour).
    live: dict[str, list[str]] = {t.name: [] for t in TASKS}
    live_sim = SimilarityPool(rouge_threshold)
    for t in TASKS:
        live_sim.seed(t.name, seed_questions(t.name))
    results_path = out_file(opts, "instructions", ".results.jsonl")
    if results_path.exists() and not opts.dry_run:
        with_log = ResultLog(results_path)
        for rec in with_log.records():
            q = clean_question(rec["text"] or "")
            if q and live_sim.admit(rec["meta"]["task"], q)[0]:
                live[rec["meta"]["task"]].append(q)
        with_log.close()

    def build(note: dict[str, Any], task: str, rid: str) -> ChatRequest:
        rng = random.Random(f"{opts.seed}:examples:{note['id']}")
        examples = rng.sample(seed_questions(task), SEED_EXAMPLES)
        pool = live[task]
        examples += rng.sample(pool, min(POOL_EXAMPLES, len(pool)))
        prompt = INSTRUCTION.render({"task": task, "note": note["note"], "samples": "\n".join(examples)})
        meta = {"note_id": note["id"], "task": task, "examples": examples}
        return ChatRequest(rid, prompt, limit, INSTRUCTION.temperature, meta, opts.seed)

    planned = []
    for note in notes:
        task = draw_task(opts.seed, note["id"])
        rid = request_id("instructions", INSTRUCTION.key, note["id"], task, opts.seed)
        est = plan_estimate(note["note"], limit) + estimate_tokens(INSTRUCTION.template) + 150
        planned.append(Planned(rid, lambda n=note, t=task, r=rid: build(n, t, r), est))

    def on_result(req: ChatRequest, res: Completion) -> None:
        q = clean_question(res.text or "") if res.ok else ""
        if q and live_sim.admit(req.meta["task"], q)[0]:
            live[req.meta["task"]].append(q)

    log, result = execute(opts, "instructions", planned, on_result)
    report: dict[str, Any] = {
        "rouge_threshold": rouge_threshold,
        "notes_failed_upstream": previous_failures(opts, "instructions"),
    }
    if log is not None:
        # The output is rebuilt deterministically from the log: log order, a fresh pool seeded with the seeds.
        by_id = {n["id"]: n for n in notes}
        sim = SimilarityPool(rouge_threshold)
        for t in TASKS:
            sim.seed(t.name, seed_questions(t.name))
        drops = DropReport()
        rows = []
        for rec in log.records():
            note = by_id.get(rec["meta"]["note_id"])
            if note is None:
                drops.dropped["note no longer in notes.jsonl"] += 1
                continue
            q = clean_question(rec["text"] or "")
            if not q:
                drops.dropped["empty question"] += 1
                continue
            ok, score = sim.admit(rec["meta"]["task"], q)
            if not ok:
                drops.dropped[f"ROUGE-L > {rouge_threshold:g} against the task's pool"] += 1
                continue
            drops.kept += 1
            rows.append(
                {
                    "id": rec["id"],
                    "note_id": note["id"],
                    "note": note["note"],
                    "task": rec["meta"]["task"],
                    "question": q,
                    "rouge_l_max": round(score, 4),
                }
            )
        report["failures"] = log.failures()
        failed = sum(report["failures"].values())
        log.close()
        write_rows(out_file(opts, "instructions", ".jsonl"), rows)
        report["filter"] = drops.as_dict()
        report["tasks"] = dict(Counter(r["task"] for r in rows).most_common())
        report["counts"] = {"planned": len(planned), "instructions": len(rows), "failed": failed}
    write_report(opts, result, state, report)
    return result


# -- answers --------------------------------------------------------------------------------------------


def run_answers(opts: StageOptions) -> StageResult:
    rows_in = read_previous(opts, "answers")
    state = check_state(opts, "answers", ANSWER, {})
    limit = opts.max_tokens or ANSWER_MAX_TOKENS
    planned = []
    for row in rows_in:
        rid = request_id("answers", ANSWER.key, row["id"])
        est = plan_estimate(row["note"] + row["question"], limit) + estimate_tokens(ANSWER.template)

        def build(row: dict[str, Any] = row, rid: str = rid) -> ChatRequest:
            prompt = ANSWER.render({"note": row["note"], "question": row["question"]})
            return ChatRequest(rid, prompt, limit, ANSWER.temperature, {"instruction_id": row["id"]}, opts.seed)

        planned.append(Planned(rid, build, est))
    log, result = execute(opts, "answers", planned)
    report: dict[str, Any] = {"instructions_failed_upstream": previous_failures(opts, "answers")}
    if log is not None:
        by_id = {r["id"]: r for r in rows_in}
        drops = DropReport()
        out = []
        for rec in log.records():
            src = by_id.get(rec["meta"]["instruction_id"])
            if src is None:
                drops.dropped["instruction no longer in instructions.jsonl"] += 1
                continue
            answer = (rec["text"] or "").strip()
            row = {
                "id": rec["id"],
                "instruction_id": src["id"],
                "note_id": src["note_id"],
                "note": src["note"],
                "task": src["task"],
                "question": src["question"],
                "answer": answer,
            }
            why = "empty answer" if not answer else reference_filter(row)
            if why:
                drops.dropped[why] += 1
                continue
            drops.kept += 1
            out.append(row)
        report["failures"] = log.failures()
        failed = sum(report["failures"].values())
        log.close()
        write_rows(out_file(opts, "answers", ".jsonl"), out)
        report["filter"] = drops.as_dict()
        report["counts"] = {"planned": len(planned), "answers": len(out), "failed": failed}
    write_report(opts, result, state, report)
    return result
