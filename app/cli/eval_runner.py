"""``eval run``: a suite's items through the one ask-and-log service on batch's schedulers, then scored.

Nothing here decodes or schedules: each item becomes a ``BatchItem`` and goes to ``run_by_note`` (a local
model: a note's questions decoded together, ``--parallel``) or ``run_concurrent`` (a server), which count
outcomes with ``BatchRun``'s one policy and log every answer with its resume key (``batch.items.item_key``):
a rerun skips the items a model already answered with the same instruction and sampling, and two commands on
one log never answer an item twice (claims). Then every answered item, new or from an earlier run, is
scored and its score stored beside its run (``app.service.eval_run.score_answers``), so a run killed between
answering and scoring is completed by the next.

Here, messages naming an item's "line" mean its number in the suite's item list (1-based): batch's counting
policy words them for an input file.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import dataclass
from typing import Any

from app.cli.batch.items import BatchItem, group_by_note, item_key
from app.cli.batch.runner import DEMO_NOTE, BatchCounts, BatchRun, progress_bar, run_by_note, run_concurrent
from app.core.errors import AsclepiusError, Cancelled, StoreError
from app.service.eval_run import Answered, EvalResults, ModelScores, Scorer, results_of, score_answers


@dataclass(frozen=True, slots=True)
class EvalRunOptions:
    """How the items are asked (the sampling and scheduling flags of ``eval run``, as ``batch`` takes them)."""

    sampling: Any
    """``SamplingOverrides`` given as flags (None fields: the service's sampling rule fills them)."""
    prompt_style: str | None
    """A prompt style id for every model; None: each model's own."""
    parallel: int | None
    """Answers about one note decoded together by the local engine; None: from the context; 1: in turn."""


@dataclass
class EvalRunOutcome:
    """What ``eval run`` did: the counts (batch's) and the results of the models that got scores."""

    counts: BatchCounts
    results: EvalResults

    def exit_code(self) -> int:
        if self.counts.cancelled:
            return Cancelled.exit_code
        return 7 if self.counts.failed else 0  # as batch: some item failed (each recorded as a failed run)


def data_sha256(items: list[Any]) -> str:
    """What the log's batch record names as the input: the items' ids, notes and instructions, hashed (the
    data may be several files, or a sample of one)."""
    h = hashlib.sha256()
    for it in items:
        for part in (it.id, it.note, it.instruction):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _work(ctx: Any, suite: Any, items: list[Any], model: Any, opts: EvalRunOptions, run: BatchRun) -> list[Any]:
    """(BatchItem, request, resume key) per item, grouped by note; an item the service refuses to ask (its
    note, say) is reported and counted failed."""
    requests = ctx.service(None, None)
    work = []
    for i, it in enumerate(items, 1):
        try:
            req = requests.request(it.note, suite.task, it.instruction, explicit=opts.sampling,
                                   prompt_style=opts.prompt_style)  # fmt: skip
        except AsclepiusError as e:
            run.counts.failed += 1
            run.say(f"item {i} ({it.id}): {e}")
            run.progress.update()
            continue
        bi = BatchItem(i, it.id, req.note, suite.task, it.instruction)
        work.append((bi, req, item_key(model.sha256, req, bi)))
    by_item = {id(w[0]): w for w in work}
    return [by_item[id(b)] for b in group_by_note([w[0] for w in work])]


def _answer(ctx: Any, log: Any, run: BatchRun, work: list[Any], model: Any, opts: EvalRunOptions, remote: Any) -> None:
    """Ask what is not done yet on ``model`` (its engine opened only when there is work)."""
    done = log.finished_keys(k for _, _, k in work)
    todo = [w for w in work if w[2] not in done]
    run.counts.skipped += len(done)
    run.progress.update(len(done))
    run.say(f"-- eval on {model.file_name}: {len(work)} items, {len(done)} already answered, {len(todo)} to run")
    if not todo or run.cancel.is_set():
        return
    if remote is None and model.is_demo:
        run.say(DEMO_NOTE)
    engine = remote if remote is not None else ctx.engine(model)
    try:
        service = ctx.service(engine, log)
        if engine.capabilities.concurrency is not None:
            run_concurrent(service, todo, run, engine.capabilities.concurrency)
        else:
            run_by_note(service, todo, run, opts.parallel)
    finally:
        if remote is None:
            engine.close()


def _score(log: Any, suite: Any, items: list[Any], work: list[Any], model: Any, score: Scorer | None) -> ModelScores:
    """Score every item of ``work`` that has an answer in the log (this run's or an earlier one's)."""
    answers = log.finished_answers(k for _, _, k in work)
    answered = [  # a BatchItem's line is its item's number in ``items``
        Answered(items[bi.line - 1], a.uuid, a.answer or "") for bi, _, k in work if (a := answers.get(k)) is not None
    ]
    return ModelScores(model.sha256, model.file_name, score_answers(log, suite, answered, score))


def run_suite(
    ctx: Any,
    log: Any,
    suite: Any,
    items: list[Any],
    models: list[Any],
    opts: EvalRunOptions,
    cancel: threading.Event,
    remote: Any = None,
    score: Scorer | None = None,
    results: Any = results_of,
) -> EvalRunOutcome:
    """Answer ``items`` on each model (or on ``remote``), score and store every answer; the outcome.

    The log records one batch for the whole command (named ``eval SUITE``); a StoreError stops everything,
    a server that stays unreachable stops after recording what was answered (its error re-raised, exit 8).
    """
    batch_id = log.start_batch(f"eval {suite.name}"[:255], data_sha256(items))
    counts = BatchCounts(valid=len(items))
    groups: list[ModelScores] = []
    try:
        with progress_bar(len(items) * len(models)) as progress:
            run = BatchRun(batch_id, cancel, progress, counts)
            for model in models:
                work = _work(ctx, suite, items, model, opts, run)
                try:
                    _answer(ctx, log, run, work, model, opts, remote)
                except StoreError:
                    raise  # the log is unusable: nothing can be scored either
                except AsclepiusError:  # the server went away: what it answered is still scored
                    groups.append(_score(log, suite, items, work, model, score))
                    raise
                groups.append(_score(log, suite, items, work, model, score))
                if counts.cancelled:
                    break
    except AsclepiusError as e:
        if not isinstance(e, StoreError):
            counts.stopped = str(e)
            log.finish_batch(batch_id, counts.as_dict())
        raise
    log.finish_batch(batch_id, counts.as_dict())
    print(
        f"-- summary: {counts.ran} answered, {counts.skipped} already answered, {counts.failed} failed"
        f"{', cancelled' if counts.cancelled else ''}; scored: "
        + ", ".join(f"{g.model} {len(g.scores)}" for g in groups),
        file=sys.stderr,
    )
    return EvalRunOutcome(counts, results(suite, [g for g in groups if g.scores]))
