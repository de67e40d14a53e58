"""Note KV states kept for reuse: a bounded LRU in memory, and (optionally) a bounded store on disk.

Each entry is the llama.cpp sequence state after ``[BOS + head + note]``: returning to a recently used
note restores it (milliseconds) instead of re-evaluating the note (seconds). The per-sequence state API is
used because the whole-context ``Llama.save_state`` also copies the logits and took ~1 s per switch on
the demo model (DESIGN.md).
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import struct
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.core.config import AppConfig

log = logging.getLogger(__name__)


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


# -- on disk: notes that stay warm across restarts ----------------------------------------------------

MAGIC = b"ASCLEPIUS-KV\x00\x01"
_HEADER_MAX = 64 * 1024
STATE_DIR_NAME = "kvstate"
"""Under the user's data directory; the whole directory is purged by ``asclepius cache clear``."""


def disk_key(model_sha256: str, prompt_style: str, note_sha: str) -> str:
    """The file name of a note's state: model sha256 + prompt style + note sha256 (nothing readable)."""
    return hashlib.sha256(f"{model_sha256}\0{prompt_style}\0{note_sha}".encode()).hexdigest()


@dataclass(frozen=True)
class DiskKey:
    model_sha256: str
    prompt_style: str
    note_sha256: str

    @property
    def name(self) -> str:
        return disk_key(self.model_sha256, self.prompt_style, self.note_sha256) + ".kv"


class DiskStateStore:
    """Note KV states on disk (0600 files in a 0700 directory), bounded by bytes, oldest evicted first.

    A file is ``MAGIC``, a 4-byte header length, a JSON header (model, prompt style, note sha256, token
    count, data length, sha256 of tokens + data), the prefix tokens (int32 little-endian), then the state.
    Before use every field is checked against what the caller expects and the checksum is recomputed; a
    corrupt, truncated or foreign file is deleted and ``load`` returns None (the note is evaluated again).
    A state encodes the note, so the store is not used when the user chose hash-only note storage.
    """

    def __init__(self, directory: Path, budget_bytes: int) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.discarded = 0
        """Files found unusable and deleted (corrupt, truncated, foreign) since this store was opened."""

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    def save(self, key: DiskKey, tokens: Sequence[int], data: bytes | bytearray) -> bool:
        """Write atomically (temp file + rename); False when over the budget or the disk refused it."""
        if self.budget_bytes <= 0:
            return False
        toks = array.array("i", tokens)
        if sys.byteorder != "little":
            toks.byteswap()
        tok_bytes = toks.tobytes()
        digest = hashlib.sha256(tok_bytes)
        digest.update(data)
        header = json.dumps(
            {
                "model_sha256": key.model_sha256,
                "prompt_style": key.prompt_style,
                "note_sha256": key.note_sha256,
                "n_tokens": len(tokens),
                "data_len": len(data),
                "sha256": digest.hexdigest(),
            }
        ).encode()
        size = len(MAGIC) + 4 + len(header) + len(tok_bytes) + len(data)
        if size > self.budget_bytes:
            return False
        try:
            self._ensure_dir()
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".kv")
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(MAGIC + struct.pack("<I", len(header)) + header)
                    fh.write(tok_bytes)
                    fh.write(data)
                os.replace(tmp, self.directory / key.name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("a note state could not be kept on disk: %s", exc.strerror or exc)
            return False
        self._evict()
        return True

    def load(self, key: DiskKey, tokens: Sequence[int]) -> bytearray | None:
        """The state for ``key`` if its file is intact and is for exactly these prefix ``tokens``."""
        path = self.directory / key.name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("a kept note state could not be read: %s", exc.strerror or exc)
            return None
        data = self._check(raw, key, tokens)
        if data is None:
            self.discarded += 1
            log.warning("a kept note state was corrupt, truncated or not this note's; it is recomputed")
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # most recently used: evicted last
        return data

    @staticmethod
    def _check(raw: bytes, key: DiskKey, tokens: Sequence[int]) -> bytearray | None:
        if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 4:
            return None
        (hlen,) = struct.unpack_from("<I", raw, len(MAGIC))
        start = len(MAGIC) + 4
        if hlen > _HEADER_MAX or len(raw) < start + hlen:
            return None
        try:
            header = json.loads(raw[start : start + hlen])
            expected = (key.model_sha256, key.prompt_style, key.note_sha256, len(tokens))
            found = (header["model_sha256"], header["prompt_style"], header["note_sha256"], header["n_tokens"])
            data_len, checksum = int(header["data_len"]), str(header["sha256"])
        except (ValueError, KeyError, TypeError):
            return None
        if found != expected:
            return None
        tok_start = start + hlen
        data_start = tok_start + 4 * len(tokens)
        if len(raw) != data_start + data_len:
            return None
        digest = hashlib.sha256(raw[tok_start:])
        if digest.hexdigest() != checksum:
            return None
        toks = array.array("i")
        toks.frombytes(raw[tok_start:data_start])
        if sys.byteorder != "little":
            toks.byteswap()
        if list(toks) != list(tokens):
            return None
        return bytearray(raw[data_start:])

    def _files(self) -> list[Path]:
        try:
            return [p for p in self.directory.iterdir() if p.suffix == ".kv" and p.is_file()]
        except OSError:
            return []

    def _evict(self) -> None:
        files = sorted(self._files(), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.budget_bytes:
            victim = files.pop(0)
            total -= victim.stat().st_size
            victim.unlink(missing_ok=True)

    @property
    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def clear(self) -> tuple[int, int]:
        """Delete every kept state (and stray temp files); returns (files, bytes) removed."""
        n = size = 0
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return 0, 0
        for p in entries:
            if p.is_file() and p.suffix == ".kv":
                size += p.stat().st_size
                p.unlink(missing_ok=True)
                n += 1
        return n, size


def state_dir(data_dir: Path, config: AppConfig, *, logged: bool = True) -> Path | None:
    """Where note states are kept across restarts; None when the user chose hash-only note storage, there is no
    disk budget (``engine.kv_disk_mb`` 0, which the policy's ``note_state_cache = false`` forces) or the run is
    not recorded (``ask --no-log``): a saved state holds the note's tokens, from which the note can be read
    back, so a run that leaves no trace in the log leaves none here either (nor reads one: no mtime touched)."""
    keep = config.store_note_text and config.engine.kv_disk_mb > 0 and logged
    return data_dir / STATE_DIR_NAME if keep else None
