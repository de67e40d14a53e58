"""Several answers about one note decoded together, on the real demo model (app/core/parallel.py)."""

from __future__ import annotations

import threading

import pytest

from app.core.errors import ContextOverflowError
from app.core.parallel import SeqJob, plan
from app.core.types import AskRequest, FinishReason, SamplingParams
from resources import TASKS, load_sample
from tests.integration.test_cli import run


def _requests(note: str, max_tokens: int = 10, n: int = 8) -> list[AskRequest]:
    return [AskRequest(note, t.name, t.standard_instruction, SamplingParams(max_tokens=max_tokens)) for t in TASKS][:n]


@pytest.fixture(scope="module")
def note() -> str:
    return load_sample("pneumonia").text


@pytest.fixture(scope="module")
def sequential(demo_engine, note):
    return [demo_engine.ask(r) for r in _requests(note)]


def test_parallel_answers_match_the_one_at_a_time_path(demo_engine, note, sequential):
    pieces: dict[int, list[str]] = {}
    order: list[tuple[str, int]] = []
    results = demo_engine.ask_many(
        _requests(note),
        on_token=lambda i, p: pieces.setdefault(i, []).append(p),
        on_start=lambda i: order.append(("start", i)),
        on_finish=lambda i, _result: order.append(("done", i)),
    )
    assert demo_engine.last_parallel == 8
    # All eight were in flight at once: every start comes before the first finish.
    first_done = next(k for k, (what, _) in enumerate(order) if what == "done")
    assert [i for what, i in order[:first_done]] == list(range(8))
    same = 0
    for i, (seq, par) in enumerate(zip(sequential, results, strict=True)):
        assert par is not None and par.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
        assert "".join(pieces.get(i, [])) == par.answer  # streamed pieces add up to each answer
        assert par.reused_tokens > 0 and par.prompt_tokens == seq.prompt_tokens
        same += par.answer == seq.answer
    # Batched matrix kernels can flip a near-tie (measured in bench_parallel); most must be identical.
    assert same >= 6, [(s.answer, p.answer) for s, p in zip(sequential, results, strict=True)]


def test_continuous_batching_reuses_slots_and_leaves_the_engine_usable(demo_engine, note, sequential):
    reqs = _requests(note, n=4)
    started: list[int] = []
    results = demo_engine.ask_many(reqs, parallel=2, on_start=started.append)
    assert demo_engine.last_parallel == 2
    assert started == [0, 1, 2, 3]
    assert all(r is not None and r.completion_tokens > 0 for r in results)
    # The note prefix stays live in sequence 0: the next single answer reuses it and is unchanged.
    again = demo_engine.ask(reqs[0])
    assert again.reused_tokens == len(demo_engine.tokenize_prompt(demo_engine.style_for(None), note, "x").prefix)
    assert again.answer == sequential[0].answer


def test_one_request_can_be_cancelled_alone_and_all_can_be_cancelled(demo_engine, note, sequential):
    reqs = _requests(note, max_tokens=24, n=3)
    cancels = [threading.Event() for _ in reqs]

    def on_token(i: int, _piece: str) -> None:
        if i == 1:
            cancels[1].set()

    results = demo_engine.ask_many(reqs, on_token=on_token, cancels=cancels)
    assert results[1] is not None and results[1].finish_reason is FinishReason.CANCELLED
    assert results[0] is not None and results[0].finish_reason is not FinishReason.CANCELLED
    assert results[2] is not None and results[2].finish_reason is not FinishReason.CANCELLED

    everyone = threading.Event()
    results = demo_engine.ask_many(
        _requests(note, n=4), parallel=2, cancel=everyone, on_token=lambda i, p: everyone.set()
    )
    assert [r.finish_reason if r else None for r in results] == [
        FinishReason.CANCELLED,
        FinishReason.CANCELLED,
        None,
        None,
    ]
    assert demo_engine.ask(_requests(note)[0]).answer == sequential[0].answer


def test_the_context_budget_counts_every_sequence(demo_engine, note):
    jobs = [SeqJob(i, [1] * 20, SamplingParams(max_tokens=400)) for i in range(8)]
    # 4096-token context, 1,000-token prefix: 3,095 free cells hold 7 worst cases of 420, not 8.
    assert plan(1000, jobs, 4096, cap=8).n_parallel == 7
    assert plan(1000, jobs, 4096, cap=3).n_parallel == 3
    assert plan(4000, jobs, 4096, cap=8).n_parallel == 1
    huge = AskRequest(note * 40, TASKS[0].name, "List the medications.", SamplingParams(max_tokens=16))
    with pytest.raises(ContextOverflowError):
        demo_engine.ask_many([_requests(note)[0], huge])


def test_cli_answers_several_instructions_in_order_with_metrics_each(demo_model, tmp_path, note):
    path = tmp_path / "note.txt"
    path.write_text(note, encoding="utf-8")
    args = ["ask", "--note", str(path), "--task", "qa", "--max-tokens", "12", "--no-log"]
    qs = ["What was the creatinine on admission?", "Which antibiotic was given?", "Why was the patient admitted?"]
    r = run(*args, "--parallel", "2", *qs)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    out = r.stdout.decode()
    positions = [out.index(f"## [{i + 1}] {q}") for i, q in enumerate(qs)]
    assert positions == sorted(positions)
    assert err.count("time to first token") == 3
    assert run(*args, "--parallel", "0", *qs).returncode == 2
