"""Evaluation suites as data: which task, which gold format, which instructions, which scorer, how many items.

A suite is a small JSON (or YAML, when PyYAML is installed) object:

```json
{"name": "ncbi-disease", "task": "Named Entity Recognition", "loader": "pubtator", "scorer": "ner",
 "instructions": ["List every disease mentioned in the text, one per line."], "sample": null, "seed": 0}
```

Required: ``name``, ``task`` (a task of ``resources.tasks``, by name or slug), ``loader`` (``LOADERS``),
``scorer`` (``SCORERS``), ``instructions`` (one template or a list; ``{field}`` placeholders take an item's
fields, e.g. PubMedQA's ``{question}``). Optional: ``sample`` (items drawn, null = all), ``seed`` (the draw's
seed, default 0), ``entity_types`` / ``relation_types`` (gold types kept; empty = all), ``description``.
Unknown keys are refused too (a misspelt ``scorrer`` must not silently mean "the default").

The built-in suites (``BUILTIN_SUITES``) are data files in ``suites/`` shipped with the package; the project
ships no corpus: every suite reads the files the user points at.
"""

from __future__ import annotations

import importlib.resources as ir
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import safejson
from app.core.errors import UsageError
from app.core.evaluation.files import read_text
from resources.tasks import get_task

LOADERS = ("pubtator", "bioc", "pubmedqa", "table")
"""Gold formats: PubTator (NCBI disease, BC5CDR), BioC JSON, PubMedQA JSON, CSV/JSON Lines tables."""
SCORERS = ("ner", "relation", "decision", "rouge", "support")
"""How an answer is scored (``app.core.evaluation.scorers``)."""
SCORER_LOADERS = {
    "ner": ("pubtator", "bioc"),
    "relation": ("bioc",),
    "decision": ("pubmedqa", "table"),
    "rouge": ("pubmedqa", "table"),
    "support": LOADERS,
}
"""The gold formats that carry what each scorer needs (mentions, relations, a decision, a reference)."""
LOADER_FIELDS: dict[str, tuple[str, ...] | None] = {
    "pubtator": ("id", "title", "abstract"),
    "bioc": ("id",),
    "pubmedqa": ("id", "question"),
    "table": None,  # every column of the file: checked when the items are read
}
"""The ``{field}`` placeholders an instruction template may use, per loader."""
BUILTIN_SUITES = ("ncbi-disease", "pubmedqa", "bioc-ner", "bioc-re")
"""Suites usable by name (``app/core/evaluation/suites/<name>.json``)."""
MAX_SUITE_BYTES = 1 << 20
"""A suite file is a few hundred bytes; anything over a megabyte is the wrong file."""
_REQUIRED = ("name", "task", "loader", "scorer", "instructions")
_OPTIONAL = ("sample", "seed", "entity_types", "relation_types", "description")


@dataclass(frozen=True)
class Suite:
    """One evaluation suite (see the module docstring for the file format)."""

    name: str
    """Short name, used in the log and the reports."""
    task: str
    """The task preset's full name (``resources.tasks``): sampling defaults and grounding follow it."""
    loader: str
    """The gold format (``LOADERS``)."""
    instructions: tuple[str, ...]
    """Instruction templates; with several, every document is asked once per template."""
    scorer: str
    """``SCORERS``."""
    sample: int | None = None
    """Documents drawn (seeded, without replacement); None: every document of the file."""
    seed: int = 0
    """Seed of the draw: the same file, size and seed give the same items."""
    entity_types: tuple[str, ...] = ()
    """Gold mention types kept (compared ignoring case); empty: all."""
    relation_types: tuple[str, ...] = ()
    """Gold relation types kept (compared ignoring case); empty: all."""
    description: str = ""
    """What the suite measures, in words."""


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a template uses; ValueError when it is not a valid format string."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


def _strings(value: Any, key: str, problems: list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key} must be text or a list of text")
        return ()
    return tuple(value)


def _instructions(value: Any, loader: str, problems: list[str]) -> tuple[str, ...]:
    templates = _strings(value, "instructions", problems)
    if not templates and not problems:
        problems.append("instructions must hold at least one instruction")
    allowed = LOADER_FIELDS.get(loader)
    for t in templates:
        if not t.strip():
            problems.append("an instruction is empty")
            continue
        try:
            fields = template_fields(t)
        except ValueError as exc:
            problems.append(f"instruction {t!r} is not a valid template ({exc}; write {{{{ and }}}} for braces)")
            continue
        bad = [f for f in fields if not f.isidentifier() or (allowed is not None and f not in allowed)]
        if bad:
            known = ", ".join(allowed or ()) or "the columns of the file"
            problems.append(
                f"instruction {t!r} uses unknown field(s) {', '.join(bad)} (the {loader} loader has: {known})"
            )
    return templates


def _whole(value: Any, key: str, problems: list[str], minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{key} must be a whole number of at least {minimum}, not {value!r}")
        return None
    return value


def suite_from_dict(data: Any, where: str) -> Suite:
    """A checked ``Suite`` from a parsed suite file; one ``UsageError`` naming ``where`` and every problem."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: a suite must be an object with {', '.join(_REQUIRED)}")
    problems = [f"missing field {k!r}" for k in _REQUIRED if k not in data]
    problems += [
        f"unknown field {k!r} (known: {', '.join(_REQUIRED + _OPTIONAL)})"
        for k in data
        if k not in _REQUIRED + _OPTIONAL
    ]
    texts = {k: data.get(k, "") for k in ("name", "task", "loader", "scorer", "description")}
    for k, v in texts.items():
        if not isinstance(v, str):
            problems.append(f"{k} must be text, not {type(v).__name__}")
            texts[k] = ""
    name, loader, scorer = texts["name"].strip(), texts["loader"], texts["scorer"]
    if "name" in data and not name:
        problems.append("name is empty")
    task = ""
    if texts["task"]:
        try:
            task = get_task(texts["task"]).name
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    if "loader" in data and loader not in LOADERS:
        problems.append(f"unknown loader {loader!r} (known: {', '.join(LOADERS)})")
    if "scorer" in data and scorer not in SCORERS:
        problems.append(f"unknown scorer {scorer!r} (known: {', '.join(SCORERS)})")
    elif scorer in SCORERS and loader in LOADERS and loader not in SCORER_LOADERS[scorer]:
        problems.append(
            f"the {scorer} scorer needs gold from a {' or '.join(SCORER_LOADERS[scorer])} file, not {loader}"
        )
    instructions = _instructions(data.get("instructions"), loader, problems) if "instructions" in data else ()
    sample = _whole(data.get("sample"), "sample", problems, 1)
    seed = _whole(data.get("seed", 0), "seed", problems, 0) or 0
    entity_types = _strings(data.get("entity_types", []), "entity_types", problems)
    relation_types = _strings(data.get("relation_types", []), "relation_types", problems)
    if problems:
        raise UsageError(f"{where}: not a valid suite: " + "; ".join(problems))
    return Suite(
        name, task, loader, instructions, scorer, sample, seed, entity_types, relation_types, texts["description"]
    )


def _parse(text: str, where: str, yaml_file: bool) -> Any:
    if yaml_file:
        try:
            import yaml  # optional: PyYAML comes with the training extra, not with the app
        except ImportError:
            raise UsageError(
                f"{where}: reading a YAML suite needs PyYAML (pip install pyyaml); or write it as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: not valid YAML ({exc})") from None
    try:
        return safejson.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None


def builtin_suite(name: str) -> Suite:
    """A built-in suite by name (``BUILTIN_SUITES``)."""
    text = ir.files("app.core.evaluation").joinpath("suites", f"{name}.json").read_text(encoding="utf-8")
    return suite_from_dict(_parse(text, f"built-in suite {name}", False), f"built-in suite {name}")


def load_suite(name_or_path: str | Path) -> Suite:
    """A built-in suite by name, or a suite file (``.json``, ``.yaml``/``.yml``); ``UsageError`` naming the
    problem (not found, unreadable, not JSON/YAML, unknown scorer or loader, a missing field, a wrong type)."""
    key = str(name_or_path)
    if key in BUILTIN_SUITES:
        return builtin_suite(key)
    path = Path(key)
    if not path.exists():
        raise UsageError(f"unknown suite {key!r}: not a built-in suite ({', '.join(BUILTIN_SUITES)}) nor a file")
    text = read_text(path, "suite file", MAX_SUITE_BYTES)
    return suite_from_dict(_parse(text, str(path), path.suffix.lower() in (".yaml", ".yml")), str(path))
