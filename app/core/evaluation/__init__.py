"""Task evaluation against gold annotations, offline: suites as data, gold loaders, scorers, answers files.

Qt-free, no model and no log (stdlib + numpy): answers come from the ask-and-log service, scores go to the
log, and the statistics over items live in ``app.service.evaluation``.

* ``suites``: ``Suite``, ``load_suite`` (a built-in name of ``BUILTIN_SUITES`` or a JSON/YAML file);
* ``loaders`` (+ ``gold``): ``load_items(suite, path) -> list[EvalItem]`` from PubTator, BioC JSON, PubMedQA
  JSON or a CSV/JSON Lines table;
* ``scorers``: ``score_item(suite, item, answer) -> ItemScore``; what counts as a match is written in
  ``scorers`` and ``match``; ROUGE-L in ``rouge``;
* ``answers``: ``read_answers`` (JSON Lines id/answer), ``answers_for``, ``items_records``.
"""

from __future__ import annotations

from app.core.evaluation.answers import answers_for, items_records, read_answers
from app.core.evaluation.gold import Gold, GoldMention
from app.core.evaluation.loaders import EvalItem, load_items, load_items_with_notes
from app.core.evaluation.scorers import CORPUS_METRICS, ItemScore, parse_decision, score_item
from app.core.evaluation.suites import BUILTIN_SUITES, Suite, load_suite

__all__ = [
    "BUILTIN_SUITES",
    "CORPUS_METRICS",
    "EvalItem",
    "Gold",
    "GoldMention",
    "ItemScore",
    "Suite",
    "answers_for",
    "items_records",
    "load_items",
    "load_items_with_notes",
    "load_suite",
    "parse_decision",
    "read_answers",
    "score_item",
]
