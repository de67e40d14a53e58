"""The inference engine: a streamed single-turn answer from a local GGUF model through llama.cpp.

Three properties matter more than anything else here:

* **User text never becomes control tokens.** Template segments are tokenized with special tokens
  parsed; note and instruction text with them disabled. A note containing ``</s>`` or
  ``[Instruction End]`` stays plain text: it cannot end generation or change the prompt's structure
  (the rule is ``resources.prompt_tokens``, shared with training).
* **Cancel at any moment.** A llama.cpp abort callback checks the run's cancel event inside prompt
  processing, so Stop works during a long note too; the engine stays usable afterwards.
* **KV reuse.** A follow-up on the same note reuses the evaluated ``[BOS + head + note]`` prefix (prefix
  match on the live context); returning to a recently used note restores its saved sequence state from a
  bounded LRU cache.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import llama_cpp

from app.core.backend import AnyEvent, EngineCapabilities, InferenceEngine, TokenCallback, style_for
from app.core.budget import Budget
from app.core.config import EngineConfig
from app.core.errors import ModelError
from app.core.kvstate import CachedState, DiskKey, DiskStateStore, StateCache, prefix_key
from app.core.llama_adapter import GreedyVerifier, LlamaInternals, SequenceMemory, open_llama
from app.core.llama_backends import ensure_cpu_backend
from app.core.lookup import DRAFT_MAX, DraftSizer, LookupLimits, lookup_applies, lookup_tokens, stop_rule
from app.core.notes import validate_note, validate_request
from app.core.parallel import AnswerText, IndexedToken, ParallelDecoder, SeqJob, SeqOutput, plan
from app.core.preread import GiveWay, Preread, PrereadProgress, Waiters, evaluate_chunks
from app.core.types import (
    AnswerClock,
    AskRequest,
    DraftStats,
    FinishReason,
    ModelInfo,
    RunResult,
    SamplingParams,
    Truncation,
    note_sha256,
)
from resources import PromptStyle
from resources.prompt_tokens import segment_tokens

log = logging.getLogger(__name__)

ENGINE_NAME = f"llama-cpp-python {llama_cpp.__version__}"

__all__ = ["ENGINE_NAME", "InferenceEngine", "LlamaCppEngine", "PromptTokens", "TokenCallback"]

_llama_log = logging.getLogger("llama.cpp")


@llama_cpp.llama_log_callback
def _route_llama_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    # llama.cpp's own chatter goes to Python logging, never straight to the terminal: it logs harmless
    # notices at error level (the Gemma 3 SWA cache notice), and real failures reach us as exceptions.
    # It never contains prompt text: llama.cpp logs shapes and settings, not tokens.
    msg = text.decode("utf-8", "replace").rstrip()
    _llama_log.log(logging.INFO if level == 3 else logging.DEBUG, "%s", msg)


def _quiet_llama_cpp() -> None:
    llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))


@dataclass(frozen=True)
class PromptTokens:
    """A tokenized prompt: ``prefix`` ([BOS + head + note]) is what KV reuse keys on."""

    prefix: list[int]
    suffix: list[int]
    template_tokens: int
    note_tokens: list[int]
    instruction_tokens: int

    @property
    def all(self) -> list[int]:
        return self.prefix + self.suffix


class LlamaCppEngine:
    """One loaded GGUF model. Thread-safe: one lock per model serialises runs; close() frees it."""

    capabilities = EngineCapabilities(ask_many=True, prompt_tokens=True, preread=True)
    """Runs are serialised by the lock, so no concurrency: several answers go through :meth:`ask_many`."""

    def __init__(self, model: ModelInfo, config: EngineConfig | None = None, *, state_dir: Path | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self._lock = threading.Lock()
        self._waiters = Waiters()
        """Runs waiting for the lock: a preread holding it stops for them (``Waiters.turn``)."""
        self._closed = False
        self.n_ctx = self.config.context_for(model.context_length)
        _quiet_llama_cpp()
        ensure_cpu_backend()
        try:
            self._llm = open_llama(
                n_seq_max=self.config.parallel + 1,  # sequence 0 holds the note prefix (app/core/parallel.py)
                model_path=model.path,
                n_ctx=self.n_ctx,
                n_batch=self.config.n_batch,
                n_ubatch=self.config.n_batch,
                n_threads=self.config.n_threads,
                n_threads_batch=self.config.n_threads,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {model.path}: {exc}") from None
        self._internals = LlamaInternals(self._llm)
        self._memory = SequenceMemory(self._llm)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._verifier = GreedyVerifier(self._llm, DRAFT_MAX + 1)
        # The abort callback runs on llama.cpp's compute thread between graph nodes; it only reads an Event.
        # It is armed only while the prompt is processed: during decoding it would cost a Python call (and a
        # GIL acquisition) per graph node of every token, and a cancel between tokens is quick enough there.
        self._cancel: threading.Event | None = None
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)
        self._no_abort_cb = llama_cpp.ggml_abort_callback()  # NULL
        self._states = StateCache(self.config.kv_cache_mb * 1024 * 1024)
        self._loaded_prefix: tuple[int, ...] = ()
        self._loaded_key: DiskKey | None = None
        self._disk = DiskStateStore(state_dir, self.config.kv_disk_mb * 1024 * 1024) if state_dir else None
        """Note states kept across restarts (None: off, e.g. the user chose hash-only note storage)."""
        self._on_disk: set[DiskKey] = set()
        self.last_parallel = 0
        """How many sequences the last :meth:`ask_many` decoded together."""
        self.last_prefix_source = "none"
        """How the last run got its note prefix: ``live`` (still in context), ``cache``, or ``eval``."""

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        with self._waiters.turn(self._lock):
            if not self._closed:
                try:
                    self._save_loaded_prefix(to_memory=False)  # warm after a restart
                except Exception as exc:  # closing must not fail over a cache
                    log.warning("the current note state was not kept: %s", exc)
                self._closed = True
                self._states.clear()
                self._verifier.close()
                self._llm.close()

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def evaluated_tokens(self) -> int:
        """Tokens whose KV state is in the context now (a cancelled prompt leaves fewer than it had)."""
        return self._internals.n_tokens

    def is_control_token(self, token: int) -> bool:
        """True for BOS/EOS/EOT and other control tokens (what user text must never produce)."""
        return bool(
            llama_cpp.llama_vocab_is_control(self._vocab, token) or llama_cpp.llama_vocab_is_eog(self._vocab, token)
        )

    def _arm_abort(self, armed: bool) -> None:
        llama_cpp.llama_set_abort_callback(self._llm.ctx, self._abort_cb if armed else self._no_abort_cb, None)

    def _should_abort(self, _data: ctypes.c_void_p) -> bool:
        ev = self._cancel
        return ev is not None and ev.is_set()

    # -- tokenization -----------------------------------------------------------------------------
    def _tok(self, text: str, *, bos: bool, special: bool) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)

    def tokenize_prompt(self, style: PromptStyle, note: str, instruction: str) -> PromptTokens:
        # The one segment rule training uses too (resources/prompt_tokens.py).
        bos = [t for t in self._tok("", bos=True, special=True) if t == self._llm.token_bos()]
        pieces = segment_tokens(
            style, note, instruction, lambda text, special: self._tok(text, bos=False, special=special), bos=bos
        )
        head, note_t, middle, instr, tail = pieces
        return PromptTokens(
            prefix=head + note_t,
            suffix=middle + instr + tail,
            template_tokens=len(head) + len(middle) + len(tail),
            note_tokens=note_t,
            instruction_tokens=len(instr),
        )

    def style_for(self, prompt_style: str | None) -> PromptStyle:
        return style_for(prompt_style, self.model.prompt_style)

    def budget(self, note: str, instruction: str, max_tokens: int, prompt_style: str | None = None) -> Budget:
        pt = self.tokenize_prompt(self.style_for(prompt_style), note, instruction)
        return Budget(self.n_ctx, pt.template_tokens, len(pt.note_tokens), pt.instruction_tokens, max_tokens)

    # -- KV state management ----------------------------------------------------------------------
    def _live_prefix_len(self, prefix: list[int]) -> int:
        return self._internals.live_prefix_len(prefix)

    def _save_loaded_prefix(self, *, to_memory: bool = True) -> None:
        """Keep the note prefix now in the context so a later return to that note is fast.

        In the memory LRU, and on disk (when the engine has a disk store) so it survives a restart; a
        state already written this session is not written again.
        """
        p, key = self._loaded_prefix, self._loaded_key
        keep_memory = to_memory and self._states.budget_bytes > 0
        keep_disk = self._disk is not None and key is not None and key not in self._on_disk
        if not p or not (keep_memory or keep_disk) or self._live_prefix_len(list(p)) < len(p):
            return
        # Drop the question and answer after the prefix: only [BOS + head + note] is worth keeping.
        self._internals.keep_first(len(p))
        data = self._internals.save_sequence()
        if data is None:
            return
        if keep_memory:
            self._states.put(prefix_key(self.model.sha256, p), CachedState(p, data))
        if keep_disk and self._disk is not None and key is not None and self._disk.save(key, p, data):
            self._on_disk.add(key)

    def _prepare_prefix(self, prefix: list[int], key: DiskKey | None = None) -> None:
        """Make the context start with ``prefix`` evaluated if it is live or kept; else leave it to eval."""
        if self._live_prefix_len(prefix) == len(prefix):
            self.last_prefix_source = "live"
            return
        self._save_loaded_prefix()
        cached = self._states.get(prefix_key(self.model.sha256, prefix))
        source = "cache"
        if cached is None and self._disk is not None and key is not None:
            data = self._disk.load(key, prefix)
            if data is not None:
                cached, source = CachedState(tuple(prefix), data), "disk"
                self._on_disk.add(key)
                self._states.put(prefix_key(self.model.sha256, prefix), cached)
        if cached is None:
            self.last_prefix_source = "eval"
            return
        if not self._internals.restore_sequence(cached.data, prefix):
            log.warning("restoring a kept note state failed; evaluating the note again")
            self.last_prefix_source = "eval"
            return
        self.last_prefix_source = source

    def preread(
        self,
        note: str,
        prompt_style: str | None = None,
        *,
        on_progress: PrereadProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> Preread:
        """Evaluate the note's prefix before the question arrives (app/core/preread.py); say how far it got.

        ``cancel``, or any run waiting for the engine, stops it inside the chunk being evaluated; the part done
        stays in the context, and the next ask on this note continues from it (an ask on another note starts
        as it would have). A preread never keeps a note state: a note becomes worth keeping (and, where the
        log keeps note text, goes to disk) only once a question about it is asked.
        """
        note = validate_note(note)
        style = self.style_for(prompt_style)
        cancel = GiveWay(cancel or threading.Event(), self._waiters)
        with self._lock:
            if self._closed:
                raise ModelError("the engine was closed")
            prefix = self.tokenize_prompt(style, note, " ").prefix[: self.n_ctx - 1]  # the instruction is not in it
            if cancel.is_set():
                return Preread(0, len(prefix), "none")
            self._prepare_prefix(prefix, DiskKey(self.model.sha256, style.key, note_sha256(note)))
            source = self.last_prefix_source
            if source != "live":  # whatever was kept as the loaded note is not in the context any more
                self._loaded_prefix, self._loaded_key = (), None
            self._internals.keep_first(self._live_prefix_len(prefix))
            if on_progress is not None:
                on_progress(self._internals.n_tokens, len(prefix))
            self._cancel = cancel
            self._arm_abort(True)
            try:
                done = evaluate_chunks(self._llm, prefix, self.config.n_batch, cancel, on_progress)
            except RuntimeError as exc:
                raise ModelError(f"llama.cpp failed reading the note: {exc}") from None
            finally:
                self._arm_abort(False)
                self._cancel = None
                self._internals.keep_first(self._internals.n_tokens)  # drop what an aborted chunk left behind
        return Preread(done, len(prefix), source)

    # -- generation -------------------------------------------------------------------------------
    def ask(
        self,
        request: AskRequest,
        on_token: TokenCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Answer one instruction about one note, streaming text pieces to ``on_token``.

        Raises NoteError, UsageError or ContextOverflowError before any evaluation; a cancel or a
        llama.cpp failure during the run is reported in the result's finish reason, never raised.
        """
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        note, instruction, task, style = self._check(request)
        sp = request.sampling
        cancel = cancel or threading.Event()

        with self._waiters.turn(self._lock):
            if self._closed:
                raise ModelError("the engine was closed")
            pt, note, truncation = self._fit(request, style, note, instruction)
            key = DiskKey(self.model.sha256, style.key, note_sha256(note))
            self._prepare_prefix(pt.prefix, key)
            reused = self._live_prefix_len(pt.prefix)
            self._cancel = cancel
            try:
                answer, finish, n_out, t_first, error, drafts = self._generate(pt.all, sp, style, on_token, cancel)
            finally:
                self._cancel = None
            if self._live_prefix_len(pt.prefix) == len(pt.prefix):
                self._loaded_prefix, self._loaded_key = tuple(pt.prefix), key
        out = SeqOutput(answer, finish, n_out, t0, t_first, time.perf_counter(), error, drafts)
        return self._result(request, task, instruction, style, pt, reused, truncation, out, started_at)

    def ask_many(
        self,
        requests: Sequence[AskRequest],
        on_token: IndexedToken | None = None,
        cancel: threading.Event | None = None,
        *,
        cancels: Sequence[threading.Event] | None = None,
        parallel: int | None = None,
        on_start: Callable[[int], None] | None = None,
        on_finish: Callable[[int, RunResult], None] | None = None,
    ) -> list[RunResult | None]:
        """Answer several requests about one note, decoding up to ``parallel`` of them together.

        Every request is checked first (as :meth:`ask` does, raising before any evaluation). The note
        prefix is evaluated once and shared (app/core/parallel.py); a request that never started (all
        cancelled first) gives None. ``cancels[i]`` stops request ``i`` alone, ``cancel`` stops them all.
        ``parallel`` 1 (or a request whose note must be cut) answers one at a time through :meth:`ask`.
        """
        started_at = datetime.now(UTC)
        cancel = cancel or threading.Event()
        own = [AnyEvent(cancel, cancels[i]) if cancels else cancel for i in range(len(requests))]
        checked = [self._check(r) for r in requests]
        cap = max(1, min(parallel or self.config.parallel, self.config.parallel))
        with self._waiters.turn(self._lock):
            if self._closed:
                raise ModelError("the engine was closed")
            fitted = [self._fit(r, c[3], c[0], c[1]) for r, c in zip(requests, checked, strict=True)]
            prefix = fitted[0][0].prefix if fitted else []
            one_by_one = cap == 1 or len(requests) < 2 or any(f[2] is not None or f[0].prefix != prefix for f in fitted)
            if not one_by_one:
                return self._ask_parallel(
                    requests, checked, fitted, own, cancel, cap, on_token, (on_start, on_finish), started_at
                )
        out: list[RunResult | None] = []
        for i, req in enumerate(requests):
            if cancel.is_set():
                out.append(None)
                continue
            if on_start is not None:
                on_start(i)
            sink = (lambda piece, i=i: on_token(i, piece)) if on_token is not None else None
            out.append(self.ask(req, sink, own[i]))
            if on_finish is not None:
                on_finish(i, out[-1])
        return out

    def _ask_parallel(
        self,
        requests: Sequence[AskRequest],
        checked: list[tuple[str, str, str, PromptStyle]],
        fitted: list[tuple[PromptTokens, str, Truncation | None]],
        cancels: list[threading.Event],
        cancel: threading.Event,
        cap: int,
        on_token: IndexedToken | None,
        hooks: tuple[Callable[[int], None] | None, Callable[[int, RunResult], None] | None],
        started_at: datetime,
    ) -> list[RunResult | None]:
        prefix = fitted[0][0].prefix
        t0 = time.perf_counter()
        key = DiskKey(self.model.sha256, checked[0][3].key, note_sha256(fitted[0][1]))
        self._prepare_prefix(prefix, key)
        live = self._live_prefix_len(prefix)
        self._internals.keep_first(live)
        if live < len(prefix):
            self._cancel = cancel
            self._arm_abort(True)
            try:
                self._llm.eval(prefix[live:])
            except RuntimeError as exc:
                self._internals.keep_first(self._live_prefix_len(prefix))
                if not cancel.is_set():
                    raise ModelError(f"llama.cpp failed evaluating the note: {exc}") from None
                return [None] * len(requests)  # cancelled while the note was read: nothing started
            finally:
                self._arm_abort(False)
                self._cancel = None
        jobs = [
            SeqJob(i, f[0].suffix, r.sampling, cancels[i])
            for i, (r, f) in enumerate(zip(requests, fitted, strict=True))
        ]
        n = plan(len(prefix), jobs, self.n_ctx, cap).n_parallel
        decoder = ParallelDecoder(
            self._memory,
            lambda tok: self._llm.detokenize([tok], special=False),
            lambda tok: bool(llama_cpp.llama_vocab_is_eog(self._vocab, tok)),
            self.n_ctx,
        )
        on_start, on_finish = hooks
        results: list[RunResult | None] = [None] * len(requests)

        def finished(i: int, out: SeqOutput) -> None:
            # Built as each answer ends, so the service can record it before the others are done.
            out.t_start = t0  # time to first token counts from the call, as a user waits for it
            _, instruction, task, style = checked[i]
            reused = live if i == 0 else len(prefix)
            res = self._result(requests[i], task, instruction, style, fitted[i][0], reused, None, out, started_at)
            results[i] = res
            if on_finish is not None:
                on_finish(i, res)

        try:
            decoder.run(
                len(prefix), jobs, checked[0][3], n, self.config.n_batch, on_token, (on_start, finished), cancel
            )
        finally:
            self._memory.set_single(prefix)  # sequence 0 still holds exactly the note prefix
            self._loaded_prefix, self._loaded_key = tuple(prefix), key
        self.last_parallel = n
        return results

    def _check(self, request: AskRequest) -> tuple[str, str, str, PromptStyle]:
        """Validate a request's inputs (NoteError, UsageError) before any evaluation."""
        note, instruction, task = validate_request(request)
        return note, instruction, task, self.style_for(request.prompt_style)

    def _fit(
        self, request: AskRequest, style: PromptStyle, note: str, instruction: str
    ) -> tuple[PromptTokens, str, Truncation | None]:
        """Tokenize the prompt; refuse it (ContextOverflowError) or cut the note when it does not fit."""
        max_tokens = request.sampling.max_tokens
        pt = self.tokenize_prompt(style, note, instruction)
        budget = Budget(self.n_ctx, pt.template_tokens, len(pt.note_tokens), pt.instruction_tokens, max_tokens)
        if budget.fits:
            return pt, note, None
        if not request.truncate:
            raise budget.refusal()
        truncation, note, pt = self._truncate(style, note, instruction, pt, budget, max_tokens)
        return pt, note, truncation

    def _result(
        self,
        request: AskRequest,
        task: str,
        instruction: str,
        style: PromptStyle,
        pt: PromptTokens,
        reused: int,
        truncation: Truncation | None,
        out: SeqOutput,
        started_at: datetime,
    ) -> RunResult:
        return RunResult.of_answer(
            request,
            self.model,
            task=task,
            instruction=instruction,
            answer=out.text,
            finish_reason=out.finish,
            prompt_style=style.key,
            clock=AnswerClock(started_at, out.t_start, out.t_first, out.t_end, out.n_out),
            engine=ENGINE_NAME,
            n_ctx=self.n_ctx,
            n_threads=self.config.n_threads,
            prompt_tokens=len(pt.all),
            reused_tokens=reused,
            truncation=truncation,
            error=out.error,
            lookup=out.lookup,
        )

    def _truncate(
        self, style: PromptStyle, note: str, instruction: str, pt: PromptTokens, budget: Budget, max_tokens: int
    ) -> tuple[Truncation, str, PromptTokens]:
        """Cut the note at a token boundary so the prompt and the answer reserve fit; say where."""
        keep = budget.truncated_note_tokens()
        kept_text = self._llm.detokenize(pt.note_tokens[:keep]).decode("utf-8", errors="ignore")
        cut = note[: len(kept_text.lstrip())]
        cut_pt = self.tokenize_prompt(style, cut, instruction)
        # Re-tokenizing the cut text can differ by a token at the cut; trim until it fits.
        while len(cut_pt.all) + max_tokens > self.n_ctx and cut:
            cut = cut[: int(len(cut) * 0.98)]
            cut_pt = self.tokenize_prompt(style, cut, instruction)
        return Truncation(len(note), len(cut), len(pt.note_tokens), len(cut_pt.note_tokens)), cut, cut_pt

    def _generate(
        self,
        tokens: list[int],
        sp: SamplingParams,
        style: PromptStyle,
        on_token: TokenCallback | None,
        cancel: threading.Event,
    ) -> tuple[str, FinishReason, int, float | None, str | None, DraftStats | None]:
        llm = self._llm
        llm.set_seed(sp.seed)
        stream = AnswerText(style.stop)
        n_out = 0
        t_first: float | None = None
        finish = FinishReason.LENGTH
        error = None
        gen = llm.generate(
            tokens,
            top_k=sp.top_k,
            top_p=sp.top_p,
            min_p=sp.min_p,
            typical_p=1.0,
            temp=sp.temperature,
            repeat_penalty=sp.repeat_penalty,
        )
        sizer = DraftSizer() if lookup_applies(sp, self.config.lookup) else None
        if sizer is not None:  # the same tokens, several verified per decode where the answer copies
            gen = self._lookup(gen, tokens, sp, stream, sizer)
        self._arm_abort(True)
        try:
            for tok in gen:
                if t_first is None:
                    t_first = time.perf_counter()
                    self._arm_abort(False)
                if cancel.is_set():
                    finish = FinishReason.CANCELLED
                    break
                if llama_cpp.llama_vocab_is_eog(self._vocab, tok):
                    finish = FinishReason.STOP
                    break
                n_out += 1
                if stream.push(llm.detokenize([tok], special=False)):
                    finish = FinishReason.STOP
                    break
                piece = stream.ready()  # what could be the start of a stop string is held back
                if on_token is not None and piece:
                    on_token(piece)
                if n_out >= sp.max_tokens or self._internals.n_tokens >= self.n_ctx - 1:
                    finish = FinishReason.LENGTH
                    break
        except RuntimeError as exc:
            # llama_decode returns 2 when our abort callback stopped it.
            if cancel.is_set():
                finish = FinishReason.CANCELLED
            else:
                finish, error = FinishReason.ERROR, f"llama.cpp failed: {exc}"
                log.error("generation failed: %s", exc)
        finally:
            self._arm_abort(False)
            gen.close()
        rest = stream.finish(finish)
        if on_token is not None and rest:
            on_token(rest)
        return stream.text, finish, n_out, t_first, error, sizer.stats() if sizer is not None else None

    def _lookup(
        self,
        gen: Generator[int, Any, None],
        tokens: list[int],
        sp: SamplingParams,
        stream: AnswerText,
        sizer: DraftSizer,
    ) -> Generator[int, Any, None]:
        stops = stop_rule(
            self.is_control_token, lambda t: self._llm.detokenize([t], special=False), stream.stop, lambda: stream.text
        )
        return lookup_tokens(gen, tokens, self._verifier, LookupLimits(sp.max_tokens, self.n_ctx), sizer, stops)
