"""Offline for native code too: move the process into a network namespace that holds only loopback.

The audit hook in :mod:`app.core.netguard` sees Python sockets only; llama.cpp and Qt are C and C++. On
Linux the process can give itself a new network namespace at start (``unshare(2)``), after which no
socket it opens, from any language, reaches an interface other than its own ``lo``: the host's
interfaces, its loopback listeners and abstract Unix sockets are in another namespace. An unprivileged
user gets the right to do so from a new user namespace that maps its own uid and gid onto themselves
(so files keep their owner); root needs only ``CLONE_NEWNET``.

It must happen while the process is single-threaded: a namespace is a property of a thread, and
``CLONE_NEWUSER`` is refused outright in a multi-threaded process. So the CLI calls :func:`enter` after
parsing its arguments and before llama.cpp, Qt or any worker starts; the desktop app before Qt.

Where it cannot be done (not Linux, the kernel or a container refuses user namespaces, a display that
only the host's network namespace can reach), the audit hook stays the only layer, and
:func:`protection` says so and why: the status bar badge and ``asclepius selftest`` print it.

Commands whose job is to call an endpoint (data generation, the judge, ``batch --endpoint``) declare it
with :func:`calls_endpoint`; the CLI then leaves them outside the namespace and lets the audit hook allow
only that URL's host and port.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.core import netguard
from app.core.errors import AsclepiusError

# <linux/sched.h>
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
# <linux/sockios.h>, <net/if.h>
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

OFF_ENV = "ASCLEPIUS_NETNS"
"""Set to ``off`` to keep the process in the host's network namespace (the audit hook stays on)."""

X11_SOCKET_DIR = Path("/tmp/.X11-unix")

# Qt platform plugins that draw without a display server, so no display has to stay reachable.
_HEADLESS_QPA = {"offscreen", "minimal", "eglfs", "linuxfb", "vkkhrdisplay"}


class NetnsError(AsclepiusError):
    """The namespace was created but could not be completed; the process is in an unusable state."""

    exit_code = 1


@dataclass(frozen=True)
class Isolation:
    """What :func:`enter` did, for the badge and ``selftest``."""

    namespace: bool
    """True when the process runs in a network namespace of its own with no interface but loopback."""
    how: str = ""
    """Which namespaces were created: "user + network namespace" or "network namespace" (as root)."""
    reason: str = ""
    """Why no namespace is in force (empty when it is)."""
    endpoint: str | None = None
    """The only URL an endpoint-calling command may reach (it runs outside the namespace)."""
    notes: tuple[str, ...] = ()
    """Side effects worth knowing, e.g. an abstract-socket D-Bus that is now out of reach."""


NOT_ENTERED = Isolation(namespace=False, reason="the process did not ask for a network namespace")

_entered: Isolation | None = None


@dataclass(frozen=True)
class Protection:
    """The network protection actually in force in this process."""

    isolation: Isolation
    audit_hook: bool

    @property
    def label(self) -> str:
        iso = self.isolation
        if iso.namespace:
            return "network namespace + audit hook" if self.audit_hook else "network namespace only"
        if not self.audit_hook:
            return f"no network protection ({iso.reason})"
        if iso.endpoint:
            return f"audit hook only, allowing {iso.endpoint} ({iso.reason})"
        return f"audit hook only ({iso.reason})"

    @property
    def badge(self) -> str:
        """Short text for the status bar; :attr:`label` goes in its tooltip."""
        if self.isolation.namespace:
            return "offline: namespace + audit hook"
        return "offline: audit hook only" if self.audit_hook else "NOT offline-protected"


def protection() -> Protection:
    return Protection(isolation=_entered or NOT_ENTERED, audit_hook=netguard.installed() is not None)


# -- per-command declarations (used by app.cli.main) ----------------------------------------------
F = TypeVar("F", bound=Callable[..., Any])
_ENDPOINT_ATTR = "__asclepius_endpoint__"
_DISPLAY_ATTR = "__asclepius_display__"


def calls_endpoint(option: str | Callable[[Any], str | None]) -> Callable[[F], F]:
    """Mark a CLI handler whose job is to call a network endpoint.

    ``option`` names the parsed argument holding the URL (``"endpoint"`` reads ``args.endpoint``), or is
    a function of the parsed arguments returning it. When the URL is set, the command runs outside the
    network namespace, says so on stderr, and the audit hook lets Python code reach that host and port
    only. When it is empty (e.g. ``batch`` without ``--endpoint``) the command is isolated like any other.
    """

    def mark(func: F) -> F:
        setattr(func, _ENDPOINT_ATTR, option)
        return func

    return mark


def uses_display(func: F) -> F:
    """Mark a CLI handler that opens windows: a display only reachable from the host namespace is kept."""
    setattr(func, _DISPLAY_ATTR, True)
    return func


def endpoint_of(handler: Callable[..., Any], args: Any) -> str | None:
    option = getattr(handler, _ENDPOINT_ATTR, None)
    if option is None:
        return None
    url = option(args) if callable(option) else getattr(args, option, None)
    return str(url) if url else None


def needs_display(handler: Callable[..., Any]) -> bool:
    return bool(getattr(handler, _DISPLAY_ATTR, False))


def record_exempt(endpoint: str, command: str) -> Isolation:
    """Record that this process stays in the host namespace to call ``endpoint`` (CLI only)."""
    global _entered
    _entered = Isolation(namespace=False, reason=f"`{command}` calls an endpoint", endpoint=endpoint)
    return _entered


# -- displays -------------------------------------------------------------------------------------
def display_problem(environ: Mapping[str, str], x11_dir: Path = X11_SOCKET_DIR) -> str | None:
    """Why the GUI's display would be out of reach from a new network namespace, or None if it is not.

    A new network namespace hides TCP (``DISPLAY=host:10``, X11 forwarding's ``localhost:10``) and
    abstract Unix sockets (an X server with no ``/tmp/.X11-unix/XN`` file). Path sockets stay reachable:
    a local X server's socket file and every Wayland socket (``WAYLAND_DISPLAY`` names a file).
    """
    platforms = [p.split(":")[0].strip() for p in environ.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if platforms and platforms[0] in _HEADLESS_QPA:
        return None
    if platforms and "xcb" not in platforms:
        return None  # wayland (path sockets) or a plugin that is not X11
    display = environ.get("DISPLAY", "")
    return _x11_problem(display, x11_dir) if display else None


def _x11_problem(display: str, x11_dir: Path) -> str | None:
    if display.startswith("/"):  # a socket path followed by :N (XQuartz/launchd style)
        path = display.rsplit(":", 1)[0]
        return None if _is_socket(Path(path)) else f"DISPLAY={display} names no socket file"
    host, sep, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not sep or not number.isdigit():
        return f"cannot tell how DISPLAY={display!r} is reached"
    proto = ""
    if "/" in host:
        proto, host = host.split("/", 1)
    if proto in ("tcp", "inet", "inet6") or host not in ("", "unix"):
        return f"DISPLAY={display} is reached over TCP (X11 forwarding?), which a new network namespace hides"
    if not _is_socket(x11_dir / f"X{number}"):
        return (
            f"X display :{number} has no socket file {x11_dir}/X{number} "
            "(an abstract socket only, which a new network namespace hides)"
        )
    return None


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def dbus_note(environ: Mapping[str, str]) -> str | None:
    """The session bus is not the display: losing it costs desktop integration (portals), not the window."""
    address = environ.get("DBUS_SESSION_BUS_ADDRESS", "")
    if not address:
        return None
    entries = [a for a in address.split(";") if a]
    if any(a.startswith("unix:path=") for a in entries):
        return None
    return "the session D-Bus is at an abstract or TCP address, out of reach in the namespace"


# -- entering -------------------------------------------------------------------------------------
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    """``unshare(2)``; raises OSError with the kernel's errno (tests replace this to simulate refusal)."""
    if _libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _refusal(err: OSError) -> str:
    code = errno.errorcode.get(err.errno or 0, str(err.errno))
    if err.errno == errno.EPERM:
        return (
            "the kernel refused a network namespace (EPERM: unprivileged user namespaces disabled by "
            "sysctl or AppArmor, or a container's seccomp profile)"
        )
    if err.errno == errno.ENOSPC:
        return "the user namespace limit is reached (ENOSPC, user.max_user_namespaces)"
    if err.errno in (errno.EINVAL, errno.ENOSYS):
        return f"this kernel does not offer network namespaces ({code})"
    return f"unshare failed: {err.strerror} ({code})"


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _map_own_ids(uid: int, gid: int) -> None:
    # setgroups must be denied before an unprivileged process may write gid_map (user_namespaces(7)).
    if os.path.exists("/proc/self/setgroups"):
        _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def _loopback_up() -> None:
    import fcntl  # not on Windows: imported only where a namespace is being made

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # struct ifreq: a 16-byte name, then a 24-byte union whose first member is the short ifr_flags.
        got = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))
        flags = struct.unpack("16sh22x", got)[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))


def _create() -> str:
    """Create the namespaces; return which. Raises OSError when the kernel refuses."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        try:
            _unshare(CLONE_NEWNET)
            return "network namespace"
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            # Root without CAP_SYS_ADMIN (a container): a user namespace may still grant it.
    _unshare(CLONE_NEWUSER | CLONE_NEWNET)
    try:
        _map_own_ids(uid, gid)
    except OSError as exc:
        raise NetnsError(
            f"entered a user namespace but could not map uid {uid} into it ({exc}); "
            f"set {OFF_ENV}=off to run without the namespace"
        ) from exc
    return "user + network namespace"


def enter(*, needs_display: bool = False, environ: Mapping[str, str] | None = None) -> Isolation:
    """Move this process into a new network namespace with only loopback, where possible (once).

    Returns what is in force; never raises for a refusal (the audit hook remains), only
    :class:`NetnsError` for a half-made namespace that would leave files unreadable.
    """
    global _entered
    if _entered is not None:
        return _entered
    env = os.environ if environ is None else environ
    _entered = _attempt(needs_display, env)
    return _entered


def _attempt(needs_display: bool, env: Mapping[str, str]) -> Isolation:
    if env.get(OFF_ENV, "").lower() in ("off", "0", "no"):
        return Isolation(namespace=False, reason=f"turned off with {OFF_ENV}={env[OFF_ENV]}")
    if not sys.platform.startswith("linux"):
        return Isolation(namespace=False, reason=f"network namespaces are Linux-only (this is {sys.platform})")
    notes: list[str] = []
    if needs_display:
        problem = display_problem(env)
        if problem:
            return Isolation(namespace=False, reason=f"kept the host network so the window can reach it: {problem}")
        note = dbus_note(env)
        if note:
            notes.append(note)
    threads = thread_count()
    if threads > 1:
        return Isolation(namespace=False, reason=f"the process already runs {threads} threads")
    try:
        how = _create()
    except OSError as exc:
        return Isolation(namespace=False, reason=_refusal(exc))
    try:
        _loopback_up()
    except OSError as exc:  # still isolated, only without a working loopback
        notes.append(f"loopback could not be brought up ({exc})")
    names = interfaces()
    if names != ["lo"]:
        raise NetnsError(f"after unshare the process still sees interfaces {names}")
    return Isolation(namespace=True, how=how, notes=tuple(notes))


def interfaces() -> list[str]:
    """Names of the network interfaces this process can see (only ``lo`` inside the namespace)."""
    return [name for _, name in socket.if_nameindex()]
