"""The ``asclepius`` command: ask, models, tasks, selftest (and the log, batch, quantize and gui groups).

Exit codes are those of app.core.errors (0 ok, 1 internal error, 2 usage, 3 bad note, 4 model problem,
5 prompt too long for the context, 6 evaluation-log problem, 7 generation failed, 130 cancelled). Errors
print one clear line to stderr, never a traceback (set ASCLEPIUS_DEBUG=1 for one).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from app import __version__
from app.core import netns
from app.core.errors import AsclepiusError, UsageError

Handler = Callable[[argparse.Namespace], int]


def _err(msg: str) -> None:
    print(f"asclepius: error: {msg}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        _err(message)
        raise SystemExit(UsageError.exit_code)


def _context(args: argparse.Namespace) -> Any:
    from app.cli.context import CliContext

    return CliContext.create(threads=getattr(args, "threads", None))


def run_cancellable(work: Callable[[threading.Event], Any]) -> Any:
    """Run ``work(cancel)`` in a thread so Ctrl+C sets ``cancel`` even during prompt processing."""
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work(cancel)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, name="asclepius-run", daemon=True)
    previous = signal.getsignal(signal.SIGINT)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        t.start()
        while t.is_alive():
            t.join(0.05)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- ask --------------------------------------------------------------------------------------------
def cmd_ask(args: argparse.Namespace) -> int:
    from app.cli.ask import ask

    return ask(args, _context(args), run_cancellable)


# -- tasks ------------------------------------------------------------------------------------------
def cmd_tasks(args: argparse.Namespace) -> int:
    from app.core.config import Paths, load_config
    from app.core.limits import answer_cap
    from resources import PRESETS_VERSION, TASKS

    try:
        setting = load_config(Paths.default()).generation.max_tokens
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    caps = {t.name: answer_cap(t.max_tokens, setting) for t in TASKS}
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": t.name,
                        "slug": t.slug,
                        "description": t.description,
                        "examples": list(t.examples),
                        "max_tokens": t.max_tokens,
                        "answer_cap": caps[t.name].tokens,
                        "answer_cap_source": caps[t.name].source,
                        "temperature": t.temperature,
                    }
                    for t in TASKS
                ],
                indent=2,
            )
        )
        return 0
    print(f"Task presets (version {PRESETS_VERSION})\n")
    for t in TASKS:
        print(f"{t.name}  [--task {t.slug}]  (up to {caps[t.name].describe()})")
        print(f"  {t.description}")
        for ex in t.examples:
            print(f"    - {ex}")
        print()
    return 0


# -- models -----------------------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    from app.cli.models import models_command

    return models_command(args, _context(args))


# -- selftest ---------------------------------------------------------------------------------------
def cmd_selftest(args: argparse.Namespace) -> int:
    from app.cli.selftest import selftest

    return selftest(args, _context(args), run_cancellable)


@netns.uses_display
def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from app.qt.main import run_gui
    except ImportError as exc:
        raise UsageError(f"the desktop app is not available: {exc}") from None
    return run_gui(sys.argv[:1])


def build_parser() -> argparse.ArgumentParser:
    from app.cli import validators as v

    p = _Parser(prog="asclepius", description="Offline clinical-note assistant (Asclepius models, llama.cpp).")
    p.add_argument("--version", action="version", version=f"asclepius-desk {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    a = sub.add_parser("ask", help="answer instructions about one discharge summary (streamed)")
    a.add_argument(
        "instruction", nargs="+", type=v.text, help="the instruction or question (several: answered together)"
    )
    a.add_argument("--note", required=True, help="note file, or - for standard input")
    a.add_argument("--task", required=True, help="task name or slug (see `asclepius tasks`)")
    a.add_argument(
        "--model", type=v.model_ref, help="GGUF path or registered sha256/file name (default: the default model)"
    )
    a.add_argument("--max-tokens", type=v.max_tokens, help="answer token limit (default: min(Settings cap, task's))")
    a.add_argument("--temperature", type=v.temperature, help="0 = greedy (default: the Settings value)")
    a.add_argument("--seed", type=v.seed, default=None, help="default: the Settings value")
    a.add_argument(
        "--prompt-style", type=v.prompt_style, help="override the model's prompt style (asclepius, plain-qa, ...)"
    )
    a.add_argument("--truncate", action="store_true", help="cut the note to fit the context, and say where")
    a.add_argument("--threads", type=v.threads, help="CPU threads (default: from the config)")
    a.add_argument("--json", action="store_true", help="print the run result as JSON to stdout at the end")
    a.add_argument("--no-log", action="store_true", help="do not record this run in the evaluation log")
    a.add_argument(
        "--lookup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="prompt-lookup drafts for greedy answers (default: the Settings value, off); a near-tied token "
        "can come out otherwise than without it",
    )
    a.add_argument(
        "--parallel", type=int, help="answers decoded together (default: chosen from the context; 1 = in turn)"
    )
    a.set_defaults(func=cmd_ask)

    t = sub.add_parser("tasks", help="list the eight task presets with example instructions")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tasks)

    m = sub.add_parser("models", help="the model registry: list, import, info, verify, remove, rename, set-default")
    msub = m.add_subparsers(dest="models_command", required=True, metavar="ACTION", parser_class=_Parser)
    msub.add_parser("list", help="registered models, their status and where they are").add_argument(
        "--json", action="store_true"
    )
    mi = msub.add_parser("import", help="register a GGUF file (checked, sha256 computed once)")
    mi.add_argument("path")
    mi.add_argument("--prompt-style", type=v.prompt_style, help="prompt style to use with this model")
    mi.add_argument("--name", help="the name shown for this model (default: from the GGUF)")
    copy = mi.add_mutually_exclusive_group()
    copy.add_argument(
        "--copy",
        dest="copy",
        action="store_true",
        default=None,
        help="copy the file into the app's model library first (the default for removable media)",
    )
    copy.add_argument("--no-copy", dest="copy", action="store_false", help="register the file where it is")
    mi.add_argument("--set-default", action="store_true")
    info = msub.add_parser("info", help="metadata of a registered model or a GGUF path")
    info.add_argument(
        "model", nargs="?", type=v.model_ref, help="path, sha256 prefix, file name or name (default: the default model)"
    )
    info.add_argument("--json", action="store_true")
    ver = msub.add_parser("verify", help="recompute a model's sha256 and compare")
    ver.add_argument("model")
    rm = msub.add_parser("remove", help="forget a model (your file stays; a library copy is deleted if you confirm)")
    rm.add_argument("model", help="path, sha256 prefix, file name or name")
    keep = rm.add_mutually_exclusive_group()
    keep.add_argument("--delete-copy", action="store_true", help="delete the app's library copy without asking")
    keep.add_argument("--keep-copy", action="store_true", help="keep the app's library copy without asking")
    rn = msub.add_parser("rename", help="change the name shown for a model")
    rn.add_argument("model", help="path, sha256 prefix, file name or name")
    rn.add_argument("name")
    sd = msub.add_parser("set-default", help="the model used when none is given")
    which = sd.add_mutually_exclusive_group(required=True)
    which.add_argument("model", nargs="?", help="path, sha256 prefix, file name or name")
    which.add_argument("--demo", action="store_true", help="the embedded demo model")
    m.set_defaults(func=cmd_models)

    s = sub.add_parser("selftest", help="offline end-to-end check on the default model")
    s.add_argument("--threads", type=v.threads)
    s.set_defaults(func=cmd_selftest)

    g = sub.add_parser("gui", help="start the desktop app")
    g.set_defaults(func=cmd_gui)

    for register in _plugins():
        register(sub)
    return p


def _plugins() -> list[Callable[[Any], None]]:
    """Subcommand groups that live beside the core (ground, evaluation log, batch, study, eval, cache, policy,
    quantize, data, judge, train)."""
    from app.cli import batch, cache, evaluate, ground, log_cmds, policy_cmd, study
    from quantize import cli as quantize_cli

    plugins = [
        ground.register,
        log_cmds.register,
        batch.register,
        study.register,
        evaluate.register,
        cache.register,
        policy_cmd.register,
        quantize_cli.register,
    ]
    try:
        from training.data import cli as data_cli  # the `data` and `judge` groups (argparse only until run)
    except ImportError:  # a desktop bundle without training/
        return plugins
    plugins.append(data_cli.register)
    try:  # argparse only: torch is imported when a train command runs
        from training.trainer import cli as train_cli
    except ImportError:
        return plugins
    return [*plugins, train_cli.register]


def load_policy_or_refuse() -> Any:
    """The policy in force (app/core/policy.py); a broken policy file raises PolicyError and no command runs. A
    key of the user's own file that the machine policy locks is a notice, once per command."""
    from app.core.config import Paths
    from app.core.policy import load_policy

    policy = load_policy(Paths.default().policy_file)
    if policy.refused:
        print(
            f"-- notice: {policy.user_file or 'your policy file'} sets {', '.join(policy.refused)}, which "
            f"{policy.set_by(policy.refused[0]) or 'the machine policy'} locks: not applied",
            file=sys.stderr,
        )
    return policy


def protect(args: argparse.Namespace, isolate: bool, policy: Any = None) -> netns.Protection:
    """Fence the network for the parsed command, before it loads llama.cpp or Qt or starts a thread.

    Every command enters the network namespace (when ``isolate``) and gets the blocking audit hook, except
    a handler marked ``@netns.calls_endpoint(...)`` whose URL is set: it stays in the host namespace, the
    hook lets it reach that URL's host and port only, and it says so on stderr. Its URL is first put to the
    policy (``policy``, default the one in force): every endpoint command passes here, so this is the one
    place ``endpoint_commands`` and ``allowed_endpoint_hosts`` are enforced, before any lookup or connect.
    """
    from app.core import netguard

    endpoint = netns.endpoint_of(args.func, args)
    if endpoint:
        action = getattr(args, f"{args.command}_command", None)  # `study create`, not just `study`
        (policy or load_policy_or_refuse()).check_endpoint(
            endpoint, f"{args.command} {action}" if action else args.command
        )
    guard = netguard.install(block=True)
    if endpoint:
        try:
            allowed = netguard.Endpoint.parse(endpoint)
            guard.allow_only(endpoint)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        netns.record_exempt(endpoint, args.command)
        print(
            f"asclepius: {args.command} connects to {endpoint} only (host {allowed.host}, port {allowed.port}); "
            "it runs outside the network namespace and every other address is blocked",
            file=sys.stderr,
        )
    else:
        guard.allow_only(None)
        if isolate:
            netns.enter(needs_display=netns.needs_display(args.func))
    return netns.protection()


def is_the_program(argv: Sequence[str] | None, isolate: bool | None) -> bool:
    """Whether ``main`` moves this process into the network namespace: ``isolate`` when given, else when the
    process *is* the ``asclepius`` program: the console script (``argv`` None) or a frozen bundle, which runs
    nothing but this program whatever argv its entry passes (installer/frozen_entry.py passes ``isolate=True``
    too). Tests calling ``main([...])`` inside pytest's process leave it where it is."""
    if isolate is not None:
        return isolate
    return argv is None or bool(getattr(sys, "frozen", False))


def main(argv: Sequence[str] | None = None, *, isolate: bool | None = None) -> int:
    """Run one command. ``isolate`` (default: :func:`is_the_program`) moves the process into the network
    namespace first."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        policy = load_policy_or_refuse()  # fail closed: a broken policy file refuses every command
        protect(args, isolate=is_the_program(argv, isolate), policy=policy)
        return int(args.func(args) or 0)
    except AsclepiusError as exc:
        _err(str(exc))
        if netns.needs_display(args.func):  # started from the desktop menu: no terminal shows stderr
            from app.qt.main import show_startup_error

            with contextlib.suppress(Exception):
                show_startup_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("cancelled")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("ASCLEPIUS_DEBUG"):
            raise
        _err(f"unexpected {type(exc).__name__}: {exc} (set ASCLEPIUS_DEBUG=1 for details)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
