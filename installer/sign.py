"""An OpenPGP detached signature over SHA256SUMS, made with ``gpg`` and a key kept outside the repository.

OpenPGP rather than minisign: ``gpg``/``gpgv`` is on every Debian, Ubuntu and RHEL machine (apt and rpm verify
with it), so an administrator checks a release offline with tools already there; minisign would first have
to be carried onto the air-gapped network. The key comes from the environment, never from the repository:

    ASCLEPIUS_SIGNING_KEY        the key's id or fingerprint (required to sign)
    ASCLEPIUS_SIGNING_GNUPGHOME  the GnuPG home holding its secret key (default: gpg's own, ~/.gnupg)

The release gets ``SHA256SUMS.asc`` (armoured detached signature) and ``asclepius-desk-release-key.asc`` (the
public key, exported minimal), and VERIFY.md names the key's fingerprint for IT to compare through a second
channel.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

PUBLIC_KEY = "asclepius-desk-release-key.asc"
SIGNATURE = "SHA256SUMS.asc"


class SigningError(Exception):
    pass


@dataclass(frozen=True)
class SigningKey:
    """Which key signs, and where GnuPG keeps it."""

    key_id: str
    """Key id or fingerprint as ``gpg --local-user`` takes it."""
    gnupghome: Path | None = None
    """The GnuPG home directory; None: gpg's default."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SigningKey | None:
        """The key the environment names; None when ``ASCLEPIUS_SIGNING_KEY`` is unset (an unsigned build)."""
        env = os.environ if env is None else env
        key = env.get("ASCLEPIUS_SIGNING_KEY", "").strip()
        if not key:
            return None
        home = env.get("ASCLEPIUS_SIGNING_GNUPGHOME", "").strip()
        return cls(key, Path(home) if home else None)

    def gpg(self, *args: str) -> list[str]:
        """A non-interactive gpg command line for this key's home."""
        home = ["--homedir", str(self.gnupghome)] if self.gnupghome else []
        return ["gpg", "--batch", "--no-tty", "--quiet", *home, *args]


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SigningError(f"{' '.join(argv[:1] + argv[-3:])} failed: {r.stderr.strip()}")
    return r.stdout


def fingerprint(key: SigningKey) -> str:
    """The signing key's full fingerprint (40 hex digits), checked to have a usable secret key."""
    out = _run(key.gpg("--with-colons", "--list-secret-keys", key.key_id))
    fprs = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
    if not fprs:
        raise SigningError(f"no secret key {key.key_id!r} in {key.gnupghome or '~/.gnupg'}")
    return fprs[0]


def sign_argv(key: SigningKey, sums: Path, signature: Path) -> list[str]:
    """The detached, armoured signature command (SHA-512 digest)."""
    return key.gpg(
        "--yes", "--local-user", key.key_id, "--digest-algo", "SHA512",
        "--armor", "--detach-sign", "--output", str(signature), str(sums),
    )  # fmt: skip


def export_argv(key: SigningKey, fpr: str, out: Path) -> list[str]:
    """The public key alone (no third-party signatures), armoured."""
    return key.gpg("--yes", "--armor", "--export-options", "export-minimal", "--output", str(out), "--export", fpr)


def sign(key: SigningKey, sums: Path) -> Path:
    """Write ``SHA256SUMS.asc`` beside ``sums``."""
    signature = sums.with_name(SIGNATURE)
    _run(sign_argv(key, sums, signature))
    return signature


def export_public_key(key: SigningKey, fpr: str, out_dir: Path) -> Path:
    """Write the public key file beside the release."""
    path = out_dir / PUBLIC_KEY
    _run(export_argv(key, fpr, path))
    return path


def verify_argv(keyring: Path, signature: Path, sums: Path) -> list[str]:
    """What VERIFY.md's ``gpgv`` step runs: a check against exactly one key, no keyring of the user's."""
    return ["gpgv", "--keyring", str(keyring), str(signature), str(sums)]
