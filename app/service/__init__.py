"""The one "ask and log" path under every front end (CLI ``ask`` and ``batch``, the Ask screen, Run all
tasks, Compare, re-run from History).

Layering: ``resources`` <- ``app.core`` <- ``app.store`` <- ``app.service`` <- ``app.qt`` / ``app.cli``.
The service imports core and (for types only) nothing of the store: it records runs through the
:class:`RunSink` protocol, which ``app.store.EvalLog`` satisfies.

Typical use::

    svc = AskService(engine_for, log, config.generation)          # or AskService.for_engine(engine, log, ...)
    req = svc.request(note, "qa", "What was the creatinine?",     # validates note, task, instruction once;
                      explicit=SamplingOverrides(max_tokens=64))  # resolves sampling (see sampling.py)
    out = svc.ask(req, on_token=print, cancel=event)              # start -> ask -> finish-or-fail
    out.result        # RunResult as logged (answer without leading whitespace, grounding summary)
    out.grounding     # the full GroundingReport (offsets in answer and in out.note), computed once
    out.run_id        # row id in the log, or None with out.log_error saying why
    svc.ask_many([req1, req2], on_start=..., on_token=lambda i, piece: ...)   # several questions, one note

Extension points (plug in without changing callers):

* **Another backend**: implement ``app.core.backend.InferenceEngine`` and return it from the ``engine_for``
  callable given to the service; ``LlamaCppEngine`` (local GGUF) and ``RemoteEngine`` (an OpenAI-compatible
  server) are the two today. The service strips the answer's leading whitespace and computes grounding for
  every backend, so a backend returns ``grounding=None``.
* **Parallel answers**: :meth:`AskService.ask_many` is the one entry point for several questions about one
  note; it hands them to the backend's own ``ask_many`` (several sequences decoded together) when the
  backend has one, else answers them in turn. Token callbacks carry the request index
  (``app/service/streams.py`` puts them back in request order).
* **Post-processing** (the judge, an exporter) that needs the note, the answer and the run id gets all three
  from :class:`AskOutcome`.
"""

from app.service.asking import (
    AskOutcome,
    AskService,
    EngineFor,
    IndexedTokenCallback,
    RunSink,
    ground,
    raise_for_finish,
)
from app.service.sampling import SamplingOverrides, resolve_sampling
from app.service.senses import SenseSource

__all__ = [
    "AskOutcome",
    "AskService",
    "EngineFor",
    "IndexedTokenCallback",
    "RunSink",
    "SamplingOverrides",
    "SenseSource",
    "ground",
    "raise_for_finish",
    "resolve_sampling",
]
