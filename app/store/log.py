"""The evaluation log's public API: one object per open database, handed to whoever needs it.

Front ends do not drive a run themselves: ``app.service.AskService`` does, with one exception policy::

    log = EvalLog.open(database_path(paths, config), store_note_text=config.store_note_text)
    outcome = AskService.for_engine(engine, log, config.generation).ask(request)
    # inside: run_id = log.start_run(request, model)   row inserted as "started"
    #         engine.ask(...)                          raised -> log.fail_run(run_id, message, reason)
    #         log.finish_run(run_id, result)           finished, with full provenance and grounding
    log.close()

Note text is patient data: it is stored only when ``store_note_text`` is true, is never written to a
log message or an error, and is left out of exports on request.

``EvalLog`` is composed by concern: the run lifecycle and batches (``runs.py``), ratings, comparisons and
blinding (``ratings.py``), the reads (``reads.py``) and evaluation studies (``studies.py``,
``study_rate.py``), over the open database and its one transaction helper, ``write_session()`` /
``read_session()`` (``base.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from app.store import db
from app.store.eval_scores import EvalScoresMixin
from app.store.notes import NotesMixin
from app.store.packet_progress import PacketProgressMixin
from app.store.ratings import RatingsMixin
from app.store.reads import ReadsMixin
from app.store.runs import RunsMixin
from app.store.studies import StudiesMixin


# Mixins rather than delegation: every part works on the same open database, sessions and id caches
# (``LogBase``), and callers keep one object with one flat API (``log.start_run``, ``log.add_rating``,
# ``log.list_runs``). Delegation would need a forwarding method here for each of the ~30 public methods,
# the repetition this split removes; the parts share no method names, so the order of the bases is moot.
class EvalLog(StudiesMixin, RunsMixin, RatingsMixin, ReadsMixin, NotesMixin, PacketProgressMixin, EvalScoresMixin):
    """An open evaluation log. Thread-safe for the usual pattern (one session per call)."""

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        store_note_text: bool = True,
        timeout_s: float = db.DEFAULT_TIMEOUT_S,
        check_integrity: bool = True,
        create: bool = True,
    ) -> EvalLog:
        """Open (migrating as needed) the log at ``path``; StoreError if it cannot be used. A missing log is
        created, or with ``create=False`` refused (nothing is created)."""
        p = Path(path).expanduser().absolute()
        options = db.OpenOptions(timeout_s=timeout_s, check_integrity=check_integrity, create=create)
        engine = db.open_engine(p, options)
        return cls(p, engine, store_note_text)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EvalLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EvalLog"]
