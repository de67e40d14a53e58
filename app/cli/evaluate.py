"""``asclepius eval``: task evaluation against gold annotations, offline.

- ``eval suites``: the built-in suites with what each scores.
- ``eval items SUITE --data PATH [-o FILE]``: the suite's items (id, note, instruction) as JSON Lines, for a run
  made elsewhere (a GPU server); no model, no log.
- ``eval score SUITE --data PATH --answers FILE.jsonl [--json]``: answers made elsewhere (one JSON object a line,
  ``id`` and ``answer``) scored with the same scorers; no model, no log.
- ``eval run SUITE --data PATH --model M [--model M2 ...] | --endpoint URL --endpoint-model NAME``: every item
  through the one ask-and-log service (``eval_runner.py``, batch's schedulers), each answer a logged run, each
  score stored beside it, resumable; ``--json`` the results and, for two models or more, the paired comparison.
- ``eval report SUITE [--model M ...] -o DIR``: the stored scores as an HTML report with CSV tables and plots.

A suite is a built-in name or a suite file (JSON or YAML): ``app.core.evaluation.suites.load_suite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.core import netns
from app.core.errors import UsageError


def _suite(args: argparse.Namespace) -> Any:
    from app.core.evaluation.suites import load_suite

    return load_suite(args.suite)


def _items(args: argparse.Namespace, suite: Any) -> list[Any]:
    from app.core.evaluation.loaders import load_items

    items = load_items(suite, Path(args.data))
    if getattr(args, "limit", None):
        items = items[: args.limit]
    if not items:
        raise UsageError(f"{Path(args.data).name}: no items for suite {suite.name!r}")
    return items


def _print_results(results: Any, as_json: bool) -> None:
    """``--json``: the results' JSON; else a table of every metric with its interval and n."""
    from app.service.eval_run import as_json as to_json

    if as_json:
        print(json.dumps(results.to_json(), indent=2, sort_keys=True))
        return
    for r in results.results:
        print(f"{results.suite} on {r.model or '(answers file)'}: n = {r.n} items, {r.unparseable} unparseable")
        for name, e in r.metrics.items():
            print(f"  {name:<24} {e.value:.3f}  [{e.low:.3f}, {e.high:.3f}]  n={e.n}")
        for note in r.notes:
            print(f"  note: {note}")
    for a, b, p in results.paired:
        print(f"paired {b} - {a}: {json.dumps(to_json(p), sort_keys=True, default=str)}")


def cmd_suites(args: argparse.Namespace) -> int:
    from app.core.evaluation.suites import BUILTIN_SUITES, load_suite

    suites = [s if hasattr(s, "scorer") else load_suite(s) for s in _values(BUILTIN_SUITES)]
    if args.json:
        print(json.dumps([_suite_json(s) for s in suites], indent=2))
        return 0
    for s in suites:
        print(f"{s.name:<14} {s.task} ({s.loader} data, {s.scorer} scorer): {s.description}")
    return 0


def _values(builtins: Any) -> list[Any]:
    return list(builtins.values()) if isinstance(builtins, dict) else list(builtins)


def _suite_json(s: Any) -> dict[str, Any]:
    keys = ("name", "task", "loader", "scorer", "sample", "seed", "description")
    return {k: getattr(s, k) for k in keys}


def cmd_items(args: argparse.Namespace) -> int:
    from app.core.evaluation.answers import items_records
    from app.core.privatefile import check_output, private_file

    suite = _suite(args)
    if args.output:  # before the data is read: a bad output path fails first
        check_output(args.output, what="-o")
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in items_records(_items(args, suite))]
    if not args.output:
        sys.stdout.writelines(lines)
        return 0
    with private_file(args.output, what="items file") as fh:  # note text: a private (0600) file
        fh.writelines(lines)
    print(f"-- wrote {len(lines)} items of {suite.name} to {args.output}", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from app.core.evaluation.answers import read_answers
    from app.core.evaluation.scorers import score_item
    from app.service.eval_run import ModelScores, results_of

    suite = _suite(args)
    items = _items(args, suite)
    answers = read_answers(Path(args.answers))
    ids = {it.id for it in items}
    missing = [it.id for it in items if it.id not in answers]
    extra = [a for a in answers if a not in ids]
    if len(missing) == len(items):
        raise UsageError(f"{Path(args.answers).name}: no answer for any of the {len(items)} items of {suite.name!r}")
    if missing:
        print(
            f"-- {len(missing)} items have no answer (scored without them): {', '.join(missing[:10])}", file=sys.stderr
        )
    if extra:
        listed = ", ".join(extra[:10])
        print(f"-- {len(extra)} answers name no item of this suite (ignored): {listed}", file=sys.stderr)
    scores = [score_item(suite, it, answers[it.id]) for it in items if it.id in answers]
    _print_results(results_of(suite, [ModelScores("", Path(args.answers).name, scores)]), args.json)
    return 0


@netns.calls_endpoint("endpoint")
def cmd_run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from app.cli.ask import overrides_from_args
    from app.cli.batch.options import endpoint_settings
    from app.cli.context import CliContext
    from app.cli.eval_runner import EvalRunOptions, run_suite
    from app.cli.log_cmds import open_log
    from app.core.bounds import check_parallel

    settings = endpoint_settings(args)  # every flag checked before the data is read or the log opened
    if problem := check_parallel(args.parallel):
        raise UsageError(problem)
    suite = _suite(args)
    items = _items(args, suite)
    opts = EvalRunOptions(overrides_from_args(args), args.prompt_style, args.parallel)
    ctx = CliContext.create(threads=args.threads)
    log = open_log(args)
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    remote = None
    try:
        if settings is not None:
            from app.core.remote import RemoteEngine

            remote = RemoteEngine(settings)  # asks GET /models: an unreachable server is reported now (exit 8)
            models = [remote.model]
        else:
            models = [ctx.model(m) for m in (args.model or [None])]
        outcome = run_suite(ctx, log, suite, items, models, opts, cancel, remote)
    finally:
        signal.signal(signal.SIGINT, previous)
        if remote is not None:
            remote.close()
        log.close()
    if outcome.results.results:
        _print_results(outcome.results, args.json)
    return outcome.exit_code()


def cmd_report(args: argparse.Namespace) -> int:
    from app.cli.log_cmds import open_log
    from app.service.eval_report import write_report
    from app.service.eval_run import stored_results

    suite = _suite(args)
    with open_log(args, read_only=True) as log:
        models = _model_shas(args.model) if args.model else None
        results = stored_results(log, suite, models)
    if not results.results:
        raise UsageError(f"no scores for suite {suite.name!r} in the log" + (" for these models" if models else ""))
    path = write_report(results, Path(args.output))
    print(f"-- wrote {path}", file=sys.stderr)
    return 0


def _model_shas(refs: list[str]) -> list[str]:
    """Each ``--model`` as its sha256 (a registered name or file, or a sha256 as the log shows it)."""
    from app.cli.context import CliContext

    ctx = CliContext.create()
    out = []
    for ref in refs:
        low = ref.lower()
        is_sha = len(low) == 64 and all(c in "0123456789abcdef" for c in low)
        out.append(low if is_sha else ctx.model(ref).sha256)
    return out


def register(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", help="score answers against gold annotations (NER, relations, QA decisions)")
    sub = e.add_subparsers(dest="eval_command", required=True, metavar="ACTION", parser_class=type(e))
    s = sub.add_parser("suites", help="the built-in suites")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_suites)
    it = sub.add_parser("items", help="write a suite's items (id, note, instruction) as JSON Lines for outside runs")
    _suite_args(it)
    it.add_argument("-o", "--output", help="write to this file (mode 0600) instead of stdout")
    it.set_defaults(func=cmd_items)
    sc = sub.add_parser("score", help="score an answers file (JSONL: id, answer) made elsewhere; no model, no log")
    _suite_args(sc)
    sc.add_argument("--answers", required=True, help="JSON Lines, one object a line with id and answer")
    sc.add_argument("--json", action="store_true", help="every metric with its interval and n as JSON")
    sc.set_defaults(func=cmd_score)
    _register_run(sub)
    rp = sub.add_parser("report", help="an HTML report (tables, plots, CSV) of a suite's stored scores")
    rp.add_argument("suite", help="a built-in suite name or a suite file (.json, .yaml)")
    rp.add_argument("--model", action="append", help="only these models (repeat; default: every model scored)")
    rp.add_argument("-o", "--output", required=True, help="the report's folder (created, mode 0700)")
    rp.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    rp.set_defaults(func=cmd_report)


def _suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="a built-in suite name (eval suites) or a suite file (.json, .yaml)")
    p.add_argument("--data", required=True, help="the gold data file the suite's loader reads")
    from app.cli import validators as v

    p.add_argument("--limit", type=v.bounded_int("limit", 1, 10_000_000), help="only the first N items (sampled)")


def _register_run(sub: Any) -> None:
    from app.cli import validators as v
    from app.cli.batch import _add_remote_flags

    r = sub.add_parser("run", help="answer a suite's items on one or more models, log and score them (resumable)")
    _suite_args(r)
    r.add_argument("--model", action="append", type=v.model_ref, help="model (repeat: a paired comparison)")
    r.add_argument("--max-tokens", type=v.max_tokens, help="answer token limit (default: the task's and Settings')")
    r.add_argument("--temperature", type=v.temperature, help="0 = greedy (default: the Settings value)")
    r.add_argument("--seed", type=v.seed, help="default: the Settings value")
    r.add_argument("--prompt-style", type=v.prompt_style, help="prompt style id (default: each model's own)")
    r.add_argument("--threads", type=v.threads)
    r.add_argument("--parallel", type=int, help="answers about one note decoded together (1 = in turn)")
    r.add_argument("--json", action="store_true", help="the results (and paired comparison) as JSON")
    r.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    _add_remote_flags(r)
    r.set_defaults(func=cmd_run)
