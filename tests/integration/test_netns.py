"""The network namespace holds for native code: real subprocesses against a listener in this process.

The listener runs here, in the test's own network namespace, on 127.0.0.1 and a free port. A child that
entered the namespace through the CLI's own code path cannot reach it even from C (libc through ctypes),
while the same child code reaches it when the namespace is switched off (the positive control), which is
also what any code sees where the kernel refuses namespaces: only the audit hook then, Python only.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core import netguard
from tests.integration.netns_probe import kernel_allows_netns

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("netns_probe.py")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="network namespaces are Linux-only")


class Listener:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]

    def accepted(self) -> int:
        """Connections that reached this listener so far (the kernel queues them until accepted)."""
        n = 0
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    guard = netguard.installed()
    if guard is not None:  # an earlier in-process main() put the blocking hook on this test process
        monkeypatch.setattr(guard, "block", False)
    sock = socket.create_server(("127.0.0.1", 0), backlog=8)
    if guard is not None:
        monkeypatch.setattr(guard, "block", True)
    yield Listener(sock)
    sock.close()


def probe(mode: str, port: int, *, env: dict[str, str] | None = None, prefix: list[str] | None = None, **kw) -> dict:
    argv = [*(prefix or []), *(kw.pop("python", [sys.executable])), str(PROBE), mode, str(port), *kw.pop("extra", [])]
    run_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=run_env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_native_connect_fails_inside_the_namespace_entered_by_the_cli_path(listener):
    if not kernel_allows_netns():
        pytest.skip("this kernel or container refuses network namespaces (the fallback is tested below)")
    report = probe("cli", listener.port)
    assert report["namespace"] is True
    assert report["label"] == "network namespace + audit hook"
    assert report["interfaces"] == ["lo"]
    # lo is up inside, but nothing listens there: the host's listener is in another namespace.
    assert report["native"] == errno.ECONNREFUSED, os.strerror(report["native"])
    assert report["python"].startswith("PermissionError")  # the audit hook, second layer
    assert listener.accepted() == 0


def test_positive_control_the_same_native_connect_succeeds_without_the_namespace(listener):
    report = probe("cli", listener.port, env={"ASCLEPIUS_NETNS": "off"})
    assert report["namespace"] is False
    assert report["label"] == "audit hook only (turned off with ASCLEPIUS_NETNS=off)"
    assert report["native"] == 0  # native code is not seen by the audit hook
    assert report["python"].startswith("PermissionError")
    assert "lo" in report["interfaces"] and len(report["interfaces"]) > 1
    assert listener.accepted() == 1


def test_a_refused_namespace_falls_back_to_the_audit_hook_and_says_why(listener):
    report = probe("refused", listener.port)
    assert report["namespace"] is False
    assert report["label"].startswith("audit hook only (the kernel refused a network namespace (EPERM")
    assert report["python"].startswith("PermissionError") and "network access is disabled" in report["python"]
    assert report["native"] == 0  # the limit of the fallback, stated in the label: Python code only
    assert listener.accepted() == 1


def _nobody_python() -> list[str] | None:
    """A Python interpreter the user `nobody` may run (the venv's may sit under root's home)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    for exe in (sys.executable, "/usr/bin/python3"):
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-c", "import ctypes"]
        if subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0:
            return [exe]
    return None


def test_an_unprivileged_user_gets_a_user_namespace_and_keeps_its_uid(listener):
    if not kernel_allows_netns():
        pytest.skip("this kernel or container refuses network namespaces")
    if os.geteuid() != 0:
        report = probe("core", listener.port)  # we are the unprivileged user
        assert report["namespace"] is True and report["native"] == errno.ECONNREFUSED
        return
    python = _nobody_python()
    if python is None:
        pytest.skip("no setpriv, or no Python interpreter that the user nobody may run")
    out = Path(tempfile.mkdtemp(prefix="asclepius-netns-"))  # pytest's tmp_path is private to root
    out.chmod(0o777)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    try:
        report = probe("core", listener.port, prefix=prefix, python=python, extra=[str(out)], env={"HOME": str(out)})
        owner = Path(report["file"]).stat().st_uid
    finally:
        shutil.rmtree(out)
    if not report["namespace"] and "EPERM" in report["label"]:
        pytest.skip(f"this kernel refuses user namespaces to unprivileged users: {report['label']}")
    assert report["namespace"] is True, report["label"]
    assert report["uid"] == 65534
    assert report["native"] == errno.ECONNREFUSED
    assert owner == 65534  # files keep their owner on the host
    assert listener.accepted() == 0


ENDPOINT_CLI = textwrap.dedent(
    """
    import json, socket, sys
    from app.cli import main as cli
    from app.core import netns

    @netns.calls_endpoint("endpoint")
    def probe(args):
        def attempt(port):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                return "connected"
            except OSError as exc:
                return type(exc).__name__
        report = {"allowed": attempt(args.port), "other": attempt(args.other),
                  "label": netns.protection().label, "interfaces": netns.interfaces()}
        print(json.dumps(report))
        return 0

    def register(sub):
        p = sub.add_parser("probe")
        p.add_argument("--endpoint")
        p.add_argument("--port", type=int)
        p.add_argument("--other", type=int)
        p.set_defaults(func=probe)

    plugins = cli._plugins
    cli._plugins = lambda: [*plugins(), register]
    sys.exit(cli.main())
    """
)


def test_an_endpoint_command_stays_outside_reaches_only_its_url_and_says_so(listener):
    other_port = listener.port + 1 if listener.port < 65535 else listener.port - 1  # the hook stops it first
    url = f"http://127.0.0.1:{listener.port}/v1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", ENDPOINT_CLI, "probe", "--endpoint", url, "--port", str(listener.port)]
    r = subprocess.run([*argv, "--other", str(other_port)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert f"probe connects to {url} only" in r.stderr
    assert report["allowed"] == "connected" and report["other"] == "PermissionError"
    assert report["label"].startswith(f"audit hook only, allowing {url}")
    assert len(report["interfaces"]) > 1  # the host's network namespace
    assert listener.accepted() == 1
    if not kernel_allows_netns():
        return
    # Without --endpoint the same command is isolated like any other.
    r = subprocess.run([*argv[:4], "--port", str(listener.port), "--other", str(other_port)], capture_output=True,
                       text=True, env=env, timeout=120)  # fmt: skip
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["label"] == "network namespace + audit hook" and report["interfaces"] == ["lo"]
    assert report["allowed"] == "PermissionError"
    assert listener.accepted() == 0


REFUSED_SELFTEST = textwrap.dedent(
    """
    import errno, os, sys
    from app.core import netns

    def refuse(flags):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    netns._unshare = refuse
    sys.argv = ["asclepius", "selftest"]
    from app.cli.main import main
    sys.exit(main())
    """
)


def test_selftest_says_audit_hook_only_when_the_kernel_refuses(demo_model):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", REFUSED_SELFTEST], capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "network protection: audit hook only (the kernel refused a network namespace (EPERM" in r.stdout
    assert "network namespace + audit hook" not in r.stdout
    assert "selftest passed" in r.stdout
