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

What a draft costs decides whether it pays: on the 2-core development machine verifying 4 tokens in one
batch costs ~2.7 single-token decodes (``tests/bench/bench_batched_kernels.py``; ``bench_lookup.py`` prints
the same kernel measurement for 1..9 rows), so a draft of ``k`` tokens costs ``1 + EXTRA_ROW_COST * k``
decodes and saves ``accepted - EXTRA_ROW_COST * k`` of them. :class:`DraftSizer` shrinks the draft after a
miss, grows it after a full hit, and turns drafting off for the rest of the answer once the drafts of a
recent window saved nothing.

The llama.cpp calls (the verifying decode, the KV rollback, ``Llama``'s token bookkeeping) are in
``app/core/llama_adapter.py``; this module decides what to draft and what was accepted.
"""

from __future__ import annotations

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
DRAFT_MAX = 2
"""Longest draft, so a verification has at most 3 rows: on llama.cpp's CPU kernels (this build, the demo model)
rows 0..2 of a batch got logits bit-identical to single-token decodes at the probed position, rows 3 and later
differed by up to 1.4 logits (``bench_lookup.py``'s row check); with drafts of up to 8, 2 of 15 answers
differed from plain decoding. Not enough: with 3 rows 3 of 16 still differed (near-tied tokens), so rows
0..2 are not identical at every position; the engine keeps lookup off by default (``EngineConfig.lookup``)."""
DRAFT_START = 2
"""First draft size of an answer, before any acceptance is known."""
EXTRA_ROW_COST = 0.57
"""What each drafted row adds to a decode, in single-token decodes: ``bench_batched_kernels.py`` measured 4
rows at ~2.7x one on the 2-core machine, ``(2.7 - 1) / 3``. A constant rather than a measurement at engine
start: a start-up probe would add seconds to every model load and be as noisy as the machine's load."""
WINDOW = 6
"""Verifications looked back on to decide whether drafting still pays."""


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
    """The adaptive draft size, and the acceptance statistics of one answer."""

    def __init__(self) -> None:
        self.size = DRAFT_START
        self.drafted = 0
        self.accepted = 0
        self.verifications = 0
        self.stopped = False
        self._saved: deque[float] = deque(maxlen=WINDOW)

    def limit(self) -> int:
        """How many tokens the next draft may have (0: drafting is off for the rest of the answer)."""
        return 0 if self.stopped else self.size

    def record(self, drafted: int, accepted: int) -> None:
        """One verification: ``accepted`` of ``drafted`` draft tokens matched the model's greedy choice."""
        self.drafted += drafted
        self.accepted += accepted
        self.verifications += 1
        # Grow after a full hit (the copied span goes on), shrink to what was accepted plus one after a miss.
        self.size = min(DRAFT_MAX, self.size * 2) if accepted == drafted else max(1, accepted + 1)
        self._saved.append(accepted - EXTRA_ROW_COST * drafted)
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
) -> Generator[int, None, None]:
    """The answer's tokens, as plain greedy decoding would yield them, decoded with prompt-lookup drafts.

    ``first`` is ``Llama.generate`` over the prompt: it evaluates the prompt (cancellable like the plain
    path) and samples the first token; from then on every decode is a verification here. Like the plain
    path, a token is evaluated only when the consumer asks for the one after it, so closing the generator
    at a token leaves the context holding exactly the tokens before it. ``stops_after(draft, i)`` says
    whether the answer would end at ``draft[i]``.
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
            greedy = verifier.verify([tok, *draft], pos)
            n_ok = 0
            while n_ok < len(draft) and greedy[n_ok] == draft[n_ok]:
                n_ok += 1
            verifier.keep([tok, *draft], pos, 1 + n_ok)
            if draft:
                sizer.record(len(draft), n_ok)
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
