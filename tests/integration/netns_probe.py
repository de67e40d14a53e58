"""Child process for tests/integration/test_netns.py: enter (or not) the namespace, then try the network.

Usage: python netns_probe.py MODE PORT [OUT_DIR]
  MODE cli     -- the CLI's own path: parse `asclepius tasks`, then app.cli.main.protect(args, isolate=True)
  MODE refused -- the same, with unshare(2) failing with EPERM as a kernel that refuses namespaces does
  MODE core    -- app.core.netns.enter() alone (used as an unprivileged user, with stdlib-only imports)
Then it connects to 127.0.0.1:PORT twice: from native code (libc socket/connect through ctypes, which no
audit hook sees) and from Python (socket.create_connection), and prints one JSON line with the results.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import socket
import struct
import sys


@functools.cache
def kernel_allows_netns() -> bool:
    """Whether a fresh process here may enter the namespace (tests expect the fallback where it may not)."""
    import subprocess

    code = "from app.core import netns; print(netns.enter().namespace)"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("ASCLEPIUS_NETNS", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    return r.stdout.strip() == "True"


def native_connect(port: int) -> int:
    """0 if libc connect() to 127.0.0.1:port succeeded, else the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    if fd < 0:
        return ctypes.get_errno()
    # struct sockaddr_in: family (host order), port (network order), address, 8 bytes of padding
    addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + bytes(8)
    rc = libc.connect(fd, addr, len(addr))
    err = 0 if rc == 0 else ctypes.get_errno()
    libc.close(fd)
    return err


def python_connect(port: int) -> str:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "connected"


def main() -> None:
    mode, port = sys.argv[1], int(sys.argv[2])
    from app.core import netns

    if mode == "refused":

        def refuse(flags: int) -> None:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))

        netns._unshare = refuse  # type: ignore[assignment]
    if mode in ("cli", "refused"):
        from app.cli.main import build_parser, protect

        label = protect(build_parser().parse_args(["tasks"]), isolate=True).label
    else:
        netns.enter()
        label = netns.protection().label
    report = {
        "label": label,
        "namespace": netns.protection().isolation.namespace,
        "interfaces": netns.interfaces(),
        "uid": os.getuid(),
        "native": native_connect(port),
        "python": python_connect(port),
    }
    if len(sys.argv) > 3:  # a file made inside: its owner on the host shows the uid was kept
        path = os.path.join(sys.argv[3], "made-inside")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("x")
        report["file"] = path
    print(json.dumps(report))


if __name__ == "__main__":
    main()
