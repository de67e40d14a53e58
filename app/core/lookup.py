"""Prompt-lookup (n-gram) speculative decoding for greedy answers: draft from the note, verify in one decode.

Extraction answers copy the note: names, doses, dates. When the last few tokens of (prompt + answer so far)
occurred earlier, the tokens that followed them then are a good guess for what follows now. The guess (the
*draft*) is checked in ONE ``llama_decode`` of ``[last token + draft]`` with logits at those rows only, and
accepted by the greedy rule: the longest prefix of the draft where the model's argmax equals the draft, plus
the model's own next token. Rejected rows are removed from the KV cache, so the context holds exactly what
plain decoding would hold.

Only greedy answers use it (``lookup_applies``): with temperature > 0 the engine decodes plainly, because the
standard rejection rule would have to reproduce llama.cpp's whole sampler chain (top-k, top-p, min-p,
temperature) on every draft row, and a sampled answer would then differ from the plain path's for the same
seed anyway.

What a draft costs decides whether it pays, and that depends on the model and the machine: a small model on
two cores is compute-bound (a 2-row decode of the demo model costs ~2 single-token decodes), a 7B model is
memory-bound (extra rows are nearly free). So the cost is measured while the answer is decoded: every decode
is timed, a decode without a draft gives the single-token time, and a verification that produced
``accepted + 1`` tokens saved ``(accepted + 1) x single - its own time``. :class:`DraftSizer` shrinks the
draft after a miss, grows it after a full hit, and turns drafting off for the rest of the answer once the
drafts of a recent window saved no time.

The llama.cpp calls (the verifying decode, the KV rollback, ``Llama``'s token bookkeeping) are in
``app/core/llama_adapter.py``; this module decides what to draft and what was accepted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from app.core.types import DraftStats, SamplingParams

NGRAM_MAX = 3
"""Longest suffix looked up: three tokens pin a copied span well (a word and its two neighbours)."""
NGRAM_MIN = 2
"""Shortest suffix looked up: one token (``" mg"``, ``","``) matches almost anywhere in a note, and its
drafts are mostly wrong; two already tell which of the note's doses is being copied."""
DRAFT_MAX = 4
"""Longest draft (a verification has at most 5 rows). Drafts grow to it only while every drafted token is
accepted, and the measured cost keeps them from costing more than they save. Not identity: no draft size
keeps a greedy answer byte-identical to plain decoding on llama.cpp's CPU kernels, where even row 0 of a
2-row decode can get other logits than a 1-row decode of the same token (``bench_lookup.py``'s row checks);
that is why the engine keeps lookup off by default (``EngineConfig.lookup``)."""
DRAFT_START = 2
"""First draft size of an answer, before any acceptance is known."""
EXTRA_ROW_COST = 0.57
"""What each drafted row adds to a decode, in single-token decodes, until the answer has timed a decode
without a draft: ``bench_batched_kernels.py`` measured 4 rows at ~2.7x one on the 2-core machine,
``(2.7 - 1) / 3``. Only a starting guess; :class:`DraftSizer` uses the times it measures."""
WINDOW = 6
"""Verifications looked back on to decide whether drafting still pays."""
SINGLE_SMOOTHING = 0.25
"""Weight of the newest undrafted decode in the running single-token time (an exponential average, so one
decode slowed by another process moves it only a little)."""


def lookup_applies(sampling: SamplingParams, enabled: bool) -> bool:
    """Whether an answer uses prompt lookup: the setting is on and the answer is greedy without penalties.

    A repeat penalty changes the greedy token depending on the tokens before it; the verifier takes the
    plain argmax of each row, so a penalised answer decodes plainly (all task presets use 1.0).
    """
    return enabled and sampling.greedy and sampling.repeat_penalty == 1.0


class NgramIndex:
    """Where each short n-gram of the token history last occurred with a token after it.

    ``draft`` looks up the last ``NGRAM_MAX`` down to ``NGRAM_MIN`` tokens and returns what followed their
    most recent earlier occurrence. Appending a token is O(``NGRAM_MAX``): the n-grams that end just
    before it now have a continuation, so their entries move to it.
    """

    def __init__(self, tokens: Sequence[int], n_min: int = NGRAM_MIN, n_max: int = NGRAM_MAX) -> None:
        self.tokens: list[int] = []
        self.n_min, self.n_max = n_min, n_max
        self._next: dict[tuple[int, ...], int] = {}
        """n-gram -> index of the token that followed its most recent occurrence."""
        for tok in tokens:
            self.append(tok)

    def append(self, tok: int) -> None:
        i = len(self.tokens)
        for n in range(self.n_min, self.n_max + 1):
            if i >= n:
                self._next[tuple(self.tokens[i - n : i])] = i
        self.tokens.append(tok)

    def draft(self, limit: int) -> list[int]:
        """Up to ``limit`` tokens that followed the longest matching suffix last time ([] when none)."""
        if limit <= 0:
            return []
        end = len(self.tokens)
        for n in range(self.n_max, self.n_min - 1, -1):
            if end < n:
                continue
            start = self._next.get(tuple(self.tokens[end - n :]))
            if start is not None:
                return self.tokens[start : min(start + limit, end)]
        return []


def cut_draft(draft: Sequence[int], stops_after: Callable[[int], bool]) -> list[int]:
    """The draft up to and including the first token after which the answer would end.

    ``stops_after(i)`` says whether the answer ends at draft token ``i`` (an end-of-generation token, or a
    stop string completed by it): rows after it could never be used, so they are not verified.
    """
    for i in range(len(draft)):
        if stops_after(i):
            return list(draft[: i + 1])
    return list(draft)


class DraftSizer:
    """The adaptive draft size, the measured cost of drafting, and the acceptance statistics of one answer."""

    def __init__(self) -> None:
        self.size = DRAFT_START
        self.drafted = 0
        self.accepted = 0
        self.verifications = 0
        self.stopped = False
        self.single_s: float | None = None
        """Running time of one decode without a draft (None until one was timed)."""
        self._saved: deque[float] = deque(maxlen=WINDOW)
        """Seconds each recent verification saved against plain decoding (negative: it cost more)."""

    def limit(self) -> int:
        """How many tokens the next draft may have (0: drafting is off for the rest of the answer)."""
        return 0 if self.stopped else self.size

    def record_plain(self, seconds: float) -> None:
        """A decode of one token without a draft took ``seconds``."""
        prev = self.single_s
        self.single_s = seconds if prev is None else prev + SINGLE_SMOOTHING * (seconds - prev)

    def record(self, drafted: int, accepted: int, seconds: float) -> None:
        """One verification: ``accepted`` of ``drafted`` draft tokens matched the model's greedy choice, and
        its decode (``drafted + 1`` rows) took ``seconds``."""
        self.drafted += drafted
        self.accepted += accepted
        self.verifications += 1
        # Grow after a full hit (the copied span goes on), shrink to what was accepted plus one after a miss.
        self.size = min(DRAFT_MAX, self.size * 2) if accepted == drafted else max(1, accepted + 1)
        single = self.single_s if self.single_s is not None else seconds / (1 + EXTRA_ROW_COST * drafted)
        self._saved.append((accepted + 1) * single - seconds)  # plain decoding's time for these tokens, less ours
        if len(self._saved) == WINDOW and sum(self._saved) <= 0:
            self.stopped = True  # the recent drafts cost at least what they saved: plain decoding from here

    def stats(self) -> DraftStats:
        return DraftStats(self.drafted, self.accepted, self.verifications, self.stopped)


@dataclass(frozen=True)
class LookupLimits:
    """What bounds a draft besides the sizer: the answer's token cap and the context."""

    max_tokens: int
    n_ctx: int


class Verifier(Protocol):
    """What the decoder needs from llama.cpp (``app.core.llama_adapter.GreedyVerifier`` implements it)."""

    def evaluated(self) -> int:
        """Tokens the context holds now."""
        ...

    def verify(self, tokens: Sequence[int], pos: int) -> list[int]:
        """Decode ``tokens`` at ``pos``.. in one batch; the greedy next token after each row."""
        ...

    def keep(self, tokens: Sequence[int], pos: int, n: int) -> None:
        """Keep the first ``n`` of ``tokens`` (just decoded at ``pos``) in the context, drop the rest."""
        ...

    def view(self, n: int) -> None:
        """Make the bookkeeping say ``n`` tokens are evaluated (what plain decoding would say now)."""
        ...


def lookup_tokens(
    first: Generator[int, Any, None],
    prompt: Sequence[int],
    verifier: Verifier,
    limits: LookupLimits,
    sizer: DraftSizer,
    stops_after: Callable[[list[int], int], bool],
    clock: Callable[[], float] = time.perf_counter,
) -> Generator[int, None, None]:
    """The answer's tokens, as plain greedy decoding would yield them, decoded with prompt-lookup drafts.

    ``first`` is ``Llama.generate`` over the prompt: it evaluates the prompt (cancellable like the plain
    path) and samples the first token; from then on every decode is a verification here. Like the plain
    path, a token is evaluated only when the consumer asks for the one after it, so closing the generator
    at a token leaves the context holding exactly the tokens before it. ``stops_after(draft, i)`` says
    whether the answer would end at ``draft[i]``; ``clock`` times each decode for the sizer.
    """
    tok = next(first)
    first.close()  # Llama would evaluate the token when resumed; the verifications below do instead
    pos = verifier.evaluated()  # where ``tok`` will be evaluated
    index = NgramIndex([*prompt, tok])
    given = 1
    try:
        yield tok
        while True:
            # The cut keeps every row a plain decode would also evaluate: tokens past max_tokens or the
            # context's last usable position are never decoded by the plain path either.
            room = min(sizer.limit(), limits.max_tokens - given - 1, limits.n_ctx - 2 - pos)
            draft = index.draft(room)
            draft = cut_draft(draft, lambda i, d=draft: stops_after(d, i))
            t0 = clock()
            greedy = verifier.verify([tok, *draft], pos)
            took = clock() - t0
            n_ok = 0
            while n_ok < len(draft) and greedy[n_ok] == draft[n_ok]:
                n_ok += 1
            verifier.keep([tok, *draft], pos, 1 + n_ok)
            if draft:
                sizer.record(len(draft), n_ok, took)
            else:
                sizer.record_plain(took)
            for t in [*draft[:n_ok], greedy[n_ok]]:
                pos += 1
                verifier.view(pos)  # the tokens before ``t``, as plain decoding would report
                index.append(t)
                given += 1
                tok = t
                yield t
    finally:
        # Closed at a token (or failed): the context keeps only what comes before it, as on the plain path.
        verifier.keep([], pos, 0)


def stop_rule(
    is_end: Callable[[int], bool], detok: Callable[[int], bytes], stops: Sequence[str], answer: Callable[[], str]
) -> Callable[[list[int], int], bool]:
    """``stops_after(draft, i)``: whether the answer would end at ``draft[i]``, an end-of-generation (or other
    control) token or the last token of a stop string, given the answer's text so far (``answer()``)."""
    longest = max((len(s) for s in stops), default=0)

    def stops_after(draft: list[int], i: int) -> bool:
        if is_end(draft[i]):
            return True
        if not longest:
            return False
        tail = answer()[-longest:] if longest > 1 else ""
        text = tail + b"".join(detok(t) for t in draft[: i + 1]).decode("utf-8", "replace")
        return any(s in text for s in stops)

    return stops_after
