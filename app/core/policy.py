"""The organisation's policy: settings IT fixes for every user of a workstation (issue #25).

Two TOML files, read at every start (Python's ``tomllib``):

- the machine policy, ``/etc/asclepius-desk/policy.toml`` (root-owned; ``ASCLEPIUS_POLICY_FILE`` names
  another file, for tests and for staging a policy before rolling it out);
- the user's own ``policy.toml`` in the config directory, read only when the machine policy allows it
  (``allow_user_override``, default true), and then only for the keys the machine policy does not ``lock``.

A value either file sets is in force: the config (``app.core.config.apply_policy``) carries it over the user's
own settings, Settings shows the control disabled and names the file. A key neither sets has its built-in
default, which restricts nothing. A malformed or unreadable file is a :class:`PolicyError` and no command
runs (fail closed): a typo such as ``store_note_txt = false`` must not leave note text stored unnoticed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.core.errors import PolicyError

SYSTEM_POLICY_FILE = Path("/etc/asclepius-desk/policy.toml")
POLICY_FILE_ENV = "ASCLEPIUS_POLICY_FILE"
"""Names the machine policy file instead of SYSTEM_POLICY_FILE (tests, staging). Not a security boundary:
someone who can set it can run their own copy of the program; IT fixes the log's place with permissions."""
USER_POLICY_NAME = "policy.toml"
ORGANISATION = "your organisation's policy"


@dataclass(frozen=True)
class Policy:
    """The values in force; each default restricts nothing."""

    log_path: str | None = None
    """Where the evaluation log is, absolute (``~`` and ``{user}`` already expanded for this user); None: the
    user's own setting (Settings, ``config.json`` ``database``)."""
    store_note_text: bool | None = None
    """False: logs keep each note's sha256 and length only; True: note text is kept; None: the user's setting."""
    note_state_cache: bool = True
    """False: no note state (``kvstate/*.kv``, from which a note can be read back) is written or read on disk.
    The in-memory cache stays: it lives and dies with the process, like the note in the window."""
    endpoint_commands: bool = True
    """False: every command that sends text to a URL (``batch``/``eval run``/``study create|generate``
    ``--endpoint``, ``data``, ``judge``) is refused before it connects."""
    allowed_endpoint_hosts: tuple[str, ...] | None = None
    """Host names or addresses endpoint commands may reach (lower case, no port); None: any host."""


KEYS = tuple(f.name for f in fields(Policy))
_MACHINE_ONLY = ("allow_user_override", "locked")


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy in force and where each value came from."""

    policy: Policy = field(default_factory=Policy)
    """The values in force."""
    sources: Mapping[str, Path] = field(default_factory=dict)
    """Key -> the file that set it; a key not here has its built-in default."""
    locked: frozenset[str] = frozenset()
    """Keys the user's own file may not change (all of them with ``allow_user_override = false``)."""
    machine_file: Path = SYSTEM_POLICY_FILE
    """The machine policy file looked for (it may not exist)."""
    user_file: Path | None = None
    """The user's own policy file looked for; None when the machine policy forbids user overrides."""
    refused: tuple[str, ...] = ()
    """Keys of the user's file that were not applied because the machine policy locks them."""

    @property
    def in_force(self) -> bool:
        """Whether any policy file sets anything."""
        return bool(self.sources)

    def sets(self, key: str) -> bool:
        return key in self.sources

    def set_by(self, key: str) -> str | None:
        """Who set ``key``, for people ("your organisation's policy (/etc/...)"); None for the default."""
        where = self.sources.get(key)
        if where is None:
            return None
        return f"{ORGANISATION} ({where})" if where == self.machine_file else f"your own policy file ({where})"

    def lock_note(self, key: str) -> str | None:
        """The tooltip of a control ``key`` decides: "Set by ..."; None when the user's setting applies."""
        who = self.set_by(key)
        return f"Set by {who}" if who else None

    def check_endpoint(self, url: str, command: str) -> None:
        """Refuse (PolicyError) a command about to send text to ``url`` when the policy forbids it; called before
        any name is resolved or socket opened (``app.cli.main.protect``)."""
        p = self.policy
        if not p.endpoint_commands:
            raise PolicyError(
                f"`{command}` sends text to {_host_of(url) or 'an endpoint'} and is refused by "
                f"endpoint_commands = false in {self.set_by('endpoint_commands')}"
            )
        if p.allowed_endpoint_hosts is None:
            return
        host = _host_of(url)
        if host not in p.allowed_endpoint_hosts:
            allowed = ", ".join(p.allowed_endpoint_hosts) or "none"
            raise PolicyError(
                f"`{command}` may not reach host {host or '(none)'}: allowed_endpoint_hosts in "
                f"{self.set_by('allowed_endpoint_hosts')} allows {allowed}"
            )

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, value, source) for every key, as ``asclepius policy`` and selftest print them."""
        out = []
        for key in KEYS:
            value = getattr(self.policy, key)
            source = self.set_by(key) or "built-in default"
            if key in self.locked and key in self.sources:
                source += ", locked"
            out.append((key, describe_value(key, value), source))
        return out


def describe_value(key: str, value: Any) -> str:
    if value is None:
        return "any host" if key == "allowed_endpoint_hosts" else "the user's setting"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    return str(value)


def _host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.rstrip(".").lower() if host else None


def machine_policy_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    named = env.get(POLICY_FILE_ENV)
    return Path(named) if named else SYSTEM_POLICY_FILE


def load_policy(user_file: Path | None, *, machine_file: Path | None = None) -> EffectivePolicy:
    """The policy in force: the machine file, then the user's ``user_file`` where the machine file allows it.

    A missing file is no policy; one that cannot be read or parsed, or that holds an unknown key or a value of
    the wrong kind, is a PolicyError naming the file and every problem."""
    machine_path = machine_file or machine_policy_file()
    machine = _read(machine_path, machine=True)
    allow = machine.pop("allow_user_override", True)
    locked = frozenset(machine.pop("locked", ()))
    if not allow:
        locked = frozenset(KEYS)
    sources = dict.fromkeys(machine, machine_path)
    values = dict(machine)
    refused: list[str] = []
    read_user = allow and user_file is not None
    if read_user:
        for key, value in _read(user_file, machine=False).items():
            if key in locked:
                refused.append(key)
                continue
            values[key], sources[key] = value, user_file
    return EffectivePolicy(
        policy=replace(Policy(), **values),
        sources=sources,
        locked=locked,
        machine_file=machine_path,
        user_file=user_file if read_user else None,
        refused=tuple(refused),
    )


def _read(path: Path, *, machine: bool) -> dict[str, Any]:
    """The checked keys of one file ({} when it does not exist)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {path} is not UTF-8 text; fix or remove it") from None
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    values, problems = _check(raw, machine=machine)
    if problems:
        raise PolicyError(f"policy file {path} is invalid: " + "; ".join(problems))
    return values


def _check(raw: dict[str, Any], *, machine: bool) -> tuple[dict[str, Any], list[str]]:
    """Every key of a parsed file checked at once: (values, problems)."""
    values: dict[str, Any] = {}
    problems = []
    allowed = (*KEYS, *_MACHINE_ONLY) if machine else KEYS
    for key, value in raw.items():
        if key not in allowed:
            why = "only the machine policy can set it" if key in _MACHINE_ONLY else f"known keys: {', '.join(allowed)}"
            problems.append(f"unknown key {key!r} ({why})")
            continue
        try:
            values[key] = _CHECKS.get(key, _boolean)(key, value)
        except ValueError as exc:
            problems.append(str(exc))
    for key in values.get("locked", ()):
        if key not in raw:
            problems.append(f"locked names {key!r}, which this file does not set")
    return values, problems


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


def _log_path(key: str, value: Any) -> str:
    """Absolute after ``~`` and ``{user}`` (this user's login name) are expanded: one file lists every user's."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a file path, not {value!r}")
    path = Path(value.strip().replace("{user}", _login_name())).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{key} must be absolute (or start with ~), not {value!r}")
    return str(path)


def _login_name() -> str:
    # The account's name, not $USER: the environment is the user's to change.
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        import getpass

        return getpass.getuser()


def _hosts(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ValueError(f"{key} must be a list of host names, not {value!r}")
    hosts = []
    for h in value:
        host = h.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
        if not host or any(c in host for c in "/@ \t?#") or host.count(":") == 1:
            raise ValueError(f"{key}: {h!r} is not a host name (no scheme, port or path)")
        hosts.append(host)
    return tuple(hosts)


def _locked(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{key} must be a list of keys, not {value!r}")
    if unknown := [k for k in value if k not in KEYS]:
        raise ValueError(f"{key} names unknown keys {unknown} (known: {', '.join(KEYS)})")
    return tuple(value)


_CHECKS = {"log_path": _log_path, "allowed_endpoint_hosts": _hosts, "locked": _locked}
