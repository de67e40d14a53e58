"""Sealed study files and their payloads: every refusal the issue lists, and the round trips."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from app.core import packets, sealed
from app.core.errors import UsageError
from app.core.packets import Packet, PacketItem, ResponseRow, Responses
from app.core.sealed import SealError
from resources import RUBRIC

PASS = "correct horse battery"
STUDY = "11111111-2222-3333-4444-555555555555"
OTHER = "99999999-2222-3333-4444-555555555555"


def make_packet(n: int = 3, rater: str = "dr_a") -> Packet:
    items = tuple(
        PacketItem(
            answer_uid=f"a{i:03d}",
            item_key=f"item-{i // 2}",
            task="Question Answering",
            instruction="What was the patient treated with?",
            note=f"Patient {i} admitted with pneumonia; amoxicillin 500 mg. Ünïcode ✓",
            answer="" if i == 1 else f"amoxicillin {i}",
            position=i,
            failure="empty answer" if i == 1 else None,
        )
        for i in range(n)
    )
    rubric = [{"score": lv.score, "label": lv.label, "definition": lv.definition} for lv in RUBRIC]
    return Packet(STUDY, "pilot", rater, "blind", "1", rubric, items, "2026-12-01T10:00:00.000000+00:00")


def test_seal_round_trip_and_header_names_kind_study_rater() -> None:
    blob = sealed.seal(b"secret note", PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    assert blob.startswith(sealed.MAGIC) and b"secret note" not in blob
    assert sealed.unseal(blob, PASS, kind="packet", study_uuid=STUDY, rater="dr_a") == b"secret note"
    header, _aad, _body = sealed.read_header(blob)
    assert (header.kind, header.study_uuid, header.rater, header.kdf.n) == ("packet", STUDY, "dr_a", 2**15)
    # A fresh salt and nonce each time: the same payload never seals to the same bytes.
    assert sealed.seal(b"secret note", PASS, kind="packet", study_uuid=STUDY, rater="dr_a") != blob


def test_the_same_passphrase_typed_decomposed_opens_the_file() -> None:
    composed, decomposed = "caf\u00e9 au lait", "cafe\u0301 au lait"
    blob = sealed.seal(b"x", composed, kind="responses", study_uuid=STUDY, rater="r")
    assert sealed.unseal(blob, decomposed, kind="responses") == b"x"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "responses"}, "this is a rater packet, not a responses file"),
        ({"kind": "packet", "study_uuid": OTHER}, f"this packet is for study {STUDY}, not {OTHER}"),
        ({"kind": "packet", "rater": "dr_b"}, "this packet is for rater 'dr_a', not 'dr_b'"),
    ],
)
def test_a_file_of_another_kind_study_or_rater_is_named_as_such(kwargs: dict, message: str) -> None:
    blob = sealed.seal(b"x", PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    with pytest.raises(SealError, match=message):
        sealed.unseal(blob, PASS, **kwargs)


def test_wrong_passphrase_and_every_edited_byte_are_refused_alike() -> None:
    blob = sealed.seal(b"some patient text", PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    with pytest.raises(SealError, match="wrong passphrase, or the file was altered"):
        sealed.unseal(blob, PASS + "!", kind="packet")
    header_end = len(blob) - sealed.read_header(blob)[0].payload_bytes
    # Every byte of the header's JSON and of the ciphertext: flipping any one of them is refused.
    for i in range(len(sealed.MAGIC) + 5, len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(SealError) as info:
            sealed.unseal(bytes(bad), PASS, kind="packet")
        if i >= header_end:
            assert "wrong passphrase, or the file was altered" in str(info.value)


def test_a_header_swapped_from_another_file_is_refused() -> None:
    a = sealed.seal(b"for a", PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    b = sealed.seal(b"for b", PASS, kind="packet", study_uuid=STUDY, rater="dr_b")
    _ha, _, body_a = sealed.read_header(a)
    _hb, aad_b, _ = sealed.read_header(b)
    with pytest.raises(SealError, match="altered"):
        sealed.unseal(aad_b + body_a, PASS, kind="packet")
    # Editing the rater in the header to pass the rater check still fails authentication.
    forged = a.replace(b'"rater":"dr_a"', b'"rater":"dr_b"')
    assert forged != a
    with pytest.raises(SealError, match="altered"):
        sealed.unseal(forged, PASS, kind="packet", rater="dr_b")


def test_truncated_empty_and_foreign_files() -> None:
    blob = sealed.seal(b"x" * 1000, PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    for cut in (len(blob) - 1, len(blob) - 500, 40, 10):
        with pytest.raises(SealError, match="truncated"):
            sealed.unseal(blob[:cut], PASS, kind="packet")
    with pytest.raises(SealError, match="altered"):
        sealed.unseal(blob + b"\0", PASS, kind="packet")
    for foreign in (b"", b"PK\x03\x04 a zip file", b"hello, world, this is a csv\n"):
        with pytest.raises(SealError, match="not an Asclepius study file"):
            sealed.unseal(foreign, PASS, kind="packet")


def test_cost_parameters_a_file_could_use_to_exhaust_memory_are_refused() -> None:
    blob = sealed.seal(b"x", PASS, kind="packet", study_uuid=STUDY, rater="dr_a")
    prefix = sealed._PREFIX.unpack_from(blob)
    head = blob[sealed._PREFIX.size : sealed._PREFIX.size + prefix[2]].replace(b'"n":32768', b'"n":1073741824')
    forged = sealed._PREFIX.pack(sealed.MAGIC, 1, len(head)) + head + blob[sealed._PREFIX.size + prefix[2] :]
    with pytest.raises(SealError, match="unsupported key-derivation parameters"):
        sealed.unseal(forged, PASS, kind="packet")


def test_short_passphrase_is_refused_and_never_echoed() -> None:
    for short in ("hunter2", "hunter2345", "  hunter2  "):  # 7, 10 (the floor: accepted below), padded 7
        if len(short.strip()) >= sealed.MIN_PASSPHRASE:
            sealed.seal(b"x", short, kind="packet", study_uuid=STUDY, rater="r")
            continue
        with pytest.raises(SealError, match="at least 10 characters") as info:
            sealed.seal(b"x", short, kind="packet", study_uuid=STUDY, rater="r")
        assert short.strip() not in str(info.value)
    blob = sealed.seal(b"x", PASS, kind="packet", study_uuid=STUDY, rater="r")
    with pytest.raises(SealError) as info:
        sealed.unseal(blob, "not the passphrase", kind="packet")
    assert "not the passphrase" not in str(info.value) and info.value.__cause__ is None
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_packet_file_round_trip_is_private_and_in_the_raters_order(tmp_path: Path) -> None:
    p = make_packet(4)
    shuffled = replace(p, items=tuple(reversed(p.items)))
    path = tmp_path / "dr_a.packet"
    packets.write_packet(path, shuffled, PASS)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = packets.read_packet(path, PASS, study_uuid=STUDY, rater="dr_a")
    assert back.items == p.items and back.rubric == p.rubric and back.study_name == "pilot"
    assert packets.packet_answer_ids(back) == ["a000", "a001", "a002", "a003"]
    assert b"pneumonia" not in path.read_bytes()
    with pytest.raises(SealError, match=r"dr_a.packet: this packet is for rater 'dr_a', not 'dr_b'"):
        packets.read_packet(path, PASS, rater="dr_b")
    with pytest.raises(SealError, match="this is a rater packet, not a responses file"):
        packets.read_responses(path, PASS)


def _seal_payload(tmp_path: Path, doc: dict, kind: str = "packet") -> Path:
    path = tmp_path / f"hand.{kind}"
    blob = sealed.seal(json.dumps(doc).encode(), PASS, kind=kind, study_uuid=STUDY, rater="dr_a")
    path.write_bytes(blob)
    return path


def test_a_packet_payload_with_bad_fields_is_refused_naming_each(tmp_path: Path) -> None:
    doc = json.loads(packets.encode_packet(make_packet(3)))
    doc["items"][0]["position"] = "first"
    doc["items"][1]["note"] = None
    doc["items"][2]["answer_uid"] = "a000"
    doc["rubric"] = doc["rubric"][:3]
    with pytest.raises(UsageError) as info:
        packets.read_packet(_seal_payload(tmp_path, doc), PASS)
    text = str(info.value)
    assert "item 1: position is missing or not a whole number" in text
    assert "item 2: note is missing or not text" in text
    assert "answer a000 appears twice" in text
    assert "rubric must have exactly the levels 1, 2, 3 and 4" in text


def test_a_payload_naming_another_owner_than_its_header_is_refused(tmp_path: Path) -> None:
    doc = json.loads(packets.encode_packet(make_packet(2, rater="dr_b")))
    with pytest.raises(UsageError, match="does not match its header"):
        packets.read_packet(_seal_payload(tmp_path, doc), PASS)


def test_responses_round_trip_and_validation(tmp_path: Path) -> None:
    rows = (
        ResponseRow("a000", 4, False, None, None, "2026-12-01T10:00:00+00:00"),
        ResponseRow("a001", 1, True, "empty", "amoxicillin", "2026-12-01T11:00:00+01:00"),
    )
    path = tmp_path / "dr_a.responses"
    packets.write_responses(path, Responses(STUDY, "dr_a", "2026-12-01T12:00:00+00:00", rows), PASS)
    back = packets.read_responses(path, PASS, study_uuid=STUDY)
    assert [r.score for r in back.rows] == [4, 1]
    assert back.rows[1].rated_at == "2026-12-01T10:00:00.000000+00:00"  # normalised to UTC
    with pytest.raises(SealError, match=f"for study {STUDY}, not {OTHER}"):
        packets.read_responses(path, PASS, study_uuid=OTHER)
    doc = json.loads(packets.encode_responses(back))
    doc["rows"][0]["score"] = 5
    doc["rows"][1]["score"] = True
    doc["rows"].append(dict(doc["rows"][0], score=2))
    doc["rows"][2]["rated_at"] = "yesterday"
    with pytest.raises(UsageError) as info:
        packets.read_responses(_seal_payload(tmp_path, doc, "responses"), PASS)
    text = str(info.value)
    assert "row 1: score must be 1, 2, 3 or 4, not 5" in text
    assert "row 2: score is missing or not a whole number" in text
    assert "row 3: rated_at is not an ISO-8601 time" in text


def test_ratings_csv_becomes_responses_all_or_nothing(tmp_path: Path) -> None:
    p = make_packet(4)
    good = tmp_path / "forms.csv"
    good.write_text(
        'answer,score,hallucination,comment\na002,3,,\na000,1,yes,"made up a dose, twice"\na003,,,\n',
        encoding="utf-8",
    )
    r = packets.responses_from_csv(p, good, rated_at="2026-12-02T09:00:00+00:00")
    assert [(x.answer_uid, x.score, x.hallucination, x.comment) for x in r.rows] == [
        ("a002", 3, False, None),
        ("a000", 1, True, "made up a dose, twice"),
    ]
    assert (r.study_uuid, r.rater) == (STUDY, "dr_a")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "answer,score,hallucination,comment\na000,5,,\nzzz,2,,\na001,2,maybe,\na002,3,,\na002,4,,\na003,,,a note\n",
        encoding="utf-8",
    )
    with pytest.raises(UsageError) as info:
        packets.responses_from_csv(p, bad)
    text = str(info.value)
    for expected in (
        "nothing was used",
        "line 2: score must be 1, 2, 3 or 4, not '5'",
        "line 3: answer 'zzz' is not in this packet",
        "line 4: hallucination must be yes or no",
        "line 6: answer a002 appears twice (also line 5)",
        "line 7: a hallucination flag or comment without a score",
    ):
        assert expected in text
    missing = tmp_path / "cols.csv"
    missing.write_text("id,rating\na000,3\n", encoding="utf-8")
    with pytest.raises(UsageError, match="missing: answer, score"):
        packets.responses_from_csv(p, missing)


def test_rate_from_csv_names_a_line_that_contradicts_the_rubric(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hallucination with a score above 1 and no comment is refused on the rater's side, by line, rather than
    sealed into a responses file the coordinator's all-or-nothing import would then refuse; "x" ticks it."""
    packet = make_packet(2)
    a, b = packets.packet_answer_ids(packet)
    sheet = tmp_path / "r.csv"
    sheet.write_text(f"answer,score,hallucination,comment\n{a},3,x,\n{b},1,x,\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2: score 3"):
        packets.responses_from_csv(packet, sheet)
    sheet.write_text(f"answer,score,hallucination,comment\n{a},3,x,a harmless slip\n{b},1,x,\n", encoding="utf-8")
    rows = packets.responses_from_csv(packet, sheet).rows
    assert [(r.score, r.hallucination) for r in rows] == [(3, True), (1, True)]
