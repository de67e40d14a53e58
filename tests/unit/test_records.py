from __future__ import annotations

import pytest

from app.core.errors import UsageError
from app.core.records import read_records


def test_csv_rows_carry_editor_line_numbers_across_multiline_cells(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text('id,text\n1,"two\nlines"\n2,plain\n', encoding="utf-8")
    names, rows = read_records(p, max_bytes=1 << 20, what="input")
    assert names == ["id", "text"]
    assert [(n, r["id"]) for n, r in rows] == [(2, "1"), (4, "2")]


def test_jsonl_bad_lines_are_row_problems_not_failures(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"a": 1}\n\nnot json\n[1, 2]\n{"b": 2}\n', encoding="utf-8")
    names, rows = read_records(p, max_bytes=1 << 20, what="input")
    assert names == ["a", "b"]
    assert rows[0] == (1, {"a": 1}) and rows[3] == (5, {"b": 2})
    assert rows[1][0] == 3 and "not valid JSON" in rows[1][1]
    assert rows[2] == (4, "not a JSON object")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.csv", b"\x00\x01binary\xff" * 100, "binary"),
        ("in.csv", "run_id,comment\n1,café\n".encode("latin-1"), r"not valid UTF-8 \(byte 0xe9 at offset 20\)"),
        ("in.csv", b"", "empty file"),
        ("in.xlsx", b"PK\x03\x04", "must be .csv or .jsonl"),
        ("in.csv", b"x" * 2048, "too large"),
    ],
    ids=["binary", "latin-1", "empty", "xlsx", "huge"],
)
def test_bad_files_are_refused_with_a_specific_message(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        read_records(p, max_bytes=1024, what="ratings file")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read_records(tmp_path / "nope.csv", max_bytes=1024, what="batch input")
    d = tmp_path / "dir.csv"
    d.mkdir()
    with pytest.raises(UsageError, match="directory"):
        read_records(d, max_bytes=1024, what="batch input")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"a": ' + "1" * 4301 + "}", "a number over 4,300 digits"),
        ("[" * 100_000, "nested over about 1,000 levels"),
        ('{"a": "x\\ud800"}', "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "lone UTF-16 surrogate"),
        ('{"a": [[["\\uDBFF"]]]}', "lone UTF-16 surrogate"),
    ],
    ids=["int-4301-digits", "deep-nesting", "surrogate-value", "surrogate-key", "surrogate-nested"],
)
def test_jsonl_rows_json_loads_cannot_take_are_row_problems_and_the_rest_go_on(tmp_path, line, message):
    """Issue 21: ValueError, RecursionError and an unencodable string once ended the whole reader (exit 1)."""
    p = tmp_path / "in.jsonl"
    p.write_text('{"a": 1}\n' + line + '\n{"b": 2}\n', encoding="utf-8")
    _, rows = read_records(p, max_bytes=1 << 22, what="input")
    assert rows[0] == (1, {"a": 1}) and rows[2] == (3, {"b": 2})
    assert rows[1][0] == 2 and message in rows[1][1]


def test_a_surrogate_pair_escape_is_one_character_not_a_problem():
    from app.core.records import parse_json_line

    assert parse_json_line('{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {"a": "\U0001f600", "b": "\\ud800"}
