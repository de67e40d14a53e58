"""``asclepius log``: export, import-ratings, stats, show.

The log is opened before anything else happens, so an unusable location is reported at once (exit 6).
``export`` and ``stats`` only read: they open an existing log read-only (a mistyped ``--db`` is an error,
never a new empty log; a read-only log works). Exported files may hold note text (patient data): they are
written through ``app.core.privatefile`` (a new 0600 file renamed over the target; links refused).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from app.core.errors import UsageError


def open_log(args: argparse.Namespace, *, read_only: bool = False, create: bool = True) -> Any:
    """The log named by ``--db`` or the configured one; ``read_only`` or ``create=False``: it must exist."""
    from app.core.config import Paths, database_path, load_config
    from app.store import EvalLog
    from app.store import db as store_db

    paths = Paths.default()
    try:
        config = load_config(paths)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    path = database_path(paths, config, getattr(args, "db", None))
    if read_only:
        engine = store_db.open_engine_readonly(path, store_db.OpenOptions())
        return EvalLog(path, engine, store_note_text=config.store_note_text)
    return EvalLog.open(path, store_note_text=config.store_note_text, create=create)


def check_models(log: Any, refs: list[str]) -> None:
    """UsageError for a model reference that matches no model in the log (a typo must not give empty stats)."""
    models = log.models()
    for ref in refs:
        r = ref.strip()
        hit = any(r == m.file_name or (len(r) >= 6 and m.sha256.startswith(r.lower())) for m in models)
        if not hit:
            known = ", ".join(sorted({m.file_name for m in models})[:10]) or "none"
            raise UsageError(f"no model {r[:80]!r} in this log (models: {known})")


def parse_time(value: str) -> datetime:
    """``2026-11-24`` or an ISO 8601 time, in UTC; without a zone it is taken as UTC."""
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date or ISO 8601 time: {value[:60]!r}") from None
    try:
        # In UTC here, as the log stores times: an offset that moves it past year 1 or 9999 is refused now,
        # not by the query (an OverflowError whose message carried the SQL, exit 1).
        return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{value[:60]!r} is out of range once in UTC (years 1 to 9999)") from None


def task_name(value: str) -> str:
    from resources import get_task

    try:
        return get_task(value).name
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0])) from None


def filters_from(args: argparse.Namespace) -> Any:
    from app.store import RunFilter

    return RunFilter(task=args.task, model=args.model, rater=args.rater, since=args.since, until=args.until)


@contextmanager
def private_output(path: str | None, follow_symlinks: bool = False) -> Any:
    from app.core.privatefile import private_file

    if path is None or path == "-":
        yield sys.stdout
        return
    with private_file(path, follow_symlinks=follow_symlinks, what="export file") as fh:
        yield fh


def cmd_export(args: argparse.Namespace) -> int:
    from app.core.privatefile import check_output
    from app.store.export import export

    if args.format in ("bioc", "brat"):  # standoff annotations over each run's note
        from app.cli.log_standoff import export_standoff

        with open_log(args, read_only=True) as log:
            if args.model:
                check_models(log, [args.model])
            n = export_standoff(args, log, filters_from(args))
        print(f"-- exported {n:,} runs as {args.format}", file=sys.stderr)
        return 0
    if args.output not in (None, "-"):  # before the log is read: a bad path is reported at once
        check_output(args.output, follow_symlinks=args.follow_symlinks, what="export file")
    with open_log(args, read_only=True) as log, private_output(args.output, args.follow_symlinks) as out:
        if args.model:
            check_models(log, [args.model])
        n = export(
            log,
            out,
            args.format,
            kind=args.kind,
            filters=filters_from(args),
            include_note_text=not args.no_note_text,
            history=args.history,
        )
    print(f"-- exported {n:,} {args.kind}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.core.records import check_records_file
    from app.store.ratings_import import MAX_FILE_BYTES, import_ratings

    path = Path(args.file)
    check_records_file(path, max_bytes=MAX_FILE_BYTES, what="ratings file")  # a bad file first, as batch does
    with open_log(args, create=False) as log:  # ratings need runs: a mistyped --db is no new empty log
        report = import_ratings(
            log, path, default_rater=args.rater, all_or_nothing=args.all_or_nothing, add_raters=args.add_raters
        )
    for line, problem in report.errors:
        print(f"{path.name}: line {line}: {problem}", file=sys.stderr)
    print(
        f"-- imported {report.imported} ratings, {report.unchanged} unchanged, {len(report.errors)} rows rejected",
        file=sys.stderr,
    )
    return 0 if report.ok else UsageError.exit_code


def _f(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _interval(x: Any) -> str:
    """A 95% interval as "[low, high]", or "" when there is none."""
    return "" if x.low is None or math.isnan(x.low) else f"[{_f(x.low, 3)}, {_f(x.high, 3)}]"


def print_stats(res: dict[str, Any], out: TextIO) -> None:
    print("Mean human score per model and task (95% bootstrap interval; a run's score is its raters' mean)", file=out)
    for m in res["means"]:
        print(
            f"  {m.model}  {m.task}: {_f(m.mean)} [{_f(m.low)}, {_f(m.high)}]  runs {m.runs}, ratings {m.ratings}",
            file=out,
        )
    if not res["means"]:
        print("  (no human ratings match)", file=out)
    ag = res["agreement"]
    print(
        f"Inter-rater agreement (Krippendorff's alpha, ordinal): {_f(ag.alpha, 3)} {_interval(ag)} over {ag.runs} "
        f"doubly rated runs, {ag.raters} raters" + (f" ({ag.reason})" if ag.reason else ""),
        file=out,
    )
    for t in res.get("agreement_per_task", []):
        print(
            f"  {t.task}: {_f(t.alpha, 3)} {_interval(t)} over {t.runs} runs, {t.raters} raters"
            + (f" ({t.reason})" if t.reason else ""),
            file=out,
        )
    if res.get("flags"):
        print("Hallucination flags and score-1 ratings per model and task (current human ratings)", file=out)
    for c in res.get("flags", []):
        print(
            f"  {c.model}  {c.task}: {c.hallucination} flagged, {c.score_1} scored 1, of {c.ratings} ratings",
            file=out,
        )
    if res["paired"] is not None:
        p = res["paired"]
        print(
            f"Paired comparison on {p.items} shared items: {p.model_a} {_f(p.mean_a)} vs {p.model_b} {_f(p.mean_b)}, "
            f"difference {_f(p.mean_diff)}; paired t = {_f(p.t_stat, 3)} (p = {_f(p.t_p, 4)}), "
            f"Wilcoxon W = {_f(p.wilcoxon_stat, 1)} (p = {_f(p.wilcoxon_p, 4)})"
            + (f" ({p.reason})" if p.reason else ""),
            file=out,
        )
    print(
        "Win rates from blind votes ((wins + ties/2) / decided; 'both bad' not counted; withdrawn votes and "
        "votes cast after the models were shown left out)",
        file=out,
    )
    for w in res["wins"]:
        print(
            f"  {w.model}: {_f(w.win_rate)}  ({w.wins} won, {w.losses} lost, {w.ties} tied, {w.both_bad} both bad)",
            file=out,
        )
    if not res["wins"]:
        print("  (no comparisons match)", file=out)
    if res.get("judge_means"):
        print("Mean judge score per judge, model and task (95% bootstrap interval; judge ratings only)", file=out)
    for jm in res.get("judge_means", []):
        print(
            f"  {jm.judge}  {jm.model}  {jm.task}: {_f(jm.mean)} [{_f(jm.low)}, {_f(jm.high)}]  runs {jm.runs}",
            file=out,
        )
    for c in res["judges"]:
        print(
            f"Judge {c.judge} vs human mean on {c.runs} runs: Spearman {_f(c.spearman, 3)} "
            f"(p = {_f(c.spearman_p, 4)}), Pearson {_f(c.pearson, 3)}, exact agreement {_f(c.exact_agreement)}",
            file=out,
        )
    if res.get("left_out_ratings"):
        print(
            f"Left out: {res['left_out_ratings']} ratings of runs that cannot be rated (failed, stopped or "
            "empty answers, kept from an older log)",
            file=out,
        )


def cmd_stats(args: argparse.Namespace) -> int:
    from app.store import stats

    with open_log(args, read_only=True) as log:
        check_models(log, ([args.model] if args.model else []) + list(args.compare or []))
        f = filters_from(args)
        res = {
            "means": stats.mean_scores(log, f),
            "agreement": stats.agreement(log, f),
            "agreement_per_task": stats.agreement_per_task(log, f),
            "flags": stats.flag_counts(log, f),
            "paired": stats.paired_test(log, args.compare[0], args.compare[1], f) if args.compare else None,
            "wins": stats.win_rates(log, f),
            "judges": stats.judge_correlation(log, f),
            "judge_means": stats.judge_mean_scores(log, f),
            "left_out_ratings": stats.left_out_ratings(log, f),
        }
    if args.json:

        def plain(v: Any) -> Any:
            if isinstance(v, list):
                return [plain(x) for x in v]
            if v is None or isinstance(v, int):
                return v
            d = asdict(v)
            return {k: None if isinstance(x, float) and not math.isfinite(x) else x for k, x in d.items()}

        print(json.dumps({k: plain(v) for k, v in res.items()}, indent=2))
    else:
        print_stats(res, sys.stdout)
    return 0


SHOW_FIELDS = (
    "id", "uuid", "status", "task", "instruction", "model_file", "model_name", "model_quant", "model_sha256",
    "endpoint", "served_model", "reported_model", "system_fingerprint", "usage_reported", "note_sha256", "note_chars",
    "started_at", "finished_at", "finish_reason", "error", "prompt_tokens", "completion_tokens", "ttft_s",
    "decode_tokens_per_s", "total_s", "params_hash", "batch_id", "sampling", "grounding", "truncation",
)  # fmt: skip
"""What ``log show`` prints: a run's provenance and answer; never the note text (its hash and length)."""


def cmd_show(args: argparse.Namespace) -> int:
    """One run (id or uuid): where it came from, how it was sampled, and its answer."""
    with open_log(args, read_only=True) as log:
        run = log.get_run(args.run)
    if run is None:
        raise UsageError(f"no run {args.run!r} in the log")
    from app.core.grounding import GroundingReport, describe_summary
    from app.core.grounding.text import report_lines

    data = {k: getattr(run, k) for k in SHOW_FIELDS}
    summary = describe_summary(run.grounding) if run.answer else ""
    if args.json:  # the full stored report (every claim and item with offsets) and its summary line
        out = {**data, "grounding_summary": summary, "answer": run.answer}
        print(json.dumps(out, default=str, ensure_ascii=False, indent=2))
        return 0
    for k, v in data.items():
        if v is None or v == "" or k == "grounding":
            continue  # a local run has no endpoint; an unfinished one no answer yet; grounding: below
        print(f"{k + ':':21s} {json.dumps(v) if isinstance(v, dict) else v}")
    if summary:
        print(f"{'grounding:':21s} {summary}")
        for line in report_lines(GroundingReport.from_dict(run.grounding or {})):
            print(f"  {line}")
    print("answer:")
    print(run.answer or "")
    return 0


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="evaluation-log database file (default: the one in the config)")


def _filter_args(p: argparse.ArgumentParser) -> None:
    _db_arg(p)
    p.add_argument("--task", type=task_name, help="task name or short name (ner, qa, ...)")
    p.add_argument("--model", help="model file name or sha256 (6+ leading hex digits)")
    p.add_argument("--rater", help="only runs this rater has rated (and only their ratings)")
    p.add_argument("--since", type=parse_time, help="runs started at or after (YYYY-MM-DD or ISO time; UTC)")
    p.add_argument("--until", type=parse_time, help="runs started before (YYYY-MM-DD or ISO time; UTC)")


def register(subparsers: Any) -> None:
    log = subparsers.add_parser("log", help="the evaluation log: export, import ratings, statistics")
    sub = log.add_subparsers(dest="log_command", required=True, metavar="{export,import-ratings,stats,show}")

    e = sub.add_parser("export", help="write runs or ratings as CSV or JSON Lines; runs' grounding as BioC or brat")
    e.add_argument(
        "--format",
        choices=("csv", "jsonl", "bioc", "brat"),
        default="csv",
        help="bioc: one BioC JSON file; brat: a folder (--output) of .txt/.ann per run (both need note text)",
    )
    e.add_argument("--kind", choices=("runs", "ratings"), default="runs", help="one row per run, or per rating")
    e.add_argument("--history", action="store_true", help="with --kind ratings: superseded ratings too")
    e.add_argument("--no-note-text", action="store_true", help="leave note text out (hash and length stay)")
    e.add_argument("-o", "--output", help="output file (default: standard output); written mode 0600")
    e.add_argument("--follow-symlinks", action="store_true", help="write to the target if --output is a symbolic link")
    _filter_args(e)
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import-ratings", help="read ratings made outside the app, matched by run id")
    i.add_argument("file", help="CSV (header line) or .jsonl with run_id, score and optionally rater, ...")
    i.add_argument("--rater", help="rater for rows without a rater column")
    i.add_argument(
        "--add-raters",
        action="store_true",
        help="add rater names the log does not list yet (default: such rows are rejected, a typo is no new rater)",
    )
    i.add_argument(
        "--all-or-nothing", action="store_true", help="import nothing if any row is rejected (default: the good rows)"
    )
    _db_arg(i)
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("stats", help="mean scores, paired tests, agreement, win rates, judge correlation")
    s.add_argument("--compare", nargs=2, metavar=("MODEL_A", "MODEL_B"), help="paired test of two models")
    s.add_argument("--json", action="store_true")
    _filter_args(s)
    s.set_defaults(func=cmd_stats)

    sh = sub.add_parser("show", help="one run's provenance (model or endpoint, sampling, timings) and answer")
    sh.add_argument("run", help="run id or uuid")
    sh.add_argument("--json", action="store_true")
    _db_arg(sh)
    sh.set_defaults(func=cmd_show)
