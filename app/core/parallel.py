"""Several answers about one note decoded together: a shared KV prefix and continuous batching.

The note prefix ``[BOS + head + note]`` is evaluated once in sequence 0, which only ever holds that prefix.
Each question gets a slot (sequence 1..N): ``llama_memory_seq_cp`` makes the slot see the prefix cells
(a unified KV cache shares them; nothing is copied), the question's suffix is evaluated at the positions
after the prefix, and from then on every active slot contributes one token to one ``llama_decode`` per
step. A slot that finishes (stop, length, its own cancel) is dropped and the next waiting question takes
it in the same step (continuous batching). A question is admitted only when the prefix plus every active
slot's worst case (suffix + max_tokens) still fits the context, so the KV cache never runs out.

Greedy answers are what the one-at-a-time path gives, up to floating-point reduction order: a batch of N
rows can take other matrix kernels than a single row, which can flip a near-tie between two tokens. How
often that happens on the shared notes is measured by ``tests/bench/bench_parallel.py``.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.core.llama_adapter import SequenceBatch, SequenceMemory
from app.core.types import DraftStats, FinishReason, SamplingParams
from resources import PromptStyle

IndexedToken = Callable[[int, str], None]
"""``(index of the request, piece of its answer)``."""


class AnswerText:
    """Turns sampled tokens into answer text: incremental UTF-8, stop strings, held-back tails.

    ``push`` returns the finish reason when a stop string appeared (text cut before it); ``ready`` is the
    text safe to stream now (a possible start of a stop string is held back).
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = tuple(stop)
        self._hold = max((len(s) for s in self.stop), default=0)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.emitted = 0

    def push(self, piece: bytes) -> bool:
        """Add a token's bytes; True when a stop string ended the answer."""
        self.text += self._decoder.decode(piece)
        cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = self.text[:cut]
            return True
        return False

    def ready(self) -> str:
        safe = len(self.text) - (self._hold - 1) if self._hold else len(self.text)
        if safe <= self.emitted:
            return ""
        out = self.text[self.emitted : safe]
        self.emitted = safe
        return out

    def finish(self, reason: FinishReason) -> str:
        """Final text; returns the rest not streamed yet."""
        if reason is not FinishReason.CANCELLED:
            self.text += self._decoder.decode(b"", final=True)
        if reason is FinishReason.STOP:
            self.text = self.text.rstrip()
        rest = self.text[self.emitted :] if len(self.text) > self.emitted else ""
        self.emitted = max(self.emitted, len(self.text))
        return rest


@dataclass
class SeqJob:
    """One question for the decoder: its prompt suffix (after the shared prefix) and its settings."""

    index: int
    suffix: list[int]
    sampling: SamplingParams
    cancel: threading.Event | None = None


@dataclass
class SeqOutput:
    text: str = ""
    finish: FinishReason = FinishReason.LENGTH
    n_out: int = 0
    t_start: float = 0.0
    t_first: float | None = None
    t_end: float = 0.0
    error: str | None = None
    lookup: DraftStats | None = None
    """Prompt-lookup statistics of a single greedy answer (None: decoded plainly, as this path always does)."""


@dataclass
class _Slot:
    seq: int
    job: SeqJob
    out: SeqOutput
    text: AnswerText
    chain: object | None
    pos: int
    logit_idx: int = -1
    pending: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ParallelPlan:
    """How many sequences run together, and why."""

    n_parallel: int
    reserve: list[int]
    """Per job: suffix + max_tokens, the cells it may take."""


def plan(prefix_len: int, jobs: Sequence[SeqJob], n_ctx: int, cap: int) -> ParallelPlan:
    """Slots: at most ``cap``, and no more than fit the context beside the prefix in the worst case."""
    reserve = [len(j.suffix) + j.sampling.max_tokens for j in jobs]
    free = n_ctx - prefix_len - 1
    n, used = 0, 0
    for r in sorted(reserve):
        if n >= cap or used + r > free:
            break
        n, used = n + 1, used + r
    return ParallelPlan(max(1, n), reserve)


class ParallelDecoder:
    """Decodes many jobs over the prefix held by sequence 0 (the engine's lock must be held)."""

    def __init__(
        self, memory: SequenceMemory, detok: Callable[[int], bytes], is_eog: Callable[[int], bool], n_ctx: int
    ) -> None:
        self.memory = memory
        self.detok = detok
        self.is_eog = is_eog
        self.n_ctx = n_ctx
        self._on_finish: Callable[[int, SeqOutput], None] | None = None

    def run(
        self,
        prefix_len: int,
        jobs: Sequence[SeqJob],
        style: PromptStyle,
        n_parallel: int,
        n_batch: int,
        on_token: IndexedToken | None,
        hooks: tuple[Callable[[int], None] | None, Callable[[int, SeqOutput], None] | None],
        cancel: threading.Event,
    ) -> list[SeqOutput]:
        """Answer ``jobs`` over the prefix; ``hooks`` = (on_start(index), on_finish(index, output))."""
        on_start, self._on_finish = hooks
        reserve = {j.index: len(j.suffix) + j.sampling.max_tokens for j in jobs}
        waiting = list(jobs)
        outputs = {j.index: SeqOutput() for j in jobs}
        free_seqs = list(range(n_parallel, 0, -1))
        active: list[_Slot] = []
        used = 0
        batch = SequenceBatch(max(n_batch, n_parallel))
        try:
            while waiting or active:
                # Admit waiting questions into free slots while the context has room for their worst case.
                while waiting and free_seqs and not cancel.is_set():
                    job = waiting[0]
                    if active and prefix_len + used + reserve[job.index] >= self.n_ctx:
                        break
                    waiting.pop(0)
                    seq = free_seqs.pop()
                    self.memory.share(0, seq, prefix_len)
                    sp = job.sampling
                    chain = self.memory.sampler(
                        temp=sp.temperature,
                        top_k=sp.top_k,
                        top_p=sp.top_p,
                        min_p=sp.min_p,
                        repeat_penalty=sp.repeat_penalty,
                        seed=sp.seed,
                        last_n=64,
                    )
                    out = outputs[job.index]
                    out.t_start = time.perf_counter()
                    active.append(_Slot(seq, job, out, AnswerText(style.stop), chain, prefix_len, -1, list(job.suffix)))
                    used += reserve[job.index]
                    if on_start is not None:
                        on_start(job.index)
                if cancel.is_set():
                    for s in active:
                        self._finish(s, FinishReason.CANCELLED, on_token)
                    for job in waiting:
                        outputs[job.index].finish = FinishReason.CANCELLED
                    active, waiting = [], []
                    break
                if not active:
                    break
                # One decode for every slot: prompt suffixes (chunked to the batch size) and next tokens.
                batch.clear()
                for s in active:
                    s.logit_idx = -1
                for s in active:
                    take = min(len(s.pending), batch.capacity - batch.n)
                    if take == 0:
                        continue
                    for k in range(take):
                        last = k == take - 1 and take == len(s.pending)
                        idx = batch.add(s.pending[k], s.pos + k, s.seq, last)
                        if last:
                            s.logit_idx = idx
                    s.pos += take
                    del s.pending[:take]
                rc = batch.decode(self.memory.llm.ctx)
                if rc != 0:
                    reason = f"llama.cpp could not decode the batch (status {rc})"
                    for s in active:
                        s.out.error = reason
                        self._finish(s, FinishReason.ERROR, on_token)
                    for job in waiting:
                        outputs[job.index].finish = FinishReason.ERROR
                        outputs[job.index].error = reason
                    active, waiting = [], []
                    break
                still: list[_Slot] = []
                for s in active:
                    reason = self._step(s, on_token)
                    if reason is None:
                        still.append(s)
                        continue
                    self._finish(s, reason, on_token)
                    free_seqs.append(s.seq)
                    used -= reserve[s.job.index]
                active = still
        finally:
            for s in active:
                if s.chain is not None:
                    self.memory.free_sampler(s.chain)
            for seq in range(1, n_parallel + 1):
                self.memory.drop(seq)
            batch.close()
        return [outputs[j.index] for j in jobs]

    def _step(self, s: _Slot, on_token: IndexedToken | None) -> FinishReason | None:
        """Sample the slot's next token if it has logits this step; a finish reason ends it."""
        if s.job.cancel is not None and s.job.cancel.is_set():
            return FinishReason.CANCELLED
        if s.logit_idx < 0:
            return None  # still evaluating its prompt suffix
        tok = self.memory.sample(s.chain, s.logit_idx)
        if s.out.t_first is None:
            s.out.t_first = time.perf_counter()
        if self.is_eog(tok):
            return FinishReason.STOP
        s.out.n_out += 1
        if s.text.push(self.detok(tok)):
            return FinishReason.STOP
        piece = s.text.ready()
        if piece and on_token is not None:
            on_token(s.job.index, piece)
        if s.out.n_out >= s.job.sampling.max_tokens or s.pos >= self.n_ctx - 1:
            return FinishReason.LENGTH
        s.pending = [tok]
        return None

    def _finish(self, s: _Slot, reason: FinishReason, on_token: IndexedToken | None) -> None:
        rest = s.text.finish(reason)
        if rest and on_token is not None:
            on_token(s.job.index, rest)
        s.out.text = s.text.text
        s.out.finish = reason
        s.out.t_end = time.perf_counter()
        if s.chain is not None:
            self.memory.free_sampler(s.chain)
            s.chain = None
        self.memory.drop(s.seq)
        if self._on_finish is not None:
            self._on_finish(s.job.index, s.out)
