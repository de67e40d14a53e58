"""The ask service's control flow with a fake engine and a real evaluation log (no model file)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.core.config import GenerationDefaults
from app.core.errors import ContextOverflowError, GenerationError, NoteError, StoreError, UsageError
from app.core.grounding import ClaimStatus, GroundingReport
from app.core.types import FinishReason, SamplingParams
from app.service import AskService, SamplingOverrides, raise_for_finish, resolve_sampling
from app.store import EvalLog
from tests.fakes import CheckFirstEngine, FakeEngine, InterleavingEngine, Script, fake_model

NOTE = "Admitted with pneumonia. Creatinine 1.4 mg/dL on admission. Started amoxicillin 500 mg."
QA = "Question Answering"


@pytest.fixture
def log(tmp_path: Path):
    with EvalLog.open(tmp_path / "log.db") as lg:
        yield lg


def service(engine: FakeEngine, log, gen: GenerationDefaults | None = None) -> AskService:  # type: ignore[no-untyped-def]
    return AskService.for_engine(engine, log, gen or GenerationDefaults())


# -- the sampling rule ----------------------------------------------------------------------------


def test_explicit_beats_settings_beats_preset():
    abbrev = "Abbreviation Expansion"  # preset max_tokens 256
    gen = GenerationDefaults(max_tokens=300, temperature=0.7, seed=5)
    assert resolve_sampling(abbrev, gen) == SamplingParams(max_tokens=256, temperature=0.7, seed=5)
    assert resolve_sampling(QA, GenerationDefaults(max_tokens=64)).max_tokens == 64  # the settings cap
    explicit = SamplingOverrides(max_tokens=999, temperature=0.0, top_k=40)
    assert resolve_sampling(abbrev, gen, explicit) == SamplingParams(max_tokens=999, temperature=0.0, top_k=40, seed=5)
    recorded = SamplingParams(max_tokens=17, temperature=1.2, top_p=0.9, top_k=3, min_p=0.1, repeat_penalty=1.1, seed=9)
    assert resolve_sampling(abbrev, gen, SamplingOverrides.of(recorded)) == recorded


def test_bad_sampling_values_and_tasks_are_usage_errors_listing_every_problem():
    with pytest.raises(UsageError, match=r"max_tokens.*temperature"):
        resolve_sampling(QA, GenerationDefaults(), SamplingOverrides(max_tokens=0, temperature=9))
    with pytest.raises(UsageError, match="translation"):
        resolve_sampling("translation", GenerationDefaults())


def test_request_validates_everything_up_front_and_normalises_the_note():
    svc = service(FakeEngine(), None, GenerationDefaults(max_tokens=50))
    req = svc.request("\r\n  " + NOTE.replace(". ", ".\r\n") + "\n\n", "qa", "  What was the creatinine?  ")
    assert req.note == NOTE.replace(". ", ".\n")
    assert (req.task, req.instruction, req.sampling.max_tokens) == (QA, "What was the creatinine?", 50)
    with pytest.raises(UsageError, match=r"unknown task.*instruction is empty"):
        svc.request(NOTE, "nope", " ")
    with pytest.raises(NoteError, match="empty"):
        svc.request(" \n", "qa", "Why?")


# -- one answer -------------------------------------------------------------------------------------


def test_a_run_is_logged_finished_with_the_grounding_computed_once(log):
    engine = FakeEngine(script=Script(answer="\n  Creatinine 1.4 mg/dL; later 2.9 mg/dL."))
    svc = service(engine, log)
    pieces: list[str] = []
    out = svc.ask(svc.request(NOTE, "qa", "What was the creatinine?"), on_token=pieces.append)
    # Leading whitespace is stripped once, in the service: streamed text and the logged answer agree.
    assert out.result.answer == "Creatinine 1.4 mg/dL; later 2.9 mg/dL."
    assert "".join(pieces) == out.result.answer
    # 1.4 mg/dL is in the note, 2.9 mg/dL nowhere: the answer is not reported as all supported.
    parts = [p for c in out.grounding.claims for p in c.parts]
    assert any("1.4" in p.text and p.found for p in parts)
    assert any("2.9" in p.text and not p.found for p in parts) and not out.grounding.clean
    assert not out.grounding.headline().startswith("all")
    assert out.result.grounding == out.grounding.summary()
    for p in parts:  # offsets point into the note the model saw
        assert all(out.note[a:b] for a, b in p.note_spans)
        if p.found and "1.4" in p.text:
            assert any("1.4" in out.note[a:b] for a, b in p.note_spans)
    view = log.get_run(out.run_id)
    assert (view.status, view.finish_reason, view.answer) == ("finished", "stop", out.result.answer)
    assert GroundingReport.from_dict(view.grounding) == out.grounding  # the full report, stored and read back
    assert view.note_text == NOTE and out.log_error is None and out.answered


def test_error_mid_stream_is_logged_and_reported_not_raised(log):
    svc = service(FakeEngine(script=Script(error_after=2)), log)
    out = svc.ask(svc.request(NOTE, "qa", "Why?"))
    assert out.result.finish_reason is FinishReason.ERROR and not out.answered
    view = log.get_run(out.run_id)
    assert (view.finish_reason, view.error) == ("error", "llama.cpp failed: fake decode error")
    with pytest.raises(GenerationError, match="fake decode error"):
        raise_for_finish(out)


def test_overflow_is_raised_and_the_run_is_recorded_as_failed(log):
    svc = service(FakeEngine(n_ctx=64), log)
    req = svc.request(" ".join(["word"] * 200), "qa", "Why?", explicit=SamplingOverrides(max_tokens=16))
    with pytest.raises(ContextOverflowError, match="does not fit"):
        svc.ask(req)
    (view,) = log.list_runs()
    assert (view.uuid, view.status, view.finish_reason) == (req.run_uuid, "finished", "error")
    assert "does not fit" in (view.error or "")


def test_truncated_note_grounds_against_the_kept_part_only(log):
    note = "Creatinine 1.4 mg/dL. " + " ".join(["filler"] * 100) + " Discharged on warfarin 5 mg."
    answer = "- Warfarin 5 mg\n- Creatinine 1.4 mg/dL"
    svc = service(FakeEngine(n_ctx=80, script=Script(answer=answer)), log)
    out = svc.ask(svc.request(note, "qa", "Meds?", explicit=SamplingOverrides(max_tokens=16), truncate=True))
    assert out.result.truncation is not None and len(out.note) == out.result.truncation.kept_chars
    # Warfarin 5 mg is only in the cut-off tail: not supported; the creatinine is in the kept part.
    claims = out.grounding.claims
    assert all(c.status != ClaimStatus.SUPPORTED for c in claims if "Warfarin" in c.text or "5 mg" in c.text)
    assert any(c.status == ClaimStatus.SUPPORTED for c in claims if "1.4" in c.text)
    assert all(b <= len(out.note) for c in claims for p in c.parts for _, b in p.note_spans)


def test_cancel_during_generation_is_logged_as_cancelled(log):
    engine = FakeEngine(script=Script(stall_after=2))
    svc = service(engine, log)
    cancel = threading.Event()
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(out=svc.ask(svc.request(NOTE, "qa", "Why?"), cancel=cancel)))
    t.start()
    assert engine.stalled.wait(5)
    cancel.set()
    t.join(5)
    out = box["out"]
    assert out.result.finish_reason is FinishReason.CANCELLED
    assert log.get_run(out.run_id).finish_reason == "cancelled"


def test_keyboard_interrupt_is_recorded_as_cancelled_and_re_raised(log):
    svc = service(FakeEngine(script=Script(raise_before=KeyboardInterrupt())), log)
    with pytest.raises(KeyboardInterrupt):
        svc.ask(svc.request(NOTE, "qa", "Why?"))
    assert [(v.status, v.finish_reason) for v in log.list_runs()] == [("finished", "cancelled")]


def test_no_log_still_answers_and_says_why_it_was_not_recorded():
    svc = AskService.for_engine(FakeEngine(), None, GenerationDefaults(), log_unavailable="log is locked")
    out = svc.ask(svc.request(NOTE, "qa", "Why?"))
    assert out.result.answer and out.run_id is None and out.log_error == "log is locked"


class _FinishFails:
    def __init__(self, log: EvalLog) -> None:
        self.log = log

    def start_run(self, *a, **kw):  # type: ignore[no-untyped-def]
        return self.log.start_run(*a, **kw)

    def finish_run(self, run_id, result):  # type: ignore[no-untyped-def]
        raise StoreError("the evaluation log is locked by another program")

    def fail_run(self, *a, **kw):  # type: ignore[no-untyped-def]
        return self.log.fail_run(*a, **kw)


def test_a_log_failure_after_the_answer_never_loses_the_answer(log):
    svc = service(FakeEngine(), _FinishFails(log))
    out = svc.ask(svc.request(NOTE, "qa", "Why?"))
    assert out.result.answer.startswith("The creatinine")
    assert out.run_id is None and "locked" in (out.log_error or "")


class _StartFails(_FinishFails):
    def start_run(self, *a, **kw):  # type: ignore[no-untyped-def]
        raise StoreError("the evaluation log is read-only")


def test_a_log_failure_before_the_run_is_raised_before_any_generation(log):
    engine = FakeEngine()
    svc = service(engine, _StartFails(log))
    with pytest.raises(StoreError, match="read-only"):
        svc.ask(svc.request(NOTE, "qa", "Why?"))
    assert engine.requests == []


def test_the_engine_is_chosen_per_model():
    a, b = FakeEngine(fake_model("a")), FakeEngine(fake_model("b"))
    engines = {e.model.sha256: e for e in (a, b)}
    svc = AskService(lambda m: a if m is None else engines[m.sha256], None, GenerationDefaults())
    req = svc.request(NOTE, "qa", "Why?")
    first, second = svc.ask(req, model=b.model), svc.ask(req.renewed())
    assert (first.model.name, second.model.name) == ("b", "a")
    assert first.result.run_uuid != second.result.run_uuid
    with pytest.raises(UsageError, match="not the loaded model"):
        AskService.for_engine(a, None, GenerationDefaults()).ask(req, model=b.model)


# -- several questions about one note ------------------------------------------------------------------


def test_ask_many_runs_in_order_with_indexed_tokens_and_logs_each(log):
    svc = service(FakeEngine(), log)
    reqs = [svc.request(NOTE, t, "Why?") for t in ("qa", "summary", "ner")]
    started, streamed = [], {}
    outs = svc.ask_many(reqs, on_start=lambda i, r: started.append((i, r.task)),
                        on_token=lambda i, p: streamed.setdefault(i, []).append(p))  # fmt: skip
    assert [i for i, _ in started] == [0, 1, 2] and [o.request for o in outs] == reqs
    assert all("".join(streamed[i]) == o.result.answer for i, o in enumerate(outs))
    assert log.count_runs() == 3


def test_ask_many_stops_at_a_cancel_and_refuses_mixed_notes(log):
    engine = FakeEngine(script=Script(stall_after=1))
    svc = service(engine, log)
    reqs = [svc.request(NOTE, "qa", q) for q in ("One?", "Two?", "Three?")]
    cancel = threading.Event()
    threading.Thread(target=lambda: engine.stalled.wait(5) and cancel.set()).start()
    outs = svc.ask_many(reqs, cancel=cancel)
    assert [o.result.finish_reason for o in outs] == [FinishReason.CANCELLED]
    assert len(engine.requests) == 1
    with pytest.raises(UsageError, match="one note"):
        svc.ask_many([reqs[0], svc.request(NOTE + " More.", "qa", "Why?")])


def test_ask_many_with_a_parallel_backend_logs_each_run_and_keeps_request_order(log):
    from app.service.streams import OrderedStream

    svc = service(InterleavingEngine(), log)
    reqs = [svc.request(NOTE, t, "Why?") for t in ("qa", "summary", "ner")]
    text: list[str] = []
    done: list[int] = []
    stream = OrderedStream(len(reqs), text.append, lambda i: f"[{i}]")
    outs = svc.ask_many(reqs, on_token=stream.piece, on_done=lambda i: (done.append(i), stream.done(i)))
    assert done == [2, 1, 0] and [o.request for o in outs] == reqs
    assert all(o.run_id is not None and o.result.answer == o.result.answer.lstrip() for o in outs)
    expected = "".join(f"[{i}]" + o.result.answer for i, o in enumerate(outs))
    assert "".join(text) == expected  # interleaved pieces come out in request order, leading space stripped
    assert log.count_runs() == 3


def test_ordered_stream_holds_later_answers_until_earlier_ones_finish():
    from app.service.streams import OrderedStream

    out: list[str] = []
    s = OrderedStream(3, out.append, lambda i: f"<{i}>")
    s.piece(1, "b1")
    s.piece(0, "a1")
    s.piece(2, "c1")
    assert out == ["<0>", "a1"]
    s.done(1)  # 1 finished before 0: still held
    assert out == ["<0>", "a1"]
    s.piece(0, "a2")
    s.done(0)
    assert "".join(out) == "<0>a1a2<1>b1<2>c1"
    s.piece(2, "c2")
    s.done(2)
    assert "".join(out) == "<0>a1a2<1>b1<2>c1c2"


def test_ask_many_logs_a_prompt_refused_before_start_as_failed_like_ask(log):
    svc = service(CheckFirstEngine(n_ctx=200), log)
    ok = svc.request(NOTE, "qa", "Why?", explicit=SamplingOverrides(max_tokens=16))
    too_long = svc.request(NOTE, "qa", "Why? " * 300, explicit=SamplingOverrides(max_tokens=16))
    with pytest.raises(ContextOverflowError) as ei:
        svc.ask_many([ok, too_long], batch_id=None)
    assert getattr(ei.value, "request_index", None) == 1
    runs = log.list_runs()
    # Exactly the refused request is in the log, failed with the refusal's message (ask() does the same).
    assert [(r.instruction, r.finish_reason) for r in runs] == [(too_long.instruction, "error")]
    assert "does not fit" in (runs[0].error or "")


# -- abbreviation sense inventories -------------------------------------------------------------------


def test_the_configured_sense_inventory_is_read_once_and_reaches_abbreviation_answers_only(monkeypatch, tmp_path):
    import app.service.asking as asking
    from app.core.grounding import SenseInventory
    from app.service import SenseSource

    inventory, loaded, seen = SenseInventory(), [], []
    monkeypatch.setattr(SenseInventory, "load", staticmethod(lambda f: loaded.append(f) or inventory), raising=False)
    real = asking.check_answer
    monkeypatch.setattr(asking, "check_answer", lambda a, n, t, i, s: seen.append((t, s)) or real(a, n, t, i, None))
    svc = AskService.for_engine(FakeEngine(), None, GenerationDefaults(), senses=SenseSource(tmp_path))
    for task in ("abbrev", "abbrev", "qa"):
        svc.ask(svc.request(NOTE, task, "Expand the abbreviations."))
    assert loaded == [tmp_path]
    assert seen == [("Abbreviation Expansion", inventory)] * 2 + [(QA, None)]


def test_an_unreadable_sense_folder_never_costs_the_answer_and_the_report_says_so(monkeypatch, tmp_path, log):
    from app.core.grounding import SenseInventory
    from app.service import SenseSource

    def refuse(folder: Path) -> SenseInventory:
        raise UsageError(f"abbreviation sense folder not found: {folder}")

    monkeypatch.setattr(SenseInventory, "load", staticmethod(refuse), raising=False)
    svc = AskService.for_engine(FakeEngine(), log, GenerationDefaults(), senses=SenseSource(tmp_path / "gone"))
    out = svc.ask(svc.request(NOTE, "abbrev", "Expand the abbreviations."))
    assert out.answered and out.run_id is not None
    [why] = [n for n in out.grounding.notes if "senses not checked" in n]
    assert "gone" in why and why in log.get_run(out.run_id).grounding["report"]["notes"]
