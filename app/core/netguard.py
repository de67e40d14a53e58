"""A Python audit hook that records, and optionally blocks, every attempt to reach the network.

The app is offline by design; this makes that checkable (``asclepius selftest``, the tests) and enforced
for Python code. Unix-domain sockets (local IPC) are not network and are allowed. It is the second layer
on Linux (native code is fenced by the network namespace of :mod:`app.core.netns`) and the only one
elsewhere. A command whose job is to call an endpoint gets that one host and port allowed
(:meth:`NetGuard.allow_only`), nothing else.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.core.openai_policy import public_url

_NET_EVENTS = {
    "socket.connect",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "socket.getnameinfo",
    "socket.sendto",
    "socket.sendmsg",
    "socket.bind",
}


@dataclass(frozen=True)
class Endpoint:
    """The one place an endpoint-calling command may connect to: its host, port and resolved addresses."""

    url: str
    host: str
    port: int
    addresses: frozenset[str]

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Validate ``url``: http or https with a host (and a valid port, if one is given). Messages show the
        URL without userinfo or query (``public_url``): a key typed into the URL is never echoed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {public_url(url)!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"bad port in {public_url(url)!r}: {exc}") from None
        return cls(url=url, host=parts.hostname, port=port, addresses=frozenset({parts.hostname}))

    def resolved(self) -> Endpoint:
        """The same endpoint with its host's addresses, so a connect to a resolved address matches."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError:
            return self  # unresolvable now: only a connect by the literal host name matches
        found = frozenset(str(info[4][0]) for info in infos)
        return Endpoint(self.url, self.host, self.port, self.addresses | found)

    def admits(self, event: str, args: tuple[Any, ...]) -> bool:
        if event == "socket.getaddrinfo":
            return str(args[0]).lower() == self.host.lower()
        if event == "socket.connect":
            address = args[1]
            return (
                isinstance(address, tuple)
                and len(address) >= 2
                and str(address[0]) in self.addresses
                and address[1] == self.port
            )
        return False


@dataclass
class NetGuard:
    block: bool = True
    attempts: list[str] = field(default_factory=list)
    allowed: Endpoint | None = None

    def allow_only(self, url: str | None) -> Endpoint | None:
        """Let Python code reach ``url``'s host and port (and look that host up); None allows nothing.

        Resolving the host happens here, while the allowance is being made; a ValueError names a bad URL.
        """
        self.allowed = Endpoint.parse(url) if url else None
        if self.allowed is not None:  # the lookup goes through this hook, which admits the host by name
            self.allowed = self.allowed.resolved()
        return self.allowed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in _NET_EVENTS:
            return
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            sock = args[0]
            if getattr(sock, "family", None) == socket.AF_UNIX:
                return
        if self.allowed is not None and self.allowed.admits(event, args):
            return
        self.attempts.append(f"{event}{args[1:]!r}")
        if self.block:
            only = f"; this command may reach {public_url(self.allowed.url)} only" if self.allowed else ""
            raise PermissionError(f"network access is disabled in Asclepius Desk ({event}{only})")


_installed: NetGuard | None = None


def install(block: bool = True) -> NetGuard:
    """Install the hook once per process (audit hooks cannot be removed); later calls return it."""
    global _installed
    if _installed is None:
        _installed = NetGuard(block=block)
        sys.addaudithook(_installed._hook)
    return _installed


def installed() -> NetGuard | None:
    """The hook of this process, if :func:`install` was called."""
    return _installed
