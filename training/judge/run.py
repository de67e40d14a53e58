"""Running the judge: seeded orders, strict parsing, ratings in the log, position bias.

- Orders: each item's candidates are shuffled once with a seed derived from ``--seed`` and the item; with
  ``--orders K`` the k-th order is that order rotated by k places, so each candidate is seen at K different
  positions (for K > N the extra orders are further seeded shuffles). The order shown is stored.
- Parsing (:func:`parse_scores`): the reply's first line must hold exactly N integers 1-4 separated by
  spaces (commas tolerated), nothing else. Anything else is stored as unparseable with the reason, counted,
  and never becomes a score (the reference silently turned a short reply into zeros).
- Ratings: for items from the log, each parsed score becomes a rating (rater kind ``judge``) on its run,
  with the order shown, the position, the label and the request id in the rating's comment. All orders
  are stored, in order, once every order of the item has a reply; then each candidate scored in two or
  more orders gets one more rating, the position-averaged score (the exact mean in the comment's
  ``position_mean``; the 1-4 column holds it rounded half up), which is the current rating and the one
  ``log stats`` counts. A resumed run never stores a judgement twice. An item has at most as many orders as
  its candidates allow (one candidate: one order), so ``--orders 2`` over single answers stores one
  rating each instead of waiting for a second order that cannot exist.
- Position bias: among candidates with two or more parsed orders, how many got different scores at
  different positions; and the mean score at each position.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import UsageError
from app.core.openai_policy import estimate_tokens
from app.core.privatefile import private_dir, write_private
from training.endpoint.chat import ChatRequest
from training.endpoint.settings import ChatSettings
from training.endpoint.usage import Usage
from training.judge.items import Item, Items
from training.prompts import JUDGE, agent_label, judge_answer_blocks
from training.runner import ResultLog, read_jsonl, request_id, run_requests

STAGE = "judge"
RATER_MAX = 128


@dataclass(frozen=True)
class JudgeOptions:
    out: Path
    endpoint: ChatSettings
    seed: int = 0
    orders: int = 1
    """Judge each item in this many orders (position bias needs 2 or more)."""
    max_tokens: int | None = None
    dry_run: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.orders <= 26:
            raise UsageError("--orders must be 1 to 26")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")
        if self.seed < 0:
            raise UsageError("--seed must be >= 0")

    @property
    def rater(self) -> str:
        return rater_name(self.endpoint)


def rater_name(cfg: ChatSettings) -> str:
    """``judge:<model>@<endpoint>#<prompt id@version>``, at most 128 characters (hash-shortened if longer)."""
    name = f"judge:{cfg.served_model}@{cfg.public_url}#{JUDGE.key}"
    if len(name) > RATER_MAX:
        h = hashlib.sha256(name.encode()).hexdigest()[:10]
        name = name[: RATER_MAX - 12] + "~" + h
    return name


def orders_for(item: Item, k: int, seed: int) -> list[list[int]]:
    """Up to ``k`` distinct orders of ``item``'s candidates: a seeded shuffle, its rotations, then further
    seeded shuffles. Never two equal orders (they would be one request with one id, and an item waiting for
    ``k`` replies would never be rated): an item with fewer than ``k`` possible orders (one candidate has
    one) gets all of them."""
    n = len(item.candidates)
    rng = random.Random(f"{seed}:order:{item.key}")
    base = list(range(n))
    rng.shuffle(base)
    want = min(k, math.factorial(n))
    out = [base[i:] + base[:i] for i in range(min(want, n))]
    while len(out) < want:  # n < want <= n!: a new shuffle is found after a few draws
        extra = base[:]
        rng.shuffle(extra)
        if extra not in out:
            out.append(extra)
    return out


def parse_scores(reply: str | None, n: int) -> tuple[list[int] | None, str | None]:
    """(scores, None) when the first line is exactly ``n`` integers 1-4; else (None, why)."""
    if reply is None or not reply.strip():
        return None, "empty reply"
    first = reply.lstrip("\n").split("\n", 1)[0].strip()
    tokens = first.replace(",", " ").split()
    if len(tokens) != n:
        return None, f"first line has {len(tokens)} values, expected {n}: {first[:80]!r}"
    scores = []
    for t in tokens:
        if t not in ("1", "2", "3", "4"):
            return None, f"{t[:20]!r} is not a score 1-4: {first[:80]!r}"
        scores.append(int(t))
    return scores, None


@dataclass
class JudgeSummary:
    items: int = 0
    requests: int = 0
    parsed: int = 0
    unparseable: int = 0
    failed: int = 0
    ratings_stored: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    """Failed requests counted by error, most common first."""
    skipped: list[str] = field(default_factory=list)
    usage: Usage | None = None
    estimated_tokens: int = 0
    mean_by_model: dict[str, float] = field(default_factory=dict)
    position_bias: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = []
        if self.usage is None:
            out.append(
                f"judge (dry run): {self.items:,} items, {self.requests:,} requests to send, about "
                f"{self.estimated_tokens:,} tokens"
            )
            return out
        out.append(f"judge: {self.usage.line()}")
        out.append(
            f"replies: {self.parsed:,} parsed, {self.unparseable:,} unparseable (stored, never scored), "
            f"{self.failed:,} requests failed (retried next run); {self.ratings_stored:,} ratings stored"
        )
        for m, s in sorted(self.mean_by_model.items()):
            out.append(f"  mean judge score {m}: {s:.2f}")
        pb = self.position_bias
        if pb.get("candidates"):
            out.append(
                f"position bias: {pb['changed']}/{pb['candidates']} candidates ({pb['changed_rate']:.0%}) scored "
                f"differently in different positions; mean score by position {pb['mean_by_position']}"
            )
        if self.skipped:
            out.append(f"skipped: {len(self.skipped)} (see judge.report.json)")
        return out


def _requests(opts: JudgeOptions, items: list[Item]) -> list[ChatRequest]:
    limit = opts.max_tokens or JUDGE.max_tokens or 2048
    reqs = []
    for item in items:
        for k, order in enumerate(orders_for(item, opts.orders, opts.seed)):
            shown = [item.candidates[i] for i in order]
            prompt = JUDGE.render(
                {
                    "note": item.note,
                    "question": item.question,
                    "answers": judge_answer_blocks([c.answer for c in shown]),
                    "num_samples": len(shown),
                }
            )
            keys = [c.key for c in shown]
            rid = request_id(STAGE, JUDGE.key, item.key, keys, [c.answer for c in shown])
            meta = {"item": item.key, "order_index": k, "order": keys, "n": len(shown)}
            reqs.append(ChatRequest(rid, prompt, limit, JUDGE.temperature, meta, opts.seed))
    return reqs


def run_judge(opts: JudgeOptions, items: Items, log: Any | None = None) -> JudgeSummary:
    """Judge ``items``; store ratings in ``log`` (an EvalLog) for candidates that are runs."""
    summary = JudgeSummary(items=len(items.items), skipped=list(items.skipped))
    reqs = _requests(opts, items.items)
    results_path = opts.out / "judge.results.jsonl"
    if opts.dry_run:
        done = {r["id"] for r in read_jsonl(results_path) if r["status"] == "ok"} if results_path.exists() else set()
        pending = [r for r in reqs if r.id not in done]
        summary.requests = len(pending)
        summary.estimated_tokens = sum(estimate_tokens(r.prompt) + r.max_tokens for r in pending)
        return summary
    private_dir(opts.out)
    rlog = ResultLog(results_path)
    pending = [r for r in reqs if r.id not in rlog.done]
    summary.requests = len(reqs)
    summary.usage = run_requests(
        opts.endpoint, iter(pending), rlog, total=len(pending), stage=STAGE, progress=opts.progress
    )
    wanted = {r.id for r in reqs}
    judged = [_judgement(rec) for rec in rlog.records() if rec["id"] in wanted]
    summary.failures = rlog.failures(wanted)
    summary.failed = sum(summary.failures.values())
    rlog.close()
    summary.parsed = sum(1 for j in judged if j["scores"] is not None)
    summary.unparseable = len(judged) - summary.parsed
    judged.sort(key=lambda j: (j["item"], j["order_index"]))
    _write_outputs(opts, judged, summary, {(it.key, c.key): c.model for it in items.items for c in it.candidates})
    if log is not None:
        summary.ratings_stored = store_ratings(log, opts, items.items, judged)
    _write_report(opts, summary)
    return summary


def _judgement(rec: dict[str, Any]) -> dict[str, Any]:
    meta = rec["meta"]
    scores, why = parse_scores(rec.get("text"), meta["n"])
    return {
        "request": rec["id"],
        "item": meta["item"],
        "order_index": meta["order_index"],
        "order": meta["order"],
        "labels": [agent_label(i) for i in range(meta["n"])],
        "scores": scores,
        "error": why,
        "reply": rec.get("text"),
        "model": rec.get("model"),
        # The server's own account, named as batch --endpoint names it in the log (when the runner records it).
        "reported_model": rec.get("reported_model"),
        "system_fingerprint": rec.get("system_fingerprint"),
    }


def _write_outputs(
    opts: JudgeOptions, judged: list[dict[str, Any]], summary: JudgeSummary, models: dict[tuple[str, str], str]
) -> None:
    write_private(opts.out / "judge.jsonl", "".join(json.dumps(j, ensure_ascii=False) + "\n" for j in judged))
    by_cand: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    by_model: dict[str, list[int]] = defaultdict(list)
    by_pos: dict[str, list[int]] = defaultdict(list)
    for j in judged:
        if j["scores"] is None:
            continue
        for pos, (cand, score) in enumerate(zip(j["order"], j["scores"], strict=True)):
            by_cand[(j["item"], cand)][pos] = score
            by_model[models.get((j["item"], cand), cand)].append(score)
            by_pos[agent_label(pos)].append(score)
    multi = [v for v in by_cand.values() if len(v) >= 2]
    changed = sum(1 for v in multi if len(set(v.values())) > 1)
    summary.position_bias = {
        "candidates": len(multi),
        "changed": changed,
        "changed_rate": changed / len(multi) if multi else 0.0,
        "mean_by_position": {p: round(sum(s) / len(s), 3) for p, s in sorted(by_pos.items())},
    }
    summary.mean_by_model = {m: sum(s) / len(s) for m, s in by_model.items()}


def _write_report(opts: JudgeOptions, summary: JudgeSummary) -> None:
    report = {
        "rater": opts.rater,
        "endpoint": opts.endpoint.public_url,
        "model": opts.endpoint.served_model,
        "served_model": opts.endpoint.served_model,
        "prompt": JUDGE.key,
        "seed": opts.seed,
        "orders": opts.orders,
        "items": summary.items,
        "requests": summary.requests,
        "parsed": summary.parsed,
        "unparseable": summary.unparseable,
        "failed": summary.failed,
        "failures": summary.failures,
        "ratings_stored": summary.ratings_stored,
        "position_bias": summary.position_bias,
        "mean_by_model": summary.mean_by_model,
        "skipped": summary.skipped,
        "usage": summary.usage.as_dict() if summary.usage else None,
    }
    write_private(opts.out / "judge.report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")


MEAN_PREFIX = "mean:"
"""The ``request`` of a position-averaged rating: this prefix and a hash of the orders' request ids."""


def store_ratings(log: Any, opts: JudgeOptions, items: list[Item], judged: list[dict[str, Any]]) -> int:
    """Ratings for items whose every order has a reply: each order's score, in order, then (for a candidate
    scored in two or more orders) the position-averaged score, which becomes the current rating. Skips
    judgements already stored (by request id)."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in judged:
        by_item[j["item"]].append(j)
    stored = 0
    for item in items:
        js = sorted(by_item.get(item.key, []), key=lambda j: j["order_index"])
        if len(js) < len(orders_for(item, opts.orders, opts.seed)) or not any(c.run_id for c in item.candidates):
            continue
        already = _stored_requests(log, opts.rater, item)
        for run_id, score, comment in _item_ratings(opts, item, js):
            if comment["request"] in already:
                continue
            log.add_rating(run_id, opts.rater, score, comment=json.dumps(comment), rater_kind="judge")
            stored += 1
    return stored


def _stored_requests(log: Any, rater: str, item: Item) -> set[str]:
    already: set[str] = set()
    for c in item.candidates:
        if c.run_id is not None:
            for r in log.rating_history(c.run_id, rater):
                if r.comment and r.comment.startswith("{"):
                    already.add(json.loads(r.comment).get("request", ""))
    return already


def _item_ratings(
    opts: JudgeOptions, item: Item, js: list[dict[str, Any]]
) -> list[tuple[int | None, int, dict[str, Any]]]:
    """(run id, score, comment) per order and candidate, in order, then each candidate's position mean."""
    base = {
        "prompt": JUDGE.key,
        # The provenance vocabulary of remote batch runs (app/core/remote.py, runs.endpoint...).
        "endpoint": opts.endpoint.public_url,
        "served_model": opts.endpoint.served_model,
    }
    run_of = {c.key: c.run_id for c in item.candidates}
    out: list[tuple[int | None, int, dict[str, Any]]] = []
    by_cand: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for j in js:
        if j["scores"] is None:
            continue
        served = {k: j[k] for k in ("reported_model", "system_fingerprint") if j.get(k)}
        for pos, (ckey, score) in enumerate(zip(j["order"], j["scores"], strict=True)):
            by_cand[ckey].append((j["request"], score))
            comment = {"request": j["request"], "order_index": j["order_index"], "position": pos,
                       "label": agent_label(pos), "order": j["order"], **base, **served}  # fmt: skip
            out.append((run_of[ckey], score, comment))
    for c in item.candidates:
        seen = by_cand.get(c.key, [])
        if c.run_id is None or len(seen) < 2:
            continue
        requests = sorted(r for r, _ in seen)
        mean = sum(s for _, s in seen) / len(seen)
        digest = hashlib.sha256("\n".join(requests).encode()).hexdigest()[:16]
        comment = {"request": MEAN_PREFIX + digest, "position_mean": mean, "orders": len(seen),
                   "requests": requests, **base}  # fmt: skip
        # The rating column takes 1-4: the mean rounded half up there; `log stats` reads the exact mean.
        out.append((c.run_id, math.floor(mean + 0.5), comment))
    return out
