"""The evaluation log: every run, rating and comparison, in a local SQLite database.

Public API: :class:`EvalLog` (open, write, query), :class:`RunFilter`, the view dataclasses, and the
export / import / statistics functions in ``app.store.export``, ``app.store.ratings_import`` and
``app.store.stats``. No Qt, torch or transformers here.
"""

from app.store.log import EvalLog
from app.store.queries import (
    ComparisonView,
    ModelView,
    NoteView,
    RaterView,
    RatingView,
    RunFilter,
    RunQuery,
    RunView,
)
from app.store.runs import params_hash, resume_key

__all__ = [
    "ComparisonView",
    "EvalLog",
    "ModelView",
    "NoteView",
    "RaterView",
    "RatingView",
    "RunFilter",
    "RunQuery",
    "RunView",
    "params_hash",
    "resume_key",
]
