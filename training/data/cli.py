"""``asclepius data notes|instructions|answers|build`` and ``asclepius judge`` (need the ``train`` extra).

These are the only commands that open network connections, and only to the ``--base-url`` given: the
handlers are marked ``@netns.calls_endpoint``, so ``app.cli.main`` keeps them out of the network namespace,
says so on stderr, and lets the audit hook admit that host and port only. A ``--dry-run`` and ``data build``
name no endpoint and are isolated like every other command. This module imports only argparse and
``app.core`` at the top; the pipeline (and ``openai``/``datasets``) loads when a handler runs, so the rest of
the CLI and the desktop app never load them. ``app.cli.main`` registers both groups from here, as it does
``quantize``'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from app.core import netns
from app.core.errors import EndpointError, UsageError

TRAIN_EXTRA = "needs the train extra: pip install 'asclepius-desk[train]'"


def _require(*modules: str) -> None:
    import importlib

    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as exc:
            raise UsageError(f"{TRAIN_EXTRA} ({exc})") from None


def _endpoint(args: argparse.Namespace) -> Any:
    from training.endpoint.settings import ChatSettings

    cfg = ChatSettings(
        base_url=args.base_url,
        served_model=args.model,
        api_key_env=args.api_key_env,
        concurrency=args.concurrency,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        timeout_s=args.timeout,
        max_attempts=args.max_attempts,
        stream=args.stream,
        background=args.background,
        keep_responses=args.keep_responses,
    )
    return cfg


def endpoint_url(args: argparse.Namespace) -> str | None:
    """The one URL a data or judge command calls; None for a dry run or ``data build`` (they send nothing).

    Checked here by the one URL policy (``check_url``), because ``app.cli.main`` prints this URL before the
    handler runs: a URL with a user or password (or a query) is refused before anything shows it."""
    from app.core.openai_policy import check_url
    from training.endpoint.settings import ChatSettings

    url = getattr(args, "base_url", None)
    if getattr(args, "dry_run", False) or not url:
        return None
    return check_url(url, ChatSettings.FLAGS["base_url"])


def _start(args: argparse.Namespace, cfg: Any) -> None:
    os.umask(0o077)  # every file and directory written (datasets' Arrow files too) is the user's alone
    if args.dry_run:
        print(f"asclepius: dry run: nothing is sent to {cfg.public_url}", file=sys.stderr)
        return
    key = "set" if os.environ.get(cfg.api_key_env) else "not set (no key sent)"
    print(f"asclepius: model {cfg.served_model} at {cfg.public_url}; ${cfg.api_key_env} {key}", file=sys.stderr)


@netns.calls_endpoint(endpoint_url)
def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "build":
        _require("datasets")
        os.umask(0o077)
        from training.data.build import build_dataset

        m = build_dataset(Path(args.out))
        c = m["counts"]
        print(
            f"built {args.out}/dataset: {c['instructions']:,} instructions, {c['corpus_notes']:,} corpus notes; "
            f"tokens {m['usage_total']['prompt_tokens']:,} prompt + {m['usage_total']['completion_tokens']:,} "
            "completion over all stages (manifest.json)"
        )
        return 0
    _require("openai", "tqdm")
    from training.data import stages
    from training.data.stage_runner import StageOptions

    cfg = _endpoint(args)
    opts = StageOptions(Path(args.out), cfg, args.seed, args.max_tokens, args.dry_run, not args.no_progress)
    if args.data_command == "notes":
        src = stages.NotesInput(Path(args.input), args.text_column, args.id_column, args.context_tokens, args.limit)
        _start(args, cfg)
        res = stages.run_notes(opts, src)
    elif args.data_command == "instructions":
        _start(args, cfg)
        res = stages.run_instructions(opts, args.rouge_threshold)
    else:
        _start(args, cfg)
        res = stages.run_answers(opts)
    print(res.summary())
    rep = res.report
    for k, v in (rep.get("counts") or {}).items():
        print(f"  {k}: {v:,}")
    if rep.get("filter"):
        for why, n in rep["filter"]["by_reason"].items():
            print(f"  dropped {n:,}: {why}")
    for s in rep.get("skipped", [])[:20]:
        print(f"  skipped {s}", file=sys.stderr)
    if len(rep.get("skipped", [])) > 20:
        print(f"  ... {len(rep['skipped']) - 20} more skipped (see {res.stage}.report.json)", file=sys.stderr)
    for key in ("notes_failed_upstream", "instructions_failed_upstream"):
        if rep.get(key):
            prev = key.split("_")[0]
            print(
                f"  note: {rep[key]:,} {prev} requests failed earlier and are not here; rerun `data {prev}`",
                file=sys.stderr,
            )
    failed = 0 if args.dry_run else (rep.get("counts") or {}).get("failed", 0)
    return _exit_code(failed, res.planned, rep.get("failures") or {}, f"{res.stage}.report.json")


@netns.calls_endpoint(endpoint_url)
def cmd_judge(args: argparse.Namespace) -> int:
    _require("openai", "tqdm")
    from training.judge.items import items_from_jsonl, items_from_log
    from training.judge.run import JudgeOptions, run_judge

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    cfg = _endpoint(args)
    opts = JudgeOptions(
        Path(args.out), cfg, args.seed, args.orders, args.max_tokens, args.dry_run, not args.no_progress
    )
    if args.answers:
        if args.task or args.run_model or args.batch is not None:
            raise UsageError("--task, --run-model and --batch filter runs in the log; not with --answers")
        items = items_from_jsonl(Path(args.answers), args.limit)
        log = None
    else:
        from app.store import RunFilter

        log = _open_log(args)
        items = items_from_log(log, RunFilter(task=args.task, model=args.run_model, batch_id=args.batch), args.limit)
        if not items.items:
            log.close()
            raise UsageError(f"no finished runs with note text match in {log.path}; nothing to judge")
    _start(args, cfg)
    try:
        summary = run_judge(opts, items, log)
    finally:
        if log is not None:
            log.close()
    for line in summary.lines():
        print(line)
    return _exit_code(0 if args.dry_run else summary.failed, summary.requests, summary.failures, "judge.report.json")


SHOWN_FAILURES = 3
"""Kinds of failure named on stderr; the report lists them all."""


def _exit_code(failed: int, requests: int, failures: dict[str, int], where: str) -> int:
    """0, or the endpoint's exit code when any request failed (after the summary, outputs written): a script
    running the stages one after another must not go on as if the stage were complete. Says what failed (the
    commonest errors, from ``failures``: error -> requests). Failed requests are recorded and retried by the
    same command."""
    if not failed:
        return 0
    which = f"all {failed:,} requests" if failed >= requests else f"{failed:,} of {requests:,} requests"
    print(f"asclepius: {which} failed (recorded); run the same command again to retry them", file=sys.stderr)
    for error, n in list(failures.items())[:SHOWN_FAILURES]:
        print(f"  {n:,} failed with: {error[:200]}", file=sys.stderr)
    if len(failures) > SHOWN_FAILURES:
        print(f"  ... {len(failures) - SHOWN_FAILURES} other errors (see {where})", file=sys.stderr)
    return EndpointError.exit_code


def _endpoint_args(p: argparse.ArgumentParser, default_out: str | None) -> None:
    # The defaults are ChatSettings' own (a light module: the client and openai load when a command runs).
    from training.endpoint.settings import ChatSettings as S

    g = p.add_argument_group("endpoint (any OpenAI-compatible server; the only address this command connects to)")
    g.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1")
    g.add_argument("--model", required=True, help="the endpoint's model name")
    g.add_argument("--api-key-env", default=S.api_key_env, metavar="VAR", help="environment variable with the key")
    g.add_argument(
        "--concurrency", type=int, default=S.concurrency, help=f"requests in flight (default {S.concurrency})"
    )
    g.add_argument("--rpm", type=float, help="requests per minute limit")
    g.add_argument("--tpm", type=float, help="tokens per minute limit")
    g.add_argument(
        "--timeout",
        type=float,
        default=S.timeout_s,
        help=f"deadline in seconds for each attempt, the whole reply included (default {S.timeout_s:g})",
    )
    g.add_argument(
        "--max-attempts", type=int, default=S.max_attempts,
        help=f"attempts per request in one run (default {S.max_attempts})",
    )  # fmt: skip
    g.add_argument(
        "--stream",
        action="store_true",
        help="streamed replies (server-sent events); a reply counts only once the stream ends with [DONE]",
    )
    g.add_argument(
        "--background",
        action="store_true",
        help="send each request as a background response (OpenAI Responses API, stored) and fetch the reply by "
        "its id: a run killed at any moment resumes by fetching, not re-sending, what it had submitted (OpenAI, "
        "vLLM with VLLM_ENABLE_RESPONSES_API_STORE=1, LiteLLM; not llama.cpp's server; no per-request seed). "
        "The server stores each request and reply until it is fetched and recorded; it is then deleted there",
    )
    g.add_argument(
        "--keep-responses",
        action="store_true",
        help="with --background: leave the stored responses on the server (by default each is deleted once its "
        "reply is on disk)",
    )
    g.add_argument("--max-tokens", type=int, help="completion limit (overrides the stage's default)")
    g.add_argument("--seed", type=int, default=0, help="seeds every random choice (default 0)")
    if default_out is None:
        g.add_argument("--out", required=True, metavar="DIR", help="output directory (later stages read it)")
    else:
        g.add_argument("--out", default=default_out, metavar="DIR", help=f"output directory (default {default_out})")
    g.add_argument("--dry-run", action="store_true", help="count requests and estimate tokens; send nothing")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    d = subparsers.add_parser("data", help="synthetic notes, instructions and answers over an OpenAI-compatible API")
    sub = d.add_subparsers(dest="data_command", required=True, metavar="{notes,instructions,answers,build}")
    n = sub.add_parser("notes", help="case reports -> synthetic discharge summaries")
    n.add_argument("input", help="CSV or JSONL with a text column, or a folder of .txt case reports")
    n.add_argument("--text-column", default="patient", help="column with the case report (default: patient)")
    n.add_argument("--id-column", help="column with a source id (default: the line number)")
    n.add_argument("--context-tokens", type=int, default=4096, help="the model's context (default 4096)")
    n.add_argument("--limit", type=int, help="only the first N case reports")
    _endpoint_args(n, None)
    i = sub.add_parser("instructions", help="one bootstrapped instruction per note (task drawn with the seed)")
    i.add_argument("--rouge-threshold", type=float, default=0.7, help="drop when ROUGE-L to the pool is above")
    _endpoint_args(i, None)
    a = sub.add_parser("answers", help="one answer per instruction, then the reference filters")
    _endpoint_args(a, None)
    b = sub.add_parser("build", help="the instruction dataset and corpus (datasets Arrow + JSONL) with a manifest")
    b.add_argument("--out", required=True, metavar="DIR", help="the directory the stages wrote")
    d.set_defaults(func=cmd_data)

    j = subparsers.add_parser("judge", help="LLM judge over runs in the log or a JSONL of answers")
    j.add_argument("--answers", metavar="FILE.jsonl", help="judge these answers instead of runs in the log")
    j.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    j.add_argument("--task", type=_task, help="only runs of this task")
    j.add_argument("--run-model", help="only runs of this model (file name or sha256 prefix)")
    j.add_argument("--batch", type=int, help="only runs of this batch id")
    j.add_argument("--limit", type=int, help="only the first N items")
    j.add_argument("--orders", type=int, default=1, help="judge each item in K orders to measure position bias")
    _endpoint_args(j, "judge-out")
    j.set_defaults(func=cmd_judge)


def _task(value: str) -> str:
    from resources import get_task

    try:
        return get_task(value).name
    except KeyError as exc:
        raise argparse.ArgumentTypeError(str(exc.args[0])) from None


def _open_log(args: argparse.Namespace) -> Any:
    """The evaluation log named by --db, or the configured one (as ``asclepius log`` opens it)."""
    from app.core.config import Paths, database_path, load_config
    from app.store import EvalLog

    paths = Paths.default()
    try:
        config = load_config(paths)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    path = database_path(paths, config, args.db)
    # The judge rates runs already logged: a missing log (a mistyped --db) is refused, never created empty.
    return EvalLog.open(path, store_note_text=config.store_note_text, create=False)
