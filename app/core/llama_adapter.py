"""The one place that touches llama-cpp-python's internals (private attributes and KV-cache state).

``Llama`` has no public API for "keep only the first n tokens of the KV cache" or "these tokens are now
evaluated" (needed to save and restore a note's KV state), so the engine reaches into ``Llama._ctx``,
``Llama.input_ids``, ``Llama.n_tokens`` and ``Llama._requires_eval``, and calls the per-sequence state
functions. Everything that does so is here, and ``tests/integration/test_llama_adapter.py`` checks these
names, types and signatures on a loaded model, so a llama-cpp-python upgrade that changes them fails
that test by name instead of corrupting a context at run time. Pinned: llama-cpp-python 0.3.36.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import llama_cpp
import numpy as np

SEQ = 0
"""The single sequence the engine uses."""


class LlamaInternals:
    """KV-cache bookkeeping on one ``llama_cpp.Llama`` (not thread-safe: the engine's lock guards it)."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.llm = llm

    @property
    def n_tokens(self) -> int:
        """Tokens whose KV state is in the context now."""
        return int(self.llm.n_tokens)

    def live_prefix_len(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` are already evaluated in the context *and still usable*.

        A sliding-window (SWA) model such as Gemma 3 keeps only about ``n_swa`` positions per sequence in
        its SWA layers' cache; once a long prompt or answer has overwritten the early cells, continuing from
        position ``i`` needs positions ``[i - n_swa, i)`` that are gone. Reusing such a prefix (even the
        12 template tokens two different notes share) silently changes the answers, as llama.cpp's server
        knows ("forcing full prompt re-processing due to lack of cache data"). Then the context is cleared
        and 0 is returned, so the prompt is evaluated whole and no broken state is ever saved."""
        n = min(self.llm.n_tokens, len(tokens))
        live = self.llm.input_ids[:n]
        i = 0
        while i < n and live[i] == tokens[i]:
            i += 1
        if i and not self._window_intact(i):
            self.keep_first(0)
            return 0
        return i

    def _window_intact(self, n: int) -> bool:
        """Whether the cache still holds every position a continuation from position ``n`` attends to."""
        pos_min = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(self.llm.ctx), SEQ)
        if pos_min < 0:  # the sequence is empty: nothing evaluated is left
            return False
        n_swa = int(llama_cpp.llama_model_n_swa(self.llm.model)) or n
        return pos_min <= max(0, n - n_swa)

    def keep_first(self, n: int) -> None:
        """Drop everything after the first ``n`` evaluated tokens from the KV cache (0 clears it)."""
        self.llm._ctx.kv_cache_seq_rm(-1, n, -1)
        self.llm.n_tokens = n

    def save_sequence(self) -> bytearray | None:
        """The sequence's KV state as bytes (None when llama.cpp returned nothing)."""
        ctx = self.llm.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, SEQ)
        # Copied straight into a bytearray: slicing a ctypes array (buf[:n]) would build a Python list of
        # ints, which took ~20 s for a 7B note's 800 MB state.
        data = bytearray(size)
        n = llama_cpp.llama_state_seq_get_data(ctx, (ctypes.c_uint8 * size).from_buffer(data), size, SEQ)
        if not n:
            return None
        del data[n:]
        return data

    def restore_sequence(self, data: bytearray, tokens: Sequence[int]) -> bool:
        """Load a saved state for ``tokens`` into an emptied context; False if llama.cpp refused it."""
        self.keep_first(0)
        src = (ctypes.c_uint8 * len(data)).from_buffer(data)  # no copy
        if llama_cpp.llama_state_seq_set_data(self.llm.ctx, src, len(data), SEQ) == 0:
            return False
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)
        # The restored state has no logits: make Llama evaluate at least the last token before sampling.
        self.llm._requires_eval = True
        return True


def shared_library() -> ctypes.CDLL:
    """llama-cpp-python's ctypes handle on ``libllama.so`` (private ``llama_cpp.llama_cpp._lib``).

    Symbols looked up through it resolve in libllama's own dependencies, i.e. the very ``libggml`` llama.cpp
    uses (app.core.llama_backends loads the portable build's CPU variants into that ggml's registry).
    """
    import llama_cpp.llama_cpp as bindings

    return bindings._lib


_PARAMS_LOCK = threading.Lock()


def open_llama(*, n_seq_max: int, **kwargs: Any) -> llama_cpp.Llama:
    """A ``Llama`` whose context holds ``n_seq_max`` sequences in one unified KV cache.

    ``Llama.__init__`` has no ``n_seq_max``/``kv_unified`` argument (only its embedding mode sets them),
    and it builds its context inside ``__init__`` from ``llama_context_default_params()``; so the defaults
    function that module calls is wrapped for the duration of the call (under a lock). A unified cache lets
    ``llama_memory_seq_cp`` share the note prefix between sequences by tagging cells instead of copying.
    """
    if n_seq_max <= 1:
        return llama_cpp.Llama(**kwargs)
    module = llama_cpp.llama_cpp
    original = module.llama_context_default_params

    def with_sequences() -> Any:
        params = original()
        params.n_seq_max = n_seq_max
        params.kv_unified = True
        return params

    with _PARAMS_LOCK:
        module.llama_context_default_params = with_sequences
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            module.llama_context_default_params = original


class SequenceBatch:
    """A ``llama_batch`` of tokens from several sequences (one seq id per token), reused across steps."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append a token; returns its index in the batch (where its logits are, if requested)."""
        if self.n >= self.capacity:
            raise ValueError("batch is full")
        b, i = self._batch, self.n
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if logits else 0
        self.n += 1
        return i

    def decode(self, ctx: Any) -> int:
        """``llama_decode`` the batch; returns llama.cpp's status (0 ok, 1 no KV slot, 2 aborted, <0 error)."""
        self._batch.n_tokens = self.n
        return int(llama_cpp.llama_decode(ctx, self._batch))

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None


class SequenceMemory:
    """Per-sequence KV operations on a unified cache (``llama_memory_*``)."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self.llm = llm

    def _mem(self) -> Any:
        return llama_cpp.llama_get_memory(self.llm.ctx)

    def share(self, src: int, dst: int, n: int) -> None:
        """Make sequence ``dst`` see the first ``n`` positions of ``src`` (shared cells, no copy)."""
        llama_cpp.llama_memory_seq_rm(self._mem(), dst, -1, -1)
        llama_cpp.llama_memory_seq_cp(self._mem(), src, dst, 0, n)

    def drop(self, seq: int) -> None:
        """Forget a whole sequence (cells still used by another sequence stay)."""
        llama_cpp.llama_memory_seq_rm(self._mem(), seq, -1, -1)

    def sampler(
        self, *, temp: float, top_k: int, top_p: float, min_p: float, repeat_penalty: float, seed: int, last_n: int
    ) -> Any:
        """A sampler chain configured like ``Llama``'s own for these settings (greedy when temp == 0)."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        # Called exactly as ``Llama._init_sampler`` calls it: the 0.3.36 binding declares an extra leading
        # n_vocab argument the C function does not have, so the effective window is what Llama's is.
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.llm.model))
        add(chain, llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, repeat_penalty, 0.0, 0.0))
        if temp == 0.0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
            add(chain, llama_cpp.llama_sampler_init_typical(1.0, 1))
            add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
            add(chain, llama_cpp.llama_sampler_init_min_p(min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(temp))
            add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def sample(self, chain: Any, idx: int) -> int:
        """Sample (and accept) a token from the logits at batch index ``idx``."""
        return int(llama_cpp.llama_sampler_sample(chain, self.llm.ctx, idx))

    @staticmethod
    def free_sampler(chain: Any) -> None:
        llama_cpp.llama_sampler_free(chain)

    def set_single(self, tokens: Sequence[int]) -> None:
        """Tell ``Llama`` that sequence 0 now holds exactly ``tokens`` (after a multi-sequence run)."""
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)


class GreedyVerifier:
    """Prompt lookup's llama.cpp side (``app.core.lookup.Verifier``) on sequence 0 of one ``Llama``.

    ``verify`` decodes ``[last token + draft]`` in one ``llama_batch`` with logits requested at those rows
    only (never ``logits_all`` over the context) and returns each row's argmax: what ``Llama``'s greedy
    sampler picks (its first maximum, as ``numpy.argmax``). ``keep`` and ``view`` keep ``Llama.input_ids``
    / ``n_tokens`` true to the KV cache, so the engine's prefix reuse (``live_prefix_len``) sees what plain
    decoding would have left.
    """

    def __init__(self, llm: llama_cpp.Llama, capacity: int) -> None:
        self.llm = llm
        self._batch = SequenceBatch(capacity)
        self._n_vocab = int(llm.n_vocab())

    def evaluated(self) -> int:
        return int(self.llm.n_tokens)

    def verify(self, tokens: Sequence[int], pos: int) -> list[int]:
        b = self._batch
        b.clear()
        rows = [b.add(tok, pos + i, SEQ, True) for i, tok in enumerate(tokens)]
        rc = b.decode(self.llm.ctx)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        ctx, n = self.llm.ctx, self._n_vocab
        return [int(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, r), shape=(n,)).argmax()) for r in rows]

    def keep(self, tokens: Sequence[int], pos: int, n: int) -> None:
        self.llm.input_ids[pos : pos + n] = tokens[:n]
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.llm.ctx), -1, pos + n, -1)
        self.llm.n_tokens = pos + n
        # Llama's stored logits are not those of the last token now: its next generate must decode first.
        self.llm._requires_eval = True

    def view(self, n: int) -> None:
        self.llm.n_tokens = n

    def close(self) -> None:
        self._batch.close()
