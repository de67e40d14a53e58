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
from collections.abc import Sequence

import llama_cpp

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
        """How many leading ``tokens`` are already evaluated in the context."""
        n = min(self.llm.n_tokens, len(tokens))
        live = self.llm.input_ids[:n]
        i = 0
        while i < n and live[i] == tokens[i]:
            i += 1
        return i

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
