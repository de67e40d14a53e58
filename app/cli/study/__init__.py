"""``asclepius study``: evaluation studies with several raters, on one workstation or many.

``create`` (items file + models or an endpoint, raters, overlap, calibration, seed) records the study and
generates its answers (``create.py``); ``generate`` finishes what an interrupted create left; ``packet``
writes one rater's sealed packet, ``rate`` turns ratings typed elsewhere into a sealed responses file,
``import`` merges one; ``status``, ``adjudicate`` and ``report`` read the study (``commands.py``). The
rules (who may rate what, what is rateable, a score's range) live in the store, so this, the Study screen
and the import refuse the same things.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from typing import Any

from app.core import netns


def _with_log(handler: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace], int]:
    """A handler run with the log named by ``--db`` (or the configured one), closed afterwards."""

    def run(args: argparse.Namespace) -> int:
        from app.cli.log_cmds import open_log

        log = open_log(args, create=False)
        try:
            return handler(args, log)
        finally:
            log.close()

    return run


def _interruptible(work: Callable[[threading.Event], int]) -> int:
    """Ctrl-C sets the cancel event: the answer in progress ends as cancelled, the rest stays pending."""
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        return work(cancel)
    finally:
        signal.signal(signal.SIGINT, previous)


@netns.calls_endpoint("endpoint")
def cmd_create(args: argparse.Namespace) -> int:
    from app.cli.context import CliContext
    from app.cli.log_cmds import open_log
    from app.cli.study.create import CreateOptions, create

    opts = CreateOptions.from_args(args)
    ctx = CliContext.create(threads=args.threads)
    log = open_log(args)
    try:
        return _interruptible(lambda cancel: create(opts, ctx, log, cancel))
    finally:
        log.close()


@netns.calls_endpoint("endpoint")
def cmd_generate(args: argparse.Namespace) -> int:
    from app.cli.context import CliContext
    from app.cli.log_cmds import open_log
    from app.cli.study.create import endpoint_for_generate, generate

    ctx = CliContext.create(threads=args.threads)
    log = open_log(args, create=False)
    try:
        endpoint = endpoint_for_generate(args, log.study(args.name))
        return _interruptible(lambda cancel: generate(args.name, ctx, log, cancel, endpoint))
    finally:
        log.close()


def register(subparsers: Any) -> None:
    from app.cli.study import commands as c

    st = subparsers.add_parser("study", help="evaluation studies: several raters, packets, agreement, report")
    sub = st.add_subparsers(dest="study_command", required=True, metavar="ACTION", parser_class=type(st))
    _register_create(sub)
    g = sub.add_parser("generate", help="generate the answers an interrupted create left")
    g.add_argument("name")
    g.add_argument("--endpoint", help="the study's server URL again (an endpoint study only)")
    g.add_argument("--threads", type=int)
    g.set_defaults(func=cmd_generate)

    ls = sub.add_parser("list", help="the studies in the log")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_with_log(c.cmd_list))
    s = sub.add_parser("status", help="progress per rater, agreement (alpha with intervals), disagreements")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_with_log(c.cmd_status))
    a = sub.add_parser("adjudicate", help="record a final score with a reason (--list: answers raters disagree on)")
    a.add_argument("name")
    a.add_argument("--list", action="store_true", help="answers whose raters differ by 2 or more, with their scores")
    a.add_argument("--answer", help="the answer's id (from --list)")
    a.add_argument("--adjudicator", help="a registered adjudicator of the study")
    a.add_argument("--score", type=int, choices=(1, 2, 3, 4))
    a.add_argument("--reason")
    a.set_defaults(func=_with_log(c.cmd_adjudicate))
    ad = sub.add_parser("add-adjudicator", help="register an adjudicator for an existing study")
    ad.add_argument("name")
    ad.add_argument("adjudicator", help="the person's name as it should appear in the log")
    ad.set_defaults(func=_with_log(c.cmd_add_adjudicator))
    r = sub.add_parser("report", help="the HTML report and CSV tables")
    r.add_argument("name")
    r.add_argument("-o", "--output", required=True, help="folder to write (created, mode 0700)")
    r.set_defaults(func=_with_log(c.cmd_report))
    p = sub.add_parser("packet", help="one rater's sealed packet (notes, blinded answers, the rubric)")
    p.add_argument("name")
    p.add_argument("--rater", required=True)
    p.add_argument("-o", "--output", required=True)
    _passphrase_flag(p)
    p.set_defaults(func=_with_log(c.cmd_packet))
    i = sub.add_parser("import", help="merge a rater's sealed responses file (idempotent)")
    i.add_argument("name")
    i.add_argument("file")
    _passphrase_flag(i)
    i.set_defaults(func=_with_log(c.cmd_import))
    rt = sub.add_parser("rate", help="a packet's answer ids (--list), or ratings typed elsewhere -> responses file")
    rt.add_argument("packet")
    rt.add_argument("--list", action="store_true", help="the packet's answer ids, one a line, in the rater's order")
    rt.add_argument("--from", dest="from_csv", help="CSV with columns answer, score, hallucination, comment")
    rt.add_argument("-o", "--output", help="the sealed responses file to write")
    _passphrase_flag(rt)
    rt.set_defaults(func=c.cmd_rate)
    for parser in (g, ls, s, a, ad, r, p, i):
        parser.add_argument("--db", help="evaluation-log database file (default: the one in the config)")


def _passphrase_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-env", required=True, metavar="VAR", help="environment variable holding the passphrase")


def _register_create(sub: Any) -> None:
    from app.cli import validators as v
    from app.cli.batch import _add_remote_flags

    cr = sub.add_parser("create", help="record a study and generate its answers (run again to resume)")
    cr.add_argument("name", type=v.text)
    cr.add_argument("--items", help=".csv or .jsonl as `batch` reads it: id, note or note_path, task, instruction")
    cr.add_argument("--from-batch", type=int, action="append", help="instead of --items: a batch's logged runs "
                    "(repeat; an arm per model, an item per note and question)")  # fmt: skip
    cr.add_argument("--model", action="append", type=v.model_ref, help="one arm per model (repeat)")
    cr.add_argument("--raters", required=True, help="the raters, comma-separated (the study's rater list)")
    cr.add_argument("--adjudicators", help="who may record final scores, comma-separated")
    cr.add_argument("--overlap", type=int, default=2, help="raters per answer, k (default 2)")
    cr.add_argument("--calibration", type=int, default=0, help="items every rater rates (default 0)")
    cr.add_argument("--seed", type=int, default=0, help="the assignment's seed (default 0)")
    cr.add_argument("--blinding", choices=("blind", "open"), default="blind")
    cr.add_argument("--max-tokens", type=v.max_tokens, help="answer token limit (as batch)")
    cr.add_argument("--temperature", type=v.temperature, help="0 = greedy (default: the Settings value)")
    cr.add_argument("--sampling-seed", type=v.seed, help="the generation's seed (default: the Settings value)")
    cr.add_argument("--prompt-style", type=v.prompt_style)
    cr.add_argument("--threads", type=v.threads)
    cr.add_argument("--db", help="evaluation-log database file (default: the one in the config)")
    _add_remote_flags(cr)
    cr.set_defaults(func=cmd_create)
