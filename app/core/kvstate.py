"""A bounded LRU cache of per-sequence KV states, keyed by (model, prompt prefix tokens).

Each entry is the llama.cpp sequence state after ``[BOS + head + note]``: returning to a recently used
note restores it (milliseconds) instead of re-evaluating the note (seconds). The per-sequence state API is
used because the whole-context ``Llama.save_state`` also copies the logits and took ~1 s per switch on
the demo model (DESIGN.md).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


def prefix_key(model_sha256: str, tokens: Sequence[int]) -> str:
    h = hashlib.sha256(model_sha256.encode())
    h.update(b"\0")
    h.update(",".join(map(str, tokens)).encode())
    return h.hexdigest()


@dataclass
class CachedState:
    tokens: tuple[int, ...]
    data: bytearray
    """The llama.cpp sequence state; a bytearray so ctypes can read and write it without a copy."""


class StateCache:
    """LRU by bytes: the least recently used states are evicted to stay within ``budget_bytes``."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, CachedState] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> CachedState | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item

    def put(self, key: str, state: CachedState) -> bool:
        """Store a state; returns False when it alone is over the budget (then nothing is stored)."""
        size = len(state.data)
        if size > self.budget_bytes:
            return False
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old.data)
        self._items[key] = state
        self._bytes += size
        while self._bytes > self.budget_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted.data)
        return True

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
