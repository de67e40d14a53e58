"""A passphrase-encrypted, authenticated container for study files that travel on a USB stick.

A rater packet holds note text (patient data) and a responses file holds a clinician's ratings, so both are
encrypted with a key derived from a passphrase the coordinator and the rater agree on, and authenticated, so
that a file edited by hand, cut short, or meant for another study or rater is refused with a clear message.

Layout (all integers big-endian)::

    magic  "ASCLSTDY"        8 bytes
    format version           1 byte   (FORMAT_VERSION)
    header length            4 bytes
    header                   JSON, UTF-8: kind, study_uuid, rater, kdf {name, n, r, p}, salt, nonce,
                             cipher, payload_bytes
    ciphertext + GCM tag     payload_bytes

Cipher: AES-256-GCM (``cryptography``) with a random 96-bit nonce. Key: ``hashlib.scrypt`` over the
passphrase (NFC-normalised, so the same passphrase typed on another system's keyboard gives the same key) with
a random 16-byte salt. Everything before the ciphertext (magic, version, length, header) is the GCM associated
data: changing one byte of it, or moving another file's header onto this ciphertext, fails authentication.

The header is read before the key is derived so that a file for another study, another rater or of the
other kind is named as such, rather than blamed on the passphrase; an attacker who edits the header to get
past those checks still fails authentication. A wrong passphrase and an altered file cannot be told apart
(that is what authenticated encryption gives), and the message says both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
import unicodedata
from dataclasses import dataclass
from typing import Any

from app.core.errors import UsageError

MAGIC = b"ASCLSTDY"
FORMAT_VERSION = 1
KINDS = ("packet", "responses")
CIPHER = "AES-256-GCM"
MIN_PASSPHRASE = 10
"""Characters (the one floor: sealing and the study commands ask ``check_passphrase``). The file travels on
removable media, so an offline guessing attack is the threat; scrypt makes each guess cost ~0.1 s and 32 MiB,
which only helps if the passphrase is not a short word. A floor, not advice."""
MAX_HEADER = 4096
"""Bytes; the header written is about 400. A larger length field means a damaged or foreign file."""
_PREFIX = struct.Struct(">8sBI")
_TAG = 16
_SALT = 16
_NONCE = 12


@dataclass(frozen=True)
class KdfParams:
    """scrypt's cost parameters, written into each file so they can be raised without breaking old files."""

    n: int = 2**15
    """CPU/memory cost. 2**15 with r=8 needs 32 MiB (128 * n * r bytes) and took 0.09 s on the 2-core
    development machine (2**17, OWASP's figure for stored password hashes, took 0.30 s). A file is sealed or
    opened a handful of times per study, so the cost is paid by a guesser, not by the rater."""
    r: int = 8
    """Block size (8: the scrypt paper's and OWASP's value)."""
    p: int = 1
    """Parallelism (1: the machines are 2-core workstations)."""

    def check(self) -> None:
        """Refuse parameters a file could carry to make opening it hang or exhaust memory (or be too weak)."""
        if not (2**14 <= self.n <= 2**20 and self.n & (self.n - 1) == 0 and self.r == 8 and 1 <= self.p <= 4):
            raise SealError(f"unsupported key-derivation parameters in the file (n={self.n}, r={self.r}, p={self.p})")

    @property
    def maxmem(self) -> int:
        # OpenSSL needs a little more than 128 * n * r * p; its default cap (32 MiB) refuses n = 2**15 exactly.
        return 2 * 128 * self.n * self.r * self.p + 2**20


class SealError(UsageError):
    """A study file that cannot be opened: the message says why, never what the passphrase was."""


@dataclass(frozen=True)
class SealHeader:
    """What a sealed file says about itself before it is decrypted (authenticated once it is)."""

    kind: str
    """``packet`` (coordinator to rater) or ``responses`` (rater to coordinator)."""
    study_uuid: str
    rater: str
    kdf: KdfParams
    salt: bytes
    nonce: bytes
    payload_bytes: int
    """Length of ciphertext + tag: tells a truncated file from an altered one."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key(passphrase: str, salt: bytes, kdf: KdfParams) -> bytes:
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return hashlib.scrypt(secret, salt=salt, n=kdf.n, r=kdf.r, p=kdf.p, maxmem=kdf.maxmem, dklen=32)


def check_passphrase(passphrase: str) -> None:
    """Refuse a passphrase too short to protect patient data (the message never repeats it)."""
    if not isinstance(passphrase, str) or len(passphrase.strip()) < MIN_PASSPHRASE:
        raise SealError(f"the passphrase must be at least {MIN_PASSPHRASE} characters long")


def seal(
    payload: bytes, passphrase: str, *, kind: str, study_uuid: str, rater: str, kdf: KdfParams | None = None
) -> bytes:
    """``payload`` encrypted and authenticated under ``passphrase``, with a header naming kind, study and rater."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    check_passphrase(passphrase)
    kdf = kdf or KdfParams()
    kdf.check()
    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    header = {
        "kind": kind,
        "study_uuid": study_uuid,
        "rater": rater,
        "kdf": {"name": "scrypt", "n": kdf.n, "r": kdf.r, "p": kdf.p},
        "salt": _b64(salt),
        "nonce": _b64(nonce),
        "cipher": CIPHER,
        "payload_bytes": len(payload) + _TAG,
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head
    return prefix + AESGCM(_key(passphrase, salt, kdf)).encrypt(nonce, payload, prefix)


def read_header(blob: bytes) -> tuple[SealHeader, bytes, bytes]:
    """The header, the associated data (everything before the ciphertext) and the ciphertext; SealError for a
    file that is not a study file, is cut short, or has a damaged header."""
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(blob[: len(MAGIC)]) and blob:
            raise SealError("the file is truncated (it ends inside its header)")
        raise SealError("not an Asclepius study file (no packet or responses header)")
    if len(blob) < _PREFIX.size:
        raise SealError("the file is truncated (it ends inside its header)")
    _magic, version, head_len = _PREFIX.unpack_from(blob)
    if version != FORMAT_VERSION:
        raise SealError(
            f"the file is in study-file format {version}; this version of Asclepius Desk reads format "
            f"{FORMAT_VERSION} (a newer app made it, or the file was altered)"
        )
    if head_len > MAX_HEADER:
        raise SealError("wrong passphrase, or the file was altered (its header length is impossible)")
    end = _PREFIX.size + head_len
    if len(blob) < end:
        raise SealError("the file is truncated (it ends inside its header)")
    header = _parse_header(blob[_PREFIX.size : end])
    body = blob[end:]
    if len(body) < header.payload_bytes:
        raise SealError(
            f"the file is truncated: {len(body):,} of its {header.payload_bytes:,} encrypted bytes are there "
            "(copy it again from the source)"
        )
    if len(body) > header.payload_bytes:
        raise SealError("wrong passphrase, or the file was altered (bytes were added after its end)")
    return header, blob[:end], body


def _parse_header(raw: bytes) -> SealHeader:
    altered = SealError("wrong passphrase, or the file was altered (its header cannot be read)")
    try:
        h: Any = json.loads(raw.decode("utf-8"))
        kdf_raw = h["kdf"]
        if kdf_raw.get("name") != "scrypt" or h.get("cipher") != CIPHER:
            raise altered
        kdf = KdfParams(n=int(kdf_raw["n"]), r=int(kdf_raw["r"]), p=int(kdf_raw["p"]))
        header = SealHeader(
            kind=str(h["kind"]),
            study_uuid=str(h["study_uuid"]),
            rater=str(h["rater"]),
            kdf=kdf,
            salt=base64.b64decode(h["salt"], validate=True),
            nonce=base64.b64decode(h["nonce"], validate=True),
            payload_bytes=int(h["payload_bytes"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise altered from None
    if header.kind not in KINDS or len(header.salt) != _SALT or len(header.nonce) != _NONCE:
        raise altered
    if header.payload_bytes < _TAG:
        raise altered
    kdf.check()
    return header


def _describe(kind: str) -> str:
    return "a rater packet" if kind == "packet" else "a responses file"


def check_header(header: SealHeader, *, kind: str, study_uuid: str | None, rater: str | None) -> None:
    """Refuse a file of the other kind, or for another study or rater, naming what it is."""
    if header.kind != kind:
        raise SealError(f"this is {_describe(header.kind)}, not {_describe(kind)}")
    what = "packet" if kind == "packet" else "responses file"
    if study_uuid is not None and header.study_uuid != study_uuid:
        raise SealError(f"this {what} is for study {header.study_uuid}, not {study_uuid}")
    if rater is not None and header.rater != rater:
        raise SealError(f"this {what} is for rater {header.rater!r}, not {rater!r}")


def unseal(
    blob: bytes, passphrase: str, *, kind: str, study_uuid: str | None = None, rater: str | None = None
) -> bytes:
    """The payload of a sealed file; SealError (a usage error, exit 2) with the reason otherwise."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    header, aad, body = read_header(blob)
    check_header(header, kind=kind, study_uuid=study_uuid, rater=rater)
    if not isinstance(passphrase, str) or not passphrase:
        raise SealError("a passphrase is needed to open this file")
    try:
        return AESGCM(_key(passphrase, header.salt, header.kdf)).decrypt(header.nonce, body, aad)
    except InvalidTag:
        raise SealError(
            "wrong passphrase, or the file was altered (the two cannot be told apart: check the passphrase "
            "with the study coordinator, then copy the file again)"
        ) from None
