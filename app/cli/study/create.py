"""``study create`` and ``study generate``: a study recorded from an items file (read as ``batch`` reads
it) and its answers generated through the ask service, local models one at a time or an endpoint.

Creating again with the same name and the same items and arms goes on generating what is missing (so the
command can simply be run again after Ctrl-C or a dead server); ``study generate NAME`` does the same with
the settings recorded at creation.
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from app.cli.batch.items import BatchItem, check_input, parse_input
from app.cli.batch.options import endpoint_settings
from app.core.errors import Cancelled, UsageError
from app.service import SamplingOverrides
from app.service.study import GenerateCounts, Generation, generate_answers
from app.store.studies import LoggedRun, NewStudy, NewStudyArm, NewStudyItem, PendingAnswer

MAX_LISTED = 20


@dataclass(frozen=True)
class CreateOptions:
    """``study create``, checked before the log is opened or a model loads."""

    name: str
    items_path: Path | None
    """The items file (CSV or JSON Lines, the columns of ``batch``); None with ``from_batches``."""
    from_batches: tuple[int, ...]
    """``--from-batch``: the study's answers are these batches' logged runs (nothing is generated)."""
    models: tuple[str, ...]
    """``--model`` references, one arm each (empty with ``--endpoint``)."""
    raters: tuple[str, ...]
    adjudicators: tuple[str, ...]
    overlap: int
    calibration: int
    seed: int
    blinding: str
    explicit: SamplingOverrides
    """Sampling flags (``--max-tokens``, ``--temperature``, ``--sampling-seed``)."""
    prompt_style: str | None
    endpoint: Any
    """``EndpointSettings`` with ``--endpoint``; None: local models."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CreateOptions:
        endpoint = endpoint_settings(args)  # every remote flag checked (and mixed-up flags refused) first
        problems = []
        raters = names(args.raters)
        if not raters:
            problems.append("--raters needs at least one name (a,b,c)")
        batches = tuple(args.from_batch or ())
        if bool(args.items) == bool(batches):
            problems.append("give the items: --items FILE (answers generated) or --from-batch ID (logged runs)")
        if batches and (args.model or endpoint is not None):
            problems.append("--from-batch takes its arms from the logged runs: leave --model and --endpoint out")
        if args.items and not args.model and endpoint is None:
            problems.append("give the arms: --model M (repeat for several) or --endpoint URL --endpoint-model NAME")
        if len(set(args.model or ())) != len(args.model or ()):
            problems.append("a --model is given twice")
        if problems:
            raise UsageError("; ".join(problems))
        path = Path(args.items) if args.items else None
        if path is not None:
            check_input(path)
        return cls(
            name=args.name, items_path=path, from_batches=batches, models=tuple(args.model or ()), raters=raters,
            adjudicators=names(args.adjudicators), overlap=args.overlap, calibration=args.calibration,
            seed=args.seed, blinding=args.blinding,
            explicit=SamplingOverrides(max_tokens=args.max_tokens, temperature=args.temperature,
                                       seed=args.sampling_seed),
            prompt_style=args.prompt_style, endpoint=endpoint,
        )  # fmt: skip


def names(value: str | None) -> tuple[str, ...]:
    """A comma-separated list of names, stripped, empty ones left out."""
    return tuple(n.strip() for n in (value or "").split(",") if n.strip())


def read_items(path: Path) -> tuple[NewStudyItem, ...]:
    """Every row of the items file; UsageError naming the bad rows (a study's design has no holes)."""
    parsed = parse_input(path)
    if parsed.errors:
        listed = "".join(f"\n  line {line}: {why}" for line, why in parsed.errors[:MAX_LISTED])
        raise UsageError(f"{path.name}: {len(parsed.errors)} row(s) refused; fix them first:{listed}")
    return tuple(NewStudyItem(_key(it), it.note, it.task, it.instruction) for it in parsed.items)


def _key(item: BatchItem) -> str:
    return item.item_id or f"line-{item.line}"


def arms_of(models: list[Any], endpoint: Any) -> tuple[NewStudyArm, ...]:
    """One arm per model (labelled by its name, or file name where names repeat), or the endpoint's."""
    if endpoint is not None:
        label = f"{endpoint.served_model} @ {endpoint.public_url}"[:128]
        return (NewStudyArm(label, None, endpoint.public_url, endpoint.served_model),)
    if len({m.sha256 for m in models}) != len(models):
        raise UsageError("two --model name the same model file")
    repeated = len({m.name for m in models}) != len(models)
    return tuple(NewStudyArm((m.file_name if repeated else m.name)[:128], m.sha256) for m in models)


def settings_of(opts: CreateOptions, items_sha256: str) -> dict[str, Any]:
    """What a later ``study generate`` needs to generate the same way (no credentials: the key's variable
    name only)."""
    remote = None
    if opts.endpoint is not None:
        remote = {f.name: getattr(opts.endpoint, f.name) for f in fields(opts.endpoint) if f.name != "base_url"}
        remote["base_url"] = opts.endpoint.public_url
    return {
        "items": {"name": opts.items_path.name, "sha256": items_sha256},
        "sampling": opts.explicit.given(),
        "prompt_style": opts.prompt_style,
        "endpoint": remote,
    }


def create(opts: CreateOptions, ctx: Any, log: Any, cancel: threading.Event) -> int:
    """Record the study (or find it again) and generate its missing answers; the exit code."""
    from app.core.hashing import sha256_file
    from resources.rubric import RUBRIC_VERSION

    if opts.items_path is None:
        return create_from_runs(opts, log)
    items_sha = sha256_file(opts.items_path)
    models = [ctx.model(m) for m in opts.models] if opts.endpoint is None else []
    arms = arms_of(models, opts.endpoint)
    existing = {s.name: s for s in log.studies()}.get(opts.name)
    if existing is not None:
        if existing.settings.get("items", {}).get("sha256") != items_sha or existing.arms != tuple(
            a.label for a in arms
        ):
            raise UsageError(f"a study named {opts.name!r} exists with other items or arms; choose another name")
        print(f"-- study {opts.name}: exists; generating what is missing", file=sys.stderr)
    else:
        spec = NewStudy(
            name=opts.name, items=read_items(opts.items_path), arms=arms, raters=opts.raters,
            overlap=opts.overlap, calibration=opts.calibration, seed=opts.seed, blinding=opts.blinding,
            adjudicators=opts.adjudicators, rubric_version=RUBRIC_VERSION, settings=settings_of(opts, items_sha),
        )  # fmt: skip
        info = log.create_study(spec)
        print(
            f"-- study {info.name} ({info.uuid}): {info.items} items x {len(info.arms)} arms, raters "
            f"{', '.join(info.raters)}, overlap {info.overlap}, calibration {info.calibration}, seed {info.seed}",
            file=sys.stderr,
        )
    return generate(opts.name, ctx, log, cancel, opts.endpoint)


FromRuns = tuple[tuple[NewStudyItem, ...], tuple[NewStudyArm, ...], dict[tuple[int, int], int], int]
"""(items, arms, (item index, arm index) -> run id, items left out)."""


def from_runs(runs: list[LoggedRun]) -> FromRuns:
    """Items, arms and (item, arm) -> run from logged runs: an arm per model (or endpoint), an item per note,
    task and instruction, the latest run where an arm answered an item twice; items some arm did not answer
    are left out (their count is the last value: the caller says so)."""
    arm_of: dict[tuple[str, str | None], int] = {}
    item_of: dict[tuple[str, str, str], int] = {}
    latest: dict[tuple[int, int], LoggedRun] = {}
    for r in runs:  # oldest first: a later run of the same item and arm replaces an earlier one
        a = arm_of.setdefault((r.model_sha256, r.endpoint), len(arm_of))
        i = item_of.setdefault((r.note, r.task, r.instruction), len(item_of))
        latest[(i, a)] = r
    complete = [i for i in range(len(item_of)) if all((i, a) in latest for a in range(len(arm_of)))]
    firsts = {a: next(r for (_, aa), r in latest.items() if aa == a) for a in range(len(arm_of))}
    names = [firsts[a].model_name if firsts[a].endpoint is None else f"{firsts[a].served_model} @ {firsts[a].endpoint}"
             for a in range(len(arm_of))]  # fmt: skip
    if len(set(names)) != len(names):
        names = [f"{n} ({firsts[a].model_sha256[:8]})" for a, n in enumerate(names)]
    arms = tuple(NewStudyArm(n[:128], firsts[a].model_sha256, firsts[a].endpoint, firsts[a].served_model)
                 for a, n in enumerate(names))  # fmt: skip
    keyed = {v: k for k, v in item_of.items()}
    items = tuple(NewStudyItem(f"run-{latest[(i, 0)].id}", keyed[i][0], keyed[i][1], keyed[i][2]) for i in complete)
    mapping = {(n, a): latest[(i, a)].id for n, i in enumerate(complete) for a in range(len(arm_of))}
    return items, arms, mapping, len(item_of) - len(complete)


def create_from_runs(opts: CreateOptions, log: Any) -> int:
    """A study whose answers are the logged runs of ``opts.from_batches`` (nothing to generate)."""
    from resources.rubric import RUBRIC_VERSION

    items, arms, mapping, dropped = from_runs(log.runs_for_study(opts.from_batches))
    if dropped:
        print(f"-- {dropped} item(s) left out: not every arm answered them", file=sys.stderr)
    spec = NewStudy(
        name=opts.name, items=items, arms=arms, raters=opts.raters, overlap=opts.overlap,
        calibration=opts.calibration, seed=opts.seed, blinding=opts.blinding, adjudicators=opts.adjudicators,
        rubric_version=RUBRIC_VERSION, settings={"from_batches": list(opts.from_batches)}, runs=mapping,
    )  # fmt: skip
    info = log.create_study(spec)
    print(f"-- study {info.name} ({info.uuid}): {info.items} items x {len(info.arms)} arms from logged runs "
          f"({', '.join(info.arms)})", file=sys.stderr)  # fmt: skip
    return 0


def generate(name: str, ctx: Any, log: Any, cancel: threading.Event, endpoint: Any = None) -> int:
    """Generate the study's pending answers with the recorded settings; the exit code."""
    info = log.study(name)
    settings = info.settings
    how = Generation(
        ctx.config.generation, SamplingOverrides(**settings.get("sampling", {})), settings.get("prompt_style")
    )

    def open_engine(p: PendingAnswer) -> Any:
        if p.endpoint is not None:
            if endpoint is None:
                raise UsageError(f"study {name!r} is answered by {p.endpoint}: give --endpoint {p.endpoint} again")
            from app.core.remote import RemoteEngine

            return RemoteEngine(endpoint)
        return ctx.engine(ctx.model(p.model_sha256))

    def progress(p: PendingAnswer, outcome: str) -> None:
        if outcome.startswith("failed"):
            print(f"-- item {p.item_key}, arm {p.arm}: {outcome}", file=sys.stderr)

    counts = generate_answers(log, name, open_engine, how, cancel, progress)
    return _summary(name, counts)


def _summary(name: str, counts: GenerateCounts) -> int:
    print(
        f"-- study {name}: {counts.answered} answers generated, {counts.failed} failed (kept: raters rate them), "
        f"{counts.claimed} done elsewhere, {counts.left} left",
        file=sys.stderr,
    )
    if counts.left:
        print(f"-- run `asclepius study generate {name}` to generate the rest", file=sys.stderr)
        return Cancelled.exit_code
    return 0


def endpoint_for_generate(args: argparse.Namespace, info: Any) -> Any:
    """The endpoint settings recorded for the study, if ``--endpoint`` names its URL (else UsageError)."""
    recorded = info.settings.get("endpoint")
    if not getattr(args, "endpoint", None):
        return None
    if recorded is None:
        raise UsageError(f"study {info.name!r} is answered by local models; leave --endpoint out")
    from app.core.openai_policy import EndpointSettings

    settings = EndpointSettings(**recorded)
    if settings.public_url != EndpointSettings(base_url=args.endpoint, served_model="x").public_url:
        raise UsageError(f"study {info.name!r} is answered by {settings.public_url}, not {args.endpoint}")
    return settings


__all__ = ["CreateOptions", "create", "endpoint_for_generate", "generate", "names", "read_items"]
