"""A Python audit hook that records, and optionally blocks, every attempt to reach the network.

The app is offline by design; this makes that checkable (``asclepius selftest``, the tests) and enforced
for Python code. Unix-domain sockets (local IPC) are not network and are allowed.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class NetGuard:
    block: bool = True
    attempts: list[str] = field(default_factory=list)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in _NET_EVENTS:
            return
        if event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"):
            sock = args[0]
            if getattr(sock, "family", None) == socket.AF_UNIX:
                return
        self.attempts.append(f"{event}{args[1:]!r}")
        if self.block:
            raise PermissionError(f"network access is disabled in Asclepius Desk ({event})")


_installed: NetGuard | None = None


def install(block: bool = True) -> NetGuard:
    """Install the hook once per process (audit hooks cannot be removed); later calls return it."""
    global _installed
    if _installed is None:
        _installed = NetGuard(block=block)
        sys.addaudithook(_installed._hook)
    return _installed
