"""The judge: strict parsing, seeded orders, ratings in the evaluation log, position bias, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.store import EvalLog, RunFilter
from app.store import stats as store_stats
from tests.store.helpers import NER, QA, logged, model, request
from tests.training.fake_server import FINGERPRINT, FaultServer
from training.endpoint.settings import ChatSettings
from training.judge.items import Candidate, Item, items_from_jsonl, items_from_log
from training.judge.run import JudgeOptions, orders_for, parse_scores, rater_name, run_judge

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("reply", "n", "scores", "why"),
    [
        ("3 4\nBecause A missed a dose.", 2, [3, 4], None),
        ("\n4 4 1", 3, [4, 4, 1], None),
        ("2, 3", 2, [2, 3], None),
        ("3", 2, None, "first line has 1 values, expected 2"),
        ("3 5", 2, None, "'5' is not a score 1-4"),
        ("0 4", 2, None, "'0' is not a score 1-4"),
        ("Scores: 3 4", 2, None, "first line has 3 values"),
        ("3.5 4", 2, None, "'3.5' is not a score"),
        ("", 2, None, "empty reply"),
        (None, 2, None, "empty reply"),
    ],
)
def test_parse_is_strict(reply, n, scores, why):
    got, err = parse_scores(reply, n)
    assert got == scores
    assert (err is None) if why is None else (why in err)


def _item(n: int, key: str = "k") -> Item:
    return Item(key, "note", "q", None, tuple(Candidate(f"c{i}", f"m{i}", f"a{i}") for i in range(n)))


def test_orders_are_seeded_rotations():
    item = _item(3)
    o = orders_for(item, 3, seed=7)
    assert o == orders_for(item, 3, seed=7)
    assert [sorted(x) for x in o] == [[0, 1, 2]] * 3
    # every candidate sits at every position exactly once across the three orders
    for cand in range(3):
        assert sorted(order.index(cand) for order in o) == [0, 1, 2]
    assert any(orders_for(item, 1, seed=s) != orders_for(item, 1, seed=7) for s in range(20))


def _log_with_runs(db: Path) -> tuple[EvalLog, list[int]]:
    log = EvalLog.open(db, timeout_s=2.0)
    ids = []
    for task, instr in ((NER, "List every medication."), (QA, "What dose of amoxicillin?"), (QA, "Which day?")):
        for m in (0, 1):
            ids.append(logged(log, request(task=task, instruction=instr), model(m), answer=f"answer {m} to {instr}"))
    return log, ids


def _judge_server(unparseable_question: str | None = None) -> FaultServer:
    def responder(prompt: str) -> str:
        if unparseable_question and unparseable_question in prompt:
            return "I think both answers are fine."
        n = prompt.count("'s Answer Begin]")
        return " ".join(["4"] + ["1"] * (n - 1)) + "\nThe first answer is best."  # a judge that loves position A

    return FaultServer(responder=responder)


def test_judge_over_the_log_stores_ratings_and_measures_position_bias(tmp_path: Path, app_home, capsys):
    log, ids = _log_with_runs(tmp_path / "log.db")
    try:
        items = items_from_log(log, RunFilter())
        assert len(items.items) == 3 and all(len(i.candidates) == 2 for i in items.items)
        with _judge_server(unparseable_question="Which day?") as srv:
            cfg = ChatSettings(srv.base_url, "judge-model", concurrency=2)
            opts = JudgeOptions(tmp_path / "out", cfg, seed=1, orders=2, progress=False)
            s = run_judge(opts, items, log)
            assert (s.parsed, s.unparseable, s.failed) == (4, 2, 0)
            # 2 parsed items x 2 orders x 2 candidates, + 4 position means; the unparseable item gets none
            assert s.ratings_stored == 12
            assert s.position_bias["candidates"] == 4 and s.position_bias["changed"] == 4
            assert s.position_bias["mean_by_position"] == {"A": 4.0, "B": 1.0}
            rater = rater_name(cfg)
            assert rater.startswith(f"judge:judge-model@{srv.base_url}#judge-pointwise@2")
            judged_runs = ids[:4]
            for rid in ids:
                hist = log.rating_history(rid, rater)
                if rid in judged_runs:
                    # both orders kept, A first or second, then the position mean (2.5; 3 in the 1-4 column)
                    assert [h.score for h in hist] in ([4, 1, 3], [1, 4, 3])
                    assert all(h.rater_kind == "judge" for h in hist)
                    c = [json.loads(h.comment) for h in hist]
                    assert c[2]["position_mean"] == 2.5 and c[2]["orders"] == 2
                    assert sorted(c[2]["requests"]) == sorted(x["request"] for x in c[:2])
                    assert [h.is_current for h in hist] == [False, False, True]  # the mean is the current one
                    c = c[:2]
                    assert [x["order_index"] for x in c] == [0, 1] and {x["label"] for x in c} == {"A", "B"}
                    assert {(x["endpoint"], x["served_model"]) for x in c} == {(srv.base_url, "judge-model")}
                    # and the server's own account of the reply, as batch --endpoint logs it
                    assert {(x["reported_model"], x["system_fingerprint"]) for x in c} == {("judge-model", FINGERPRINT)}
                else:
                    assert hist == []
            lines = [json.loads(x) for x in (tmp_path / "out" / "judge.jsonl").read_text().splitlines()]
            bad = [x for x in lines if x["scores"] is None]
            assert len(bad) == 2 and all(x["reply"] == "I think both answers are fine." for x in bad)
            assert all("first line has" in x["error"] for x in bad)

            # Run again: nothing is sent, nothing is stored twice.
            sent = sum(srv.seen.values())
            s2 = run_judge(opts, items_from_log(log, RunFilter()), log)
            assert sum(srv.seen.values()) == sent and s2.ratings_stored == 0
            assert sum(len(log.rating_history(r, rater)) for r in ids) == 12

        # Human ratings beside the judge's: agreement and judge means in the statistics.
        for rid, score in zip(ids[:4], (4, 1, 4, 2), strict=True):
            log.add_rating(rid, "alice", score)
        corr = {c.judge: c for c in store_stats.judge_correlation(log)}
        assert corr[rater].runs == 4
        means = store_stats.judge_mean_scores(log)
        assert {m.judge for m in means} == {rater} and sum(m.runs for m in means) == 4
        # log stats counts each run's position-averaged score (2.5), not the last order's (4 or 1)
        assert {m.mean for m in means} == {2.5}
        from tests.store.cli_runner import main as log_cli

        capsys.readouterr()
        assert log_cli(["log", "stats", "--db", str(tmp_path / "log.db")]) == 0
        shown = capsys.readouterr().out
        assert "Mean judge score per judge, model and task" in shown and f"  {rater}  " in shown
        assert f"Judge {rater} vs human mean on 4 runs" in shown
    finally:
        log.close()


def test_orders_are_distinct_and_never_more_than_the_candidates_allow():
    assert orders_for(_item(1), 2, seed=0) == [[0]]  # one answer has one order, not two equal ones
    two = orders_for(_item(2), 5, seed=3)
    assert len(two) == 2 and two[0] != two[1]
    three = orders_for(_item(3), 6, seed=3)
    assert len(three) == 6 and len({tuple(o) for o in three}) == 6
    assert three[:3] == orders_for(_item(3), 3, seed=3)  # the rotations come first, as before


def test_single_answers_judged_in_two_orders_are_stored(tmp_path: Path):
    """One run per question with --orders 2: both orders were the same request (one id), so the item waited for
    a second reply that never came and no rating was stored while the printed mean counted the score."""
    log = EvalLog.open(tmp_path / "log.db", timeout_s=2.0)
    try:
        ids = [logged(log, request(task=QA, instruction=q), model(0), answer="a") for q in ("Dose?", "Day?")]
        items = items_from_log(log, RunFilter())
        assert [len(i.candidates) for i in items.items] == [1, 1]
        with _judge_server() as srv:
            cfg = ChatSettings(srv.base_url, "judge-model", concurrency=2)
            s = run_judge(JudgeOptions(tmp_path / "out", cfg, orders=2, progress=False), items, log)
        assert (s.requests, s.parsed, s.ratings_stored) == (2, 2, 2)
        assert [[h.score for h in log.rating_history(r, rater_name(cfg))] for r in ids] == [[4], [4]]
        assert {m.mean for m in store_stats.judge_mean_scores(log)} == {4.0}
        # a judge rating with a free-text comment (an import, say) counts its own score; no JSON error
        log.add_rating(ids[0], "judge:other", 2, comment="not {json", rater_kind="judge")
        assert {(m.judge, m.mean) for m in store_stats.judge_mean_scores(log)} >= {("judge:other", 2.0)}
    finally:
        log.close()


@pytest.mark.parametrize("mode", [[], ["--background"]], ids=["chat", "background"])
def test_judge_jsonl_answers_and_cli(tmp_path: Path, mode: list[str]):
    answers = tmp_path / "answers.jsonl"
    rows = [
        {"note": "Pt on aspirin 81 mg.", "question": "Which drug?", "answers": [{"model": "a", "answer": "aspirin"},
                                                                             {"model": "b", "answer": "none"}]},
        {"note": "Pt on aspirin 81 mg.", "question": "Dose?", "model": "a", "answer": "81 mg"},
        {"note": "Pt on aspirin 81 mg.", "question": "Dose?", "model": "b", "answer": "81 g"},
        {"note": "", "question": "x", "model": "a", "answer": "y"},
    ]  # fmt: skip
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n", encoding="utf-8")
    items = items_from_jsonl(answers)
    assert [len(i.candidates) for i in items.items] == [2, 2]
    assert items.skipped == ["line 4: needs note and question text", "line 5: not valid JSON (Expecting value)"]
    with _judge_server() as srv:
        r = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "judge", "--answers", str(answers), "--base-url", srv.base_url,
             "--model", "j", "--out", str(tmp_path / "out"), "--orders", "2", "--no-progress", *mode],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
        )  # fmt: skip
        posted = sum(srv.seen.values())
        fetched = sum(srv.polls.values())
    assert r.returncode == 0, r.stderr
    assert posted == 4 and (fetched >= 4 if mode else fetched == 0)  # background: submitted once, then fetched
    assert "replies: 4 parsed, 0 unparseable" in r.stdout
    assert "position bias: 4/4 candidates (100%)" in r.stdout
    assert "mean judge score a: 2.50" in r.stdout and "mean judge score b: 2.50" in r.stdout
    assert f"judge connects to {srv.base_url} only" in r.stderr
    report = json.loads((tmp_path / "out" / "judge.report.json").read_text())
    assert report["prompt"] == "judge-pointwise@2" and report["orders"] == 2 and report["skipped"]


def test_judge_needs_note_text_in_the_log(tmp_path: Path):
    log = EvalLog.open(tmp_path / "log.db", store_note_text=False)
    try:
        logged(log)
        items = items_from_log(log, RunFilter())
        assert items.items == [] and "keeps no note text" in items.skipped[0]
    finally:
        log.close()


def test_judge_options_are_validated(tmp_path: Path):
    from app.core.errors import UsageError

    cfg = ChatSettings("http://127.0.0.1:9/v1", "m")
    with pytest.raises(UsageError, match="--orders"):
        JudgeOptions(tmp_path, cfg, orders=0)
    with pytest.raises(UsageError, match="--max-tokens"):
        JudgeOptions(tmp_path, cfg, max_tokens=0)
