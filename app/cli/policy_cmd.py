"""``asclepius policy``: the organisation's policy in force and where each value comes from (app/core/policy.py).

An administrator checks a rolled-out ``/etc/asclepius-desk/policy.toml`` with it (``--json`` for scripts); a
broken file never gets here: ``app.cli.main`` refuses every command first (exit 9) and names the problem.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def policy_lines(policy: Any) -> list[str]:
    """The policy as text lines: the files, then each key's value and source (also printed by selftest)."""
    machine = policy.machine_file
    head = f"machine policy: {machine}" + ("" if machine.exists() else " (none)")
    if policy.user_file is not None:
        user = f"user policy: {policy.user_file}" + ("" if policy.user_file.exists() else " (none)")
    else:
        user = "user policy: not read (allow_user_override = false)"
    lines = [head, user]
    rows = policy.rows()
    kw, vw = max(len(k) for k, _, _ in rows), max(len(v) for _, v, _ in rows)
    lines += [f"  {key:<{kw}}  {value:<{vw}}  [{source}]" for key, value, source in rows]
    if policy.refused:
        lines.append(f"  not applied from the user policy (locked): {', '.join(policy.refused)}")
    return lines


def cmd_policy(args: argparse.Namespace) -> int:
    from app.core.config import Paths
    from app.core.policy import load_policy

    policy = load_policy(Paths.default().policy_file)
    if args.json:
        doc = {
            "machine_file": str(policy.machine_file),
            "user_file": str(policy.user_file) if policy.user_file else None,
            "in_force": policy.in_force,
            "keys": {
                key: {
                    "value": list(v) if isinstance(v := getattr(policy.policy, key), tuple) else v,
                    "source": str(policy.sources[key]) if key in policy.sources else None,
                    "locked": key in policy.locked and key in policy.sources,
                }
                for key, _, _ in policy.rows()
            },
            "refused": list(policy.refused),
        }
        print(json.dumps(doc, indent=2))
        return 0
    print("\n".join(policy_lines(policy)))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("policy", help="the organisation's policy in force and the source of each value")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy)
