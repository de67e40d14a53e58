"""The study commands that need no model: list, status, adjudicate, report, packet, import, rate.

Packets and responses are sealed files (``app.core.packets``, ``app.core.sealed``); the passphrase comes
from the environment variable named by ``--passphrase-env``, never from the command line (argv is visible
to every user of the machine in the process list and lands in shell history).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core.errors import UsageError


def passphrase(args: argparse.Namespace) -> str:
    """The passphrase from ``--passphrase-env VAR``; UsageError if unset, empty or too short."""
    var = args.passphrase_env
    if not var:
        raise UsageError("--passphrase-env VAR is needed: the environment variable holding the passphrase")
    value = os.environ.get(var)
    if value is None:
        raise UsageError(f"environment variable {var} is not set (it must hold the passphrase)")
    from app.core.sealed import MIN_PASSPHRASE, check_passphrase  # the one floor (stdlib-only module)

    if len(value.strip()) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase in {var} is empty or shorter than {MIN_PASSPHRASE} characters")
    check_passphrase(value)
    return value


def packets() -> Any:
    """``app.core.packets``, or a UsageError saying this build has no sealed packets."""
    from app.core import packets as mod  # cryptography loads only for the packet commands

    return mod


def statistics(data: Any) -> Any:
    """``app.store.agreement.study_stats(data)`` (the one home of the study's statistics)."""
    from app.store.agreement import study_stats  # numpy/scipy load only for the commands that need them

    return study_stats(data)


def cmd_list(args: argparse.Namespace, log: Any) -> int:
    studies = log.studies()
    if args.json:
        print(json.dumps([_info_json(s) for s in studies], indent=2))
        return 0
    for s in studies:
        print(f"{s.name}\t{s.items} items x {len(s.arms)} arms\t{s.generated}/{s.answers} generated\t"
              f"raters {', '.join(s.raters)}")  # fmt: skip
    if not studies:
        print("no studies in this log", file=sys.stderr)
    return 0


def _info_json(info: Any) -> dict[str, Any]:
    keys = ("name", "uuid", "seed", "overlap", "calibration", "blinding", "rubric_version", "items", "answers",
            "generated")  # fmt: skip
    out = {k: getattr(info, k) for k in keys}
    out.update(raters=list(info.raters), adjudicators=list(info.adjudicators), arms=list(info.arms))
    return out


def cmd_status(args: argparse.Namespace, log: Any) -> int:
    info = log.study(args.name)
    stats = statistics(log.study_data(args.name))
    payload = {**stats.to_json(), "study": _info_json(info)}
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return 0
    print(f"study {info.name}: {info.items} items x {len(info.arms)} arms, {info.generated}/{info.answers} generated")
    for p in stats.progress:
        print(f"  {p.rater}: {p.rated} of {p.assigned} rated")
    print(f"alpha (ordinal): {_alpha_text(stats.alpha)}")
    print(f"  calibration subset: {_alpha_text(stats.calibration)}")
    for task, est in sorted(stats.per_task.items()):
        print(f"  {task}: {_alpha_text(est)}")
    from app.store import agreement

    for m in stats.arm_means:
        if m.task == agreement.ALL_TASKS:
            print(f"arm {m.arm}: mean {_num(m.mean)} [{_num(m.low)}, {_num(m.high)}], n = {m.answers} answers")
    for f in stats.flags:
        print(
            f"arm {f.arm}: {f.score_1} ratings of 1, {f.hallucination} hallucination flags, {f.failed} failed answers"
        )
    print(f"disagreements (raters 2+ points apart): {len(stats.disagreements)} (`study adjudicate {info.name} --list`)")
    return 0


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _alpha_text(est: Any) -> str:
    if est.alpha is None:
        return f"not available ({est.reason})"
    ci = f" [{est.low:.3f}, {est.high:.3f}]" if est.low is not None else ""
    return f"{est.alpha:.3f}{ci}, n = {est.units} answers, {est.raters} raters"


def cmd_add_adjudicator(args: argparse.Namespace, log: Any) -> int:
    info = log.add_adjudicator(args.name, args.adjudicator)
    print(f"-- study {info.name}: adjudicators {', '.join(info.adjudicators)}", file=sys.stderr)
    return 0


def cmd_adjudicate(args: argparse.Namespace, log: Any) -> int:
    if args.list:
        stats = statistics(log.study_data(args.name))
        for d in stats.to_json().get("disagreements", []):
            print(json.dumps(d, default=str))
        return 0
    missing = [flag for flag, v in (("--answer", args.answer), ("--adjudicator", args.adjudicator),
                                    ("--score", args.score), ("--reason", args.reason)) if v is None]  # fmt: skip
    if missing:
        raise UsageError(f"study adjudicate needs {', '.join(missing)} (or --list)")
    log.adjudicate(args.name, args.answer, args.adjudicator, args.score, args.reason)
    print(f"-- answer {args.answer}: final score {args.score} by {args.adjudicator}; the ratings are kept",
          file=sys.stderr)  # fmt: skip
    return 0


def cmd_report(args: argparse.Namespace, log: Any) -> int:
    from app.service.study_report import write_report  # matplotlib loads only when a report is written

    path = write_report(log.study_data(args.name), Path(args.output))
    print(f"-- wrote {path}", file=sys.stderr)
    return 0


def cmd_packet(args: argparse.Namespace, log: Any) -> int:
    from app.core.privatefile import check_output
    from resources.rubric import RUBRIC

    secret = passphrase(args)
    mod = packets()
    check_output(args.output, follow_symlinks=False, what="-o")
    info = log.study(args.name)
    items = tuple(log.packet_items(args.name, args.rater))
    packet = mod.Packet(
        study_uuid=info.uuid, study_name=info.name, rater=args.rater, blinding=info.blinding,
        rubric_version=info.rubric_version,
        rubric=[{"score": lv.score, "label": lv.label, "definition": lv.definition} for lv in RUBRIC],
        items=items, created_at=datetime.now(UTC).isoformat(),
    )  # fmt: skip
    mod.write_packet(Path(args.output), packet, secret)
    print(f"-- wrote {args.output}: {len(items)} answers for {args.rater} (sealed; give the passphrase apart)",
          file=sys.stderr)  # fmt: skip
    return 0


def cmd_import(args: argparse.Namespace, log: Any) -> int:
    secret = passphrase(args)
    info = log.study(args.name)
    responses = packets().read_responses(Path(args.file), secret, study_uuid=info.uuid)
    report = log.import_responses(args.name, responses)
    print(f"-- {report.describe()}", file=sys.stderr)
    return 0


def cmd_rate(args: argparse.Namespace) -> int:
    secret = passphrase(args)
    mod = packets()
    packet = mod.read_packet(Path(args.packet), secret)
    if args.list:
        for uid in mod.packet_answer_ids(packet):
            print(uid)
        return 0
    if not args.from_csv or not args.output:
        raise UsageError("study rate needs --list, or --from RATINGS.csv with -o RESPONSES")
    from app.core.privatefile import check_output

    check_output(args.output, follow_symlinks=False, what="-o")
    responses = mod.responses_from_csv(packet, Path(args.from_csv))
    mod.write_responses(Path(args.output), responses, secret)
    print(f"-- wrote {args.output}: {len(responses.rows)} ratings by {packet.rater} (sealed)", file=sys.stderr)
    return 0


__all__ = ["passphrase"]
