from __future__ import annotations

import json
import os
import stat

import pytest

from app.core.budget import Budget
from app.core.config import AppConfig, EngineConfig, Paths, load_config, save_config
from app.core.errors import ContextOverflowError, NoteError
from app.core.notes import MAX_NOTE_CHARS, decode_note_bytes, read_note_file, validate_note
from app.core.types import SamplingParams


@pytest.mark.parametrize("text", ["", "   \n\t  \n"])
def test_empty_notes_are_refused(text):
    with pytest.raises(NoteError, match="empty"):
        validate_note(text)


def test_huge_note_is_refused_with_the_limit():
    with pytest.raises(NoteError, match="200,000"):
        validate_note("a" * (MAX_NOTE_CHARS + 1))


def test_binary_file_is_refused(tmp_path):
    p = tmp_path / "scan.pdf"
    p.write_bytes(b"%PDF-1.4\x00\x01\x02" + bytes(range(256)) * 10)
    with pytest.raises(NoteError, match="binary"):
        read_note_file(p)


def test_non_utf8_file_names_the_offset(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("Patient café\n".encode("latin-1"))
    with pytest.raises(NoteError, match=r"not valid UTF-8.*offset 11"):
        read_note_file(p)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(NoteError, match="not found"):
        read_note_file(tmp_path / "nope.txt")
    with pytest.raises(NoteError, match="directory"):
        read_note_file(tmp_path)


def test_bom_crlf_and_outer_whitespace_are_normalised():
    assert decode_note_bytes(b"\xef\xbb\xbf\r\n  Line one\r\nLine two\r\n\r\n") == "Line one\nLine two"


def test_budget_numbers_and_refusal_message():
    b = Budget(n_ctx=2048, template_tokens=100, note_tokens=1800, instruction_tokens=20, reserved_answer_tokens=400)
    assert b.total == 2320 and not b.fits and b.overflow == 272 and b.note_room == 1528
    err = b.refusal()
    assert isinstance(err, ContextOverflowError)
    assert "2320" in str(err) and "272 over" in str(err) and "truncate the note explicitly" in str(err)
    assert b.truncated_note_tokens() == 1528


def test_budget_with_no_room_for_any_note_refuses_even_truncation():
    b = Budget(n_ctx=512, template_tokens=100, note_tokens=50, instruction_tokens=20, reserved_answer_tokens=400)
    with pytest.raises(ContextOverflowError, match="no room for a note"):
        b.truncated_note_tokens()


def test_sampling_params_validate_all_problems_at_once():
    with pytest.raises(ValueError) as ei:
        SamplingParams(max_tokens=0, temperature=-1, top_p=0)
    msg = str(ei.value)
    assert "max_tokens" in msg and "temperature" in msg and "top_p" in msg


def test_engine_config_validation():
    with pytest.raises(ValueError, match="n_threads"):
        EngineConfig(n_threads=0)


def test_config_round_trip_is_private(tmp_path):
    paths = Paths(tmp_path / "data", tmp_path / "cfg")
    cfg = AppConfig().with_engine(n_threads=3, kv_cache_mb=64)
    save_config(paths, cfg)
    assert load_config(paths) == cfg
    assert stat.S_IMODE(os.stat(paths.config_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(paths.config_dir).st_mode) == 0o700


def test_broken_config_gives_a_clear_error(tmp_path):
    paths = Paths(tmp_path / "data", tmp_path / "cfg")
    paths.config_dir.mkdir()
    paths.config_file.write_text(json.dumps({"engine": {"n_threads": 2, "warp_drive": True}}))
    with pytest.raises(ValueError, match="warp_drive"):
        load_config(paths)
    paths.config_file.write_text("{not json")
    with pytest.raises(ValueError, match="invalid"):
        load_config(paths)
