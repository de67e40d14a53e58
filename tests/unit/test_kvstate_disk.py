"""Note KV states on disk: checked before use; corrupt, truncated or foreign files discarded."""

from __future__ import annotations

import os
import stat

import pytest

from app.core.config import AppConfig
from app.core.kvstate import MAGIC, DiskKey, DiskStateStore, state_dir

KEY = DiskKey("m" * 64, "asclepius", "n" * 64)
TOKENS = [2, 105, 7, 9, 1000, 262143]
DATA = bytes(range(256)) * 40


@pytest.fixture
def store(tmp_path):
    return DiskStateStore(tmp_path / "kvstate", 1 << 20)


def test_round_trip_is_private_and_keyed_by_model_style_and_note(store):
    assert store.save(KEY, TOKENS, DATA)
    path = store.directory / KEY.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert KEY.note_sha256 not in path.name and "asclepius" not in path.name
    assert store.load(KEY, TOKENS) == bytearray(DATA)
    for other in (
        DiskKey("x" * 64, KEY.prompt_style, KEY.note_sha256),
        DiskKey(KEY.model_sha256, "plain-qa", "n" * 64),
    ):
        assert store.load(other, TOKENS) is None  # another file name: nothing there


def _corrupt(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) - 100]
    elif how == "bit flip in the state":
        raw[-10] ^= 0x01
    elif how == "bad magic":
        raw[:4] = b"JUNK"
    elif how == "header garbage":
        raw[len(MAGIC) + 6] = 0xFF
    elif how == "empty":
        raw = bytearray()
    elif how == "huge header length":
        raw[len(MAGIC) : len(MAGIC) + 4] = (1 << 31).to_bytes(4, "little")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "how", ["truncated", "bit flip in the state", "bad magic", "header garbage", "empty", "huge header length"]
)
def test_a_damaged_file_is_discarded_not_loaded(store, how):
    store.save(KEY, TOKENS, DATA)
    path = store.directory / KEY.name
    _corrupt(path, how)
    assert store.load(KEY, TOKENS) is None
    assert not path.exists() and store.discarded == 1


def test_a_foreign_file_under_the_right_name_is_discarded(store):
    # A state written for another model (or other prefix tokens) renamed to this key's file name.
    other = DiskKey("o" * 64, KEY.prompt_style, KEY.note_sha256)
    store.save(other, TOKENS, DATA)
    os.replace(store.directory / other.name, store.directory / KEY.name)
    assert store.load(KEY, TOKENS) is None
    store.save(KEY, TOKENS, DATA)
    assert store.load(KEY, [*TOKENS[:-1], 5]) is None  # same length, other tokens: checked too
    assert store.discarded == 2


def test_the_store_is_bounded_oldest_first_and_clear_removes_everything(tmp_path):
    store = DiskStateStore(tmp_path / "kv", 3 * len(DATA) + 2000)
    keys = [DiskKey("m" * 64, "asclepius", f"{i:064d}") for i in range(5)]
    for i, k in enumerate(keys):
        assert store.save(k, TOKENS, DATA)
        os.utime(store.directory / k.name, (1000 + i, 1000 + i))
    store.save(keys[4], TOKENS, DATA)  # re-save triggers eviction by age
    left = {p.name for p in store.directory.iterdir()}
    assert keys[0].name not in left and keys[4].name in left
    assert store.used_bytes <= store.budget_bytes
    assert not DiskStateStore(tmp_path / "small", 100).save(KEY, TOKENS, DATA)  # alone over the budget
    n, size = store.clear()
    assert n == len(left) and size > 0 and not any(store.directory.iterdir())


def test_hash_only_storage_keeps_nothing_on_disk(tmp_path):
    assert state_dir(tmp_path, AppConfig(store_note_text=False)) is None
    assert state_dir(tmp_path, AppConfig(store_note_text=True)) == tmp_path / "kvstate"
    # A run that is not recorded (ask --no-log) keeps no note state either: the state holds the note's tokens.
    assert state_dir(tmp_path, AppConfig(store_note_text=True), logged=False) is None
    # No disk budget (what the policy's note_state_cache = false sets): nothing kept, nor read back.
    assert state_dir(tmp_path, AppConfig().with_engine(kv_disk_mb=0)) is None


def test_an_unwritable_directory_is_reported_not_raised(tmp_path):
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    store = DiskStateStore(d / "kvstate", 1 << 20)
    try:
        assert store.save(KEY, TOKENS, DATA) is False or os.geteuid() == 0
    finally:
        d.chmod(0o700)
