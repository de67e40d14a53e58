"""Rater packets and responses: what travels between the coordinator's log and a rater's workstation.

A **packet** holds exactly one rater's assigned answers (note, task, instruction, the blinded answer, why an
arm has no usable answer) in that rater's order, and the rubric; a **responses** file holds that rater's
ratings of them. Both are JSON inside a sealed file (``app.core.sealed``: encrypted, authenticated, naming
study, rater and kind) written through ``app.core.privatefile`` (0600). Everything read is validated field by
field, and every problem is named in one message: a file from a newer or broken exporter must be refused,
never half read. Plain dataclasses: no database here (the coordinator's side is ``app.store``).

``study rate`` uses ``packet_answer_ids`` (``--list``) and ``responses_from_csv`` (``--from``: ratings typed
elsewhere, e.g. from paper forms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.core import records, safejson, sealed
from app.core.errors import UsageError
from app.core.infile import open_regular
from app.core.privatefile import os_problem, write_private
from resources.rubric import FLAG_FALSE, FLAG_TRUE, is_score, rating_problem

PAYLOAD_FORMAT = 1
MAX_FILE_BYTES = 1 << 30
"""A packet repeats each item's note for every arm (a 200,000-character note, 1,000 answers: ~200 MB)."""
MAX_UID = 36
"""An answer uid is a UUID (``study_answers.uid`` is String(36))."""
MAX_PROBLEMS = 20
"""Problems listed in one message; the rest are counted (a wholly wrong file would print thousands)."""


@dataclass(frozen=True)
class PacketItem:
    """One answer a rater rates, with what they need to judge it (never the arm or other raters' scores)."""

    answer_uid: str
    """The study answer's opaque uid (says nothing about the arm)."""
    item_key: str
    """The item's id in the study (the same for every arm's answer to it)."""
    task: str
    instruction: str
    note: str
    """The note text (patient data: the packet is encrypted for this reason)."""
    answer: str
    """The arm's answer as generated (possibly empty or cut short; see ``failure``)."""
    position: int
    """Order in this rater's packet (0-based)."""
    failure: str | None
    """Why the arm has no usable answer (error, stopped, cut at the length limit, empty); None if it has one.
    Shown to the rater: a failure is rated like any answer, typically 1."""


@dataclass(frozen=True)
class Packet:
    study_uuid: str
    study_name: str
    rater: str
    blinding: str
    """``blind`` or ``open`` (the packet never names arms either way: the open policy is for the log's screens)."""
    rubric_version: str
    rubric: list[dict[str, Any]]
    """The rubric levels as the coordinator's app had them: ``{"score", "label", "definition"}``, scores 1-4."""
    items: tuple[PacketItem, ...]
    created_at: str
    """ISO-8601 UTC."""


@dataclass(frozen=True)
class ResponseRow:
    """A rater's current rating of one packet answer."""

    answer_uid: str
    score: int
    """1-4 on the rubric."""
    hallucination: bool
    comment: str | None
    corrected_answer: str | None
    rated_at: str
    """ISO-8601 UTC, on the rater's machine: a later one supersedes an earlier one at import, item by item."""


@dataclass(frozen=True)
class Responses:
    study_uuid: str
    rater: str
    exported_at: str
    """ISO-8601 UTC."""
    rows: tuple[ResponseRow, ...]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def utc_iso(value: Any) -> str:
    """An ISO-8601 time with a zone as UTC text; ValueError (with the reason) for anything else."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 time text")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("is not an ISO-8601 time (e.g. 2026-11-24T10:00:00+00:00)") from None
    if at.tzinfo is None:
        raise ValueError("needs a time zone (e.g. 2026-11-24T10:00:00+00:00)")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def check_score(score: Any) -> int:
    """A rubric score (1-4) or ValueError; a bool is no score (``True == 1`` in Python)."""
    if not is_score(score):
        raise ValueError(f"score must be 1, 2, 3 or 4, not {score!r}")
    return score


# -- validation -----------------------------------------------------------------------------------
class _Fields:
    """Takes typed fields out of parsed JSON, collecting every problem instead of stopping at the first."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.problems: list[str] = []

    def take(self, obj: Any, key: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
        if not isinstance(obj, dict):
            self.problems.append(f"{where}: not an object")
            return None
        value = obj.get(key)
        if value is None and optional:
            return None
        # bool is an int subclass: a true/false where a number belongs is a mistake, not 1/0.
        if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int,))):
            self.problems.append(f"{where}: {key} is missing or not {_type_name(kind)}")
            return None
        if isinstance(value, str) and key in ("answer_uid", "study_uuid", "rater") and not value.strip():
            self.problems.append(f"{where}: {key} is empty")
        return value

    def time(self, obj: Any, key: str, where: str) -> str | None:
        raw = self.take(obj, key, str, where)
        if raw is None:
            return None
        try:
            return utc_iso(raw)
        except ValueError as e:
            self.problems.append(f"{where}: {key} {e}")
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise UsageError(f"the {self.what} cannot be used: {summarise(self.problems)}")


def summarise(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = len(problems) - MAX_PROBLEMS
    return shown + (f"; and {more:,} more problem{'s' * (more != 1)}" if more > 0 else "")


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "text", int: "a whole number", bool: "true or false", list: "a list", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _envelope(raw: bytes, kind: str, what: str) -> tuple[dict[str, Any], _Fields]:
    try:
        doc = safejson.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"the {what} cannot be used: its content is {e}") from None
    f = _Fields(what)
    if not isinstance(doc, dict):
        raise UsageError(f"the {what} cannot be used: its content is not an object")
    if doc.get("format") != PAYLOAD_FORMAT or doc.get("kind") != kind:
        raise UsageError(
            f"the {what} cannot be used: content format {doc.get('format')!r} of kind {doc.get('kind')!r}; this "
            f"version reads format {PAYLOAD_FORMAT} of kind {kind!r}"
        )
    return doc, f


def _rubric(f: _Fields, raw: Any) -> list[dict[str, Any]]:
    levels: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        f.problems.append("rubric is missing or not a list")
        return levels
    for i, lv in enumerate(raw):
        where = f"rubric level {i + 1}"
        levels.append({k: f.take(lv, k, int if k == "score" else str, where) for k in ("score", "label", "definition")})
    if sorted(lv["score"] for lv in levels if isinstance(lv["score"], int)) != [1, 2, 3, 4]:
        f.problems.append("rubric must have exactly the levels 1, 2, 3 and 4")
    return levels


def _packet_item(f: _Fields, raw: Any, i: int) -> PacketItem | None:
    where = f"item {i + 1}"
    before = len(f.problems)
    values = {k: f.take(raw, k, str, where) for k in ("answer_uid", "item_key", "task", "instruction", "note")}
    values["answer"] = f.take(raw, "answer", str, where)
    values["position"] = f.take(raw, "position", int, where)
    values["failure"] = f.take(raw, "failure", str, where, optional=True)
    if isinstance(values["answer_uid"], str) and len(values["answer_uid"]) > MAX_UID:
        f.problems.append(f"{where}: answer_uid is longer than {MAX_UID} characters")
    return None if len(f.problems) > before else PacketItem(**values)


def decode_packet(raw: bytes) -> Packet:
    """A packet from its JSON payload; UsageError listing every problem."""
    doc, f = _envelope(raw, "packet", "packet")
    head = {k: f.take(doc, k, str, "packet") for k in ("study_uuid", "study_name", "rater", "blinding")}
    head["rubric_version"] = f.take(doc, "rubric_version", str, "packet")
    created = f.time(doc, "created_at", "packet")
    rubric = _rubric(f, doc.get("rubric"))
    raw_items = f.take(doc, "items", list, "packet") or []
    items = [it for i, raw_item in enumerate(raw_items) if (it := _packet_item(f, raw_item, i)) is not None]
    seen: dict[str, int] = {}
    for i, raw_item in enumerate(raw_items):  # the raw list: a duplicate is named even beside a broken item
        uid = raw_item.get("answer_uid") if isinstance(raw_item, dict) else None
        if isinstance(uid, str) and uid in seen:
            f.problems.append(f"item {i + 1}: answer {uid} appears twice (also item {seen[uid] + 1})")
        elif isinstance(uid, str):
            seen[uid] = i
    f.raise_if_any()
    ordered = tuple(sorted(items, key=lambda it: it.position))
    return Packet(**head, rubric=rubric, items=ordered, created_at=created)  # type: ignore[arg-type]


def encode_packet(packet: Packet) -> bytes:
    doc = {"format": PAYLOAD_FORMAT, "kind": "packet", **asdict(packet)}
    doc["items"] = [asdict(it) for it in packet.items]
    return _dumps(doc)


def _response_row(f: _Fields, raw: Any, i: int) -> ResponseRow | None:
    where = f"row {i + 1}"
    before = len(f.problems)
    uid = f.take(raw, "answer_uid", str, where)
    score = f.take(raw, "score", int, where)
    if isinstance(score, int) and not 1 <= score <= 4:
        f.problems.append(f"{where}: score must be 1, 2, 3 or 4, not {score}")
    flag = f.take(raw, "hallucination", bool, where)
    comment = f.take(raw, "comment", str, where, optional=True)
    corrected = f.take(raw, "corrected_answer", str, where, optional=True)
    at = f.time(raw, "rated_at", where)
    if len(f.problems) > before:
        return None
    return ResponseRow(uid, score, flag, comment, corrected, at)  # type: ignore[arg-type]


def decode_responses(raw: bytes) -> Responses:
    """Responses from their JSON payload; UsageError listing every problem (one answer rated twice included)."""
    doc, f = _envelope(raw, "responses", "responses file")
    study, rater = f.take(doc, "study_uuid", str, "responses"), f.take(doc, "rater", str, "responses")
    exported = f.time(doc, "exported_at", "responses")
    raw_rows = f.take(doc, "rows", list, "responses") or []
    rows = [r for i, raw_row in enumerate(raw_rows) if (r := _response_row(f, raw_row, i)) is not None]
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if r.answer_uid in seen:
            f.problems.append(f"row {i + 1}: answer {r.answer_uid} is rated twice")
        seen.add(r.answer_uid)
    f.raise_if_any()
    return Responses(study, rater, exported, tuple(rows))  # type: ignore[arg-type]


def encode_responses(responses: Responses) -> bytes:
    doc = {"format": PAYLOAD_FORMAT, "kind": "responses", **asdict(responses)}
    doc["rows"] = [asdict(r) for r in responses.rows]
    return _dumps(doc)


def _dumps(doc: dict[str, Any]) -> bytes:
    import json

    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- files ----------------------------------------------------------------------------------------
def _read(path: str | Path, what: str) -> bytes:
    p = Path(path)
    try:
        with open_regular(p, what, UsageError) as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p}: {os_problem(exc)}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{p.name}: over {MAX_FILE_BYTES >> 20:,} MB; that is no {what}")
    return data


_WHAT = {"packet": "packet", "responses": "responses file"}


def _write(path: str | Path, payload: bytes, kind: str, owner: Packet | Responses, passphrase: str) -> None:
    blob = sealed.seal(payload, passphrase, kind=kind, study_uuid=owner.study_uuid, rater=owner.rater)
    write_private(path, blob, what=_WHAT[kind])


def _open(path: str | Path, passphrase: str, kind: str, study_uuid: str | None, rater: str | None) -> tuple[bytes, Any]:
    """The decrypted payload and the (authenticated) header; errors name the file."""
    blob = _read(path, _WHAT[kind])
    try:
        raw = sealed.unseal(blob, passphrase, kind=kind, study_uuid=study_uuid, rater=rater)
    except sealed.SealError as exc:
        raise sealed.SealError(f"{Path(path).name}: {exc}") from None
    return raw, sealed.read_header(blob)[0]


def _same_owner(path: str | Path, kind: str, got: Packet | Responses, header: Any) -> None:
    # The header is authenticated, but the payload is what is shown and imported: both must name one owner.
    if (got.study_uuid, got.rater) != (header.study_uuid, header.rater):
        raise UsageError(f"{Path(path).name}: the {_WHAT[kind]}'s content does not match its header; refused")


def write_packet(path: str | Path, packet: Packet, passphrase: str) -> None:
    _write(path, encode_packet(packet), "packet", packet, passphrase)


def read_packet(path: str | Path, passphrase: str, study_uuid: str | None = None, rater: str | None = None) -> Packet:
    """The packet in ``path``; SealError or UsageError naming the file and what is wrong."""
    raw, header = _open(path, passphrase, "packet", study_uuid, rater)
    packet = decode_packet(raw)
    _same_owner(path, "packet", packet, header)
    return packet


def write_responses(path: str | Path, responses: Responses, passphrase: str) -> None:
    _write(path, encode_responses(responses), "responses", responses, passphrase)


def read_responses(path: str | Path, passphrase: str, study_uuid: str | None = None) -> Responses:
    """The responses in ``path`` (any rater: the study checks who may rate); errors name the file."""
    raw, header = _open(path, passphrase, "responses", study_uuid, None)
    responses = decode_responses(raw)
    _same_owner(path, "responses", responses, header)
    return responses


# -- study rate -----------------------------------------------------------------------------------
def packet_answer_ids(packet: Packet) -> list[str]:
    """The packet's answer ids in the rater's order (``study rate --list``)."""
    return [it.answer_uid for it in sorted(packet.items, key=lambda it: it.position)]


RATING_COLUMNS = ("answer", "score")
"""Required columns of ``study rate --from``; ``hallucination``, ``comment`` and ``corrected_answer`` are optional."""


def responses_from_csv(packet: Packet, csv_path: str | Path, rated_at: str | None = None) -> Responses:
    """Ratings typed elsewhere (paper forms, a spreadsheet) as responses to ``packet``: all or nothing.

    Columns: ``answer`` (an id from ``--list``), ``score`` (1-4), ``hallucination`` (yes/no, 1/0, x or empty),
    ``comment``, ``corrected_answer``. A row with no score and nothing else is an answer not rated yet and is
    left out; every other problem (an unknown answer, a score outside 1-4, an answer twice, a comment without
    a score) is named with its line, and then nothing is used.
    """
    at = utc_iso(rated_at) if rated_at is not None else utc_now()
    if Path(csv_path).suffix.lower() != ".csv":
        raise UsageError(f"{Path(csv_path).name}: ratings for a packet are read from a .csv file")
    columns, rows = records.iter_records(Path(csv_path), max_bytes=64 << 20, what="ratings file")
    missing = [c for c in RATING_COLUMNS if c not in columns]
    if missing:
        raise UsageError(
            f"{Path(csv_path).name}: needs the columns {', '.join(RATING_COLUMNS)} (missing: {', '.join(missing)})"
        )
    known = set(packet_answer_ids(packet))
    problems: list[str] = []
    seen: dict[str, int] = {}
    out: list[ResponseRow] = []
    for line, rec in rows:
        if isinstance(rec, str):
            problems.append(f"line {line}: {rec}")
            continue
        row = _csv_row(rec, line, known, seen, at, problems)
        if row is not None:
            out.append(row)
    if problems:
        raise UsageError(f"{Path(csv_path).name}: nothing was used: {summarise(problems)}")
    return Responses(packet.study_uuid, packet.rater, utc_now(), tuple(out))


def _csv_row(
    rec: dict[str, Any], line: int, known: set[str], seen: dict[str, int], at: str, problems: list[str]
) -> ResponseRow | None:
    cell = {
        k: str(rec.get(k) or "").strip() for k in ("answer", "score", "hallucination", "comment", "corrected_answer")
    }
    before = len(problems)
    uid = cell["answer"]
    if not uid:
        problems.append(f"line {line}: answer is empty")
    elif uid not in known:
        problems.append(f"line {line}: answer {uid[:40]!r} is not in this packet")
    elif uid in seen:
        problems.append(f"line {line}: answer {uid} appears twice (also line {seen[uid]})")
    else:
        seen[uid] = line
    flag = cell["hallucination"].lower()
    if flag not in FLAG_TRUE | FLAG_FALSE:
        problems.append(f"line {line}: hallucination must be yes or no, not {cell['hallucination'][:20]!r}")
    if not cell["score"]:
        if flag in FLAG_TRUE or cell["comment"] or cell["corrected_answer"]:
            problems.append(f"line {line}: a hallucination flag or comment without a score")
        return None
    score = int(cell["score"]) if cell["score"] in ("1", "2", "3", "4") else None
    if score is None:
        problems.append(f"line {line}: score must be 1, 2, 3 or 4, not {cell['score'][:20]!r}")
    if len(problems) > before or score is None:
        return None
    if why := rating_problem(score, flag in FLAG_TRUE, cell["comment"]):  # refused here, not at the import
        problems.append(f"line {line}: {why}")
        return None
    return ResponseRow(uid, score, flag in FLAG_TRUE, cell["comment"] or None, cell["corrected_answer"] or None, at)
