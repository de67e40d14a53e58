"""llama.cpp as a ``LogitsSource`` for ``quantize compare`` (through llama-cpp-python).

Each chunk is decoded from an empty KV cache with logits requested for the scored positions only, and those
logits are read in place from llama.cpp's output buffer: no ``n_ctx x n_vocab`` copy (``Llama(logits_all=True)``
would allocate and fill one for every position of the context).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from quantize.compare import Vocabulary
from quantize.errors import QuantizeError


def load_vocabulary(path: Path) -> tuple[Vocabulary, Callable[[str], list[int]]]:
    """The vocabulary of ``path`` and its tokenizer (text -> tokens with BOS as the model adds it, special
    tokens not parsed, as ``llama-perplexity`` tokenizes), from a vocabulary-only load."""
    import llama_cpp

    llm = _load(path, n_ctx=64, vocab_only=True)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    n = int(llama_cpp.llama_vocab_n_tokens(vocab))
    texts = tuple(bytes(llama_cpp.llama_vocab_get_text(vocab, i) or b"") for i in range(n))
    info = Vocabulary(texts, int(llama_cpp.llama_vocab_type(vocab)), int(llm.token_bos()) if add_bos else None)

    def tokenize(text: str) -> list[int]:
        return list(llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    return info, tokenize


def _load(path: Path, **kwargs: Any) -> Any:
    from app.core.llama_adapter import open_llama

    kwargs.setdefault("n_seq_max", 1)
    try:
        return open_llama(model_path=str(path), verbose=False, **kwargs)
    except (ValueError, RuntimeError) as exc:  # llama-cpp-python's "Failed to load model from file"
        raise QuantizeError(f"{path}: llama.cpp cannot load it ({exc})") from None


class LlamaLogits:
    """One GGUF in a context of ``sequences`` chunks of ``ctx`` tokens (a context manager: frees it)."""

    def __init__(self, path: Path, ctx: int, sequences: int = 1, threads: int | None = None) -> None:
        from app.core.llama_adapter import SequenceBatch

        self.path = Path(path)
        # n_ubatch keeps llama-cpp-python's (and llama-perplexity's) default of 512; flash attention stays
        # off, as in llama-perplexity run with ``-fa off``.
        self.llm = _load(
            self.path,
            n_seq_max=sequences,
            n_ctx=ctx * sequences,
            n_batch=ctx * sequences,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,
        )
        self.n_vocab = int(self.llm.n_vocab())
        self.batch = SequenceBatch(ctx * sequences)

    def chunk_logits(self, chunks: Sequence[Sequence[int]], first: int) -> Any:
        import llama_cpp
        import numpy as np

        ctx = self.llm.ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        self.batch.clear()
        outputs = 0
        for seq, chunk in enumerate(chunks):
            last = len(chunk) - 1  # the last position predicts past the chunk: not scored, not requested
            for pos, tok in enumerate(chunk):
                wanted = first <= pos < last
                self.batch.add(int(tok), pos, seq, wanted)
                outputs += wanted
        status = self.batch.decode(ctx)
        if status != 0:
            raise QuantizeError(f"{self.path.name}: llama.cpp could not evaluate a chunk (llama_decode: {status})")
        ptr = llama_cpp.llama_get_logits(ctx)
        # A view of llama.cpp's buffer: valid until this context's next decode, which is all a caller needs.
        return np.ctypeslib.as_array(ptr, shape=(outputs, self.n_vocab))

    def close(self) -> None:
        self.batch.close()
        self.llm.close()

    def __enter__(self) -> LlamaLogits:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
