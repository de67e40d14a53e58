"""What every stage shares: options, the output directory's files, the state check, reports, running.

Files under ``--out DIR`` for a stage ``S`` (all 0600, the directory 0700):

- ``S.results.jsonl``: the append-only request log (training.runner.ResultLog), the source of truth;
- ``S.jsonl``: the stage's output, rebuilt from the log at the end of every run (what the next stage reads);
- ``S.state.json``: endpoint, model, prompt version and seed of the first run; a later run with another
  endpoint or model would mix two generators' output, so it is refused;
- ``S.report.json``: counts, skipped and dropped rows with reasons, and the usage of every run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.openai_policy import estimate_tokens
from app.core.privatefile import private_dir, write_private
from training.endpoint.chat import ChatRequest, Completion
from training.endpoint.settings import ChatSettings
from training.endpoint.usage import Usage
from training.prompts import Prompt
from training.runner import ResultLog, read_jsonl, run_requests, utc_now

STAGES = ("notes", "instructions", "answers")
PREVIOUS = {"instructions": "notes", "answers": "instructions"}


@dataclass(frozen=True)
class StageOptions:
    """Flags shared by ``asclepius data notes|instructions|answers``."""

    out: Path
    """Output directory; later stages find the previous stage's output here."""
    endpoint: ChatSettings
    seed: int = 0
    """Seeds every random choice (task per note, examples) and is sent to the endpoint."""
    max_tokens: int | None = None
    """Overrides the stage's completion limit."""
    dry_run: bool = False
    """Count the requests and estimate tokens; send nothing."""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.seed < 0:
            raise UsageError("--seed must be >= 0")


@dataclass
class Planned:
    """A request to make, known before sending: its id, and a builder for its body (built when sent)."""

    id: str
    build: Callable[[], ChatRequest]
    estimate: int
    """Estimated prompt + completion tokens (for --dry-run)."""


@dataclass
class StageResult:
    stage: str
    planned: int
    already_done: int
    usage: Usage | None
    """None for a dry run."""
    report: dict[str, Any] = field(default_factory=dict)
    estimated_tokens: int = 0

    def summary(self) -> str:
        if self.usage is None:
            pending = self.planned - self.already_done
            return (
                f"{self.stage} (dry run): {self.planned:,} requests planned, {self.already_done:,} already done, "
                f"{pending:,} to send; about {self.estimated_tokens:,} tokens (prompt estimated at 3 bytes per "
                "token, plus each request's completion limit)"
            )
        return f"{self.stage}: {self.usage.line()}"


def out_file(opts: StageOptions, stage: str, suffix: str) -> Path:
    return opts.out / f"{stage}{suffix}"


def read_previous(opts: StageOptions, stage: str) -> list[dict[str, Any]]:
    prev = PREVIOUS[stage]
    path = out_file(opts, prev, ".jsonl")
    if not path.exists():
        raise UsageError(f"{path} not found: run `asclepius data {prev} ... --out {opts.out}` first")
    rows = list(read_jsonl(path))
    if not rows:
        raise UsageError(f"{path} has no rows: the {prev} stage produced nothing to build on")
    return rows


def previous_failures(opts: StageOptions, stage: str) -> int:
    report = out_file(opts, PREVIOUS[stage], ".report.json")
    if not report.exists():
        return 0
    return int(json.loads(report.read_text(encoding="utf-8")).get("counts", {}).get("failed", 0))


def check_state(opts: StageOptions, stage: str, prompt: Prompt, extra: dict[str, Any]) -> dict[str, Any]:
    """Record (first run) or compare (later runs) what must not change within one output directory."""
    state = {
        "stage": stage,
        "endpoint": opts.endpoint.public_url,
        "model": opts.endpoint.served_model,
        "prompt": prompt.key,
        "seed": opts.seed,
        **extra,
    }
    path = out_file(opts, stage, ".state.json")
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in ("endpoint", "model", "prompt", "seed") if old.get(k) != state[k]]
        if changed:
            diff = ", ".join(f"{k} {old.get(k)!r} -> {state[k]!r}" for k in changed)
            raise UsageError(
                f"{opts.out} holds {stage} made with other settings ({diff}); use a new --out to start over"
            )
        return old
    if not opts.dry_run:
        private_dir(opts.out)
        write_private(path, json.dumps({**state, "created_at": utc_now()}, indent=2) + "\n")
    return state


def execute(
    opts: StageOptions,
    stage: str,
    planned: list[Planned],
    on_result: Callable[[ChatRequest, Completion], None] | None = None,
) -> tuple[ResultLog | None, StageResult]:
    """Send what is not done yet (or, for a dry run, count it). Ids must be unique in ``planned``."""
    results_path = out_file(opts, stage, ".results.jsonl")
    if opts.dry_run:
        done: set[str] = set()
        if results_path.exists():
            done = {r["id"] for r in read_jsonl(results_path) if r["status"] == "ok"}
        pending = [p for p in planned if p.id not in done]
        res = StageResult(stage, len(planned), len(planned) - len(pending), None)
        res.estimated_tokens = sum(p.estimate for p in pending)
        return None, res
    private_dir(opts.out)
    log = ResultLog(results_path)
    pending = [p for p in planned if p.id not in log.done]

    def requests() -> Iterator[ChatRequest]:
        for p in pending:
            if p.id not in log.done:
                yield p.build()

    usage = Usage()
    try:
        run_requests(
            opts.endpoint, requests(), log, total=len(pending), stage=stage, on_result=on_result,
            progress=opts.progress, usage=usage,
        )  # fmt: skip
    except BaseException as exc:  # stopped (Ctrl+C, a refused key, ...): what it spent is still counted
        why = str(exc) or type(exc).__name__
        state_path = out_file(opts, stage, ".state.json")
        state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {}
        _append_run(opts, stage, usage, _state_fields(stage, state), interrupted=why)
        print(
            f"{stage} (stopped): {usage.line()}; counted in {out_file(opts, stage, '.report.json').name}",
            file=sys.stderr,
        )
        raise
    return log, StageResult(stage, len(planned), len(planned) - len(pending), usage)


def _state_fields(stage: str, state: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, **{k: state.get(k) for k in ("endpoint", "model", "prompt", "seed")}}


def write_report(opts: StageOptions, result: StageResult, state: dict[str, Any], report: dict[str, Any]) -> None:
    """``S.report.json``: this run's usage appended to earlier runs', with totals and the stage's counts."""
    if result.usage is None:  # a dry run writes nothing
        result.report = report
        return
    result.report = _append_run(opts, result.stage, result.usage, {**_state_fields(result.stage, state), **report})


def _append_run(
    opts: StageOptions, stage: str, usage: Usage, fields: dict[str, Any], interrupted: str | None = None
) -> dict[str, Any]:
    """Add this run (its usage, and why it stopped if it did) to ``S.report.json``'s runs and totals; an
    interrupted run keeps the counts of the last complete one."""
    path = out_file(opts, stage, ".report.json")
    old: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    api = "responses (background)" if opts.endpoint.background else "chat completions"
    run: dict[str, Any] = {"at": utc_now(), "api": api, "usage": usage.as_dict()}
    if interrupted is not None:
        run["interrupted"] = interrupted
    runs = [*old.get("runs", []), run]
    total: dict[str, float] = {}
    for r in runs:
        for k, v in r["usage"].items():
            total[k] = total.get(k, 0) + v
    full = {**(old if interrupted is not None else {}), **fields, "runs": runs, "usage_total": total}
    write_private(path, json.dumps(full, indent=2, ensure_ascii=False) + "\n")
    return full


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    write_private(path, "".join(lines))
    return len(lines)


def plan_estimate(prompt_text: str, max_tokens: int) -> int:
    return estimate_tokens(prompt_text) + max_tokens
