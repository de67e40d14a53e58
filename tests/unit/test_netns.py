"""app.core.netns without entering a namespace: display detection, per-command declarations, labels,
and the audit hook's one-endpoint allowance (the namespace itself is tested in real subprocesses in
tests/integration/test_netns.py)."""

from __future__ import annotations

import argparse
import re
import socket
from pathlib import Path

import pytest

from app.core import netguard, netns


@pytest.fixture
def x11_dir(tmp_path: Path) -> Path:
    """A stand-in for /tmp/.X11-unix holding a real listening socket file for display :5."""
    d = tmp_path / "x11"
    d.mkdir()
    return d


@pytest.fixture
def x5(x11_dir: Path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(x11_dir / "X5"))
    yield x11_dir
    s.close()


@pytest.mark.parametrize("display", [":5", ":5.0", "unix:5", "unix:5.1", "unix/:5"])
def test_local_x_display_with_a_socket_file_stays_reachable(x5, display):
    assert netns.display_problem({"DISPLAY": display}, x5) is None


@pytest.mark.parametrize("display", [":7", ":7.0", "unix:7"])
def test_x_display_without_a_socket_file_is_abstract_only(x5, display):
    problem = netns.display_problem({"DISPLAY": display}, x5)
    assert problem is not None and "abstract" in problem and "X7" in problem


def test_a_regular_file_is_not_a_display_socket(x11_dir):
    (x11_dir / "X3").write_text("")
    assert "abstract" in (netns.display_problem({"DISPLAY": ":3"}, x11_dir) or "")


@pytest.mark.parametrize(
    "display", ["localhost:10.0", "127.0.0.1:10", "host.example:0", "tcp/localhost:5", "[::1]:3", "inet6/::1:5"]
)
def test_tcp_displays_are_hidden_by_a_namespace(x5, display):
    problem = netns.display_problem({"DISPLAY": display}, x5)
    assert problem is not None and "TCP" in problem


@pytest.mark.parametrize("display", ["garbage", ":", ":x"])
def test_unreadable_display_names_fall_back(x5, display):
    assert "cannot tell" in (netns.display_problem({"DISPLAY": display}, x5) or "")


def test_launchd_style_path_display(x5, tmp_path):
    assert netns.display_problem({"DISPLAY": f"{x5}/X5:0"}, x5) is None
    assert netns.display_problem({"DISPLAY": f"{tmp_path}/nothing:0"}, x5) is not None


@pytest.mark.parametrize("platform", ["offscreen", "minimal", "offscreen:fontengine=freetype", "eglfs"])
def test_headless_qt_platforms_need_no_display(x5, platform):
    assert netns.display_problem({"QT_QPA_PLATFORM": platform, "DISPLAY": "remote:10"}, x5) is None


def test_wayland_only_platform_ignores_display_but_xcb_in_the_list_checks_it(x5):
    assert netns.display_problem({"QT_QPA_PLATFORM": "wayland", "DISPLAY": "remote:10"}, x5) is None
    assert netns.display_problem({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": "remote:10"}, x5) is not None
    assert netns.display_problem({"QT_QPA_PLATFORM": "xcb", "DISPLAY": "remote:10"}, x5) is not None


def test_no_display_at_all_is_not_a_reason_to_fall_back(x5):
    assert netns.display_problem({}, x5) is None
    assert netns.display_problem({"WAYLAND_DISPLAY": "wayland-0"}, x5) is None


def test_dbus_note_only_for_abstract_or_tcp_buses():
    assert netns.dbus_note({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}) is None
    assert netns.dbus_note({}) is None
    assert netns.dbus_note({"DBUS_SESSION_BUS_ADDRESS": "unix:abstract=/tmp/dbus-XYZ,guid=1"})
    assert netns.dbus_note({"DBUS_SESSION_BUS_ADDRESS": "tcp:host=localhost,port=1234"})
    assert netns.dbus_note({"DBUS_SESSION_BUS_ADDRESS": "unix:abstract=/tmp/x;unix:path=/run/bus"}) is None


# -- per-command declarations ----------------------------------------------------------------------
def test_calls_endpoint_reads_the_named_option_and_empty_means_isolated():
    @netns.calls_endpoint("endpoint")
    def handler(args):
        return 0

    assert netns.endpoint_of(handler, argparse.Namespace(endpoint="http://127.0.0.1:9/v1")) == "http://127.0.0.1:9/v1"
    assert netns.endpoint_of(handler, argparse.Namespace(endpoint=None)) is None
    assert netns.endpoint_of(lambda a: 0, argparse.Namespace(endpoint="http://x")) is None


def test_calls_endpoint_accepts_a_function_of_the_arguments():
    @netns.calls_endpoint(lambda args: args.config_url)
    def handler(args):
        return 0

    assert netns.endpoint_of(handler, argparse.Namespace(config_url="https://judge.local")) == "https://judge.local"


def test_gui_command_is_marked_as_using_a_display_and_no_core_command_is_exempt():
    from app.cli.main import build_parser, cmd_gui

    assert netns.needs_display(cmd_gui)
    parser = build_parser()
    for argv in (["ask", "q", "--note", "n", "--task", "qa"], ["selftest"], ["tasks"], ["gui"], ["models", "list"]):
        args = parser.parse_args(argv)
        assert netns.endpoint_of(args.func, args) is None, argv
    assert not netns.needs_display(parser.parse_args(["selftest"]).func)


# -- labels ----------------------------------------------------------------------------------------
def test_protection_labels_say_what_is_in_force():
    on = netns.Isolation(namespace=True, how="network namespace")
    refused = netns.Isolation(namespace=False, reason="the kernel refused a network namespace (EPERM)")
    exempt = netns.Isolation(namespace=False, reason="`judge` calls an endpoint", endpoint="http://h:1")
    assert netns.Protection(on, audit_hook=True).label == "network namespace + audit hook"
    assert netns.Protection(on, audit_hook=True).badge == "offline: namespace + audit hook"
    p = netns.Protection(refused, audit_hook=True)
    assert p.label == "audit hook only (the kernel refused a network namespace (EPERM))"
    assert p.badge == "offline: audit hook only"
    assert "allowing http://h:1" in netns.Protection(exempt, audit_hook=True).label
    assert netns.Protection(refused, audit_hook=False).label.startswith("no network protection")


def test_switch_off_and_non_linux_are_reported_without_touching_the_kernel(monkeypatch):
    def boom(flags):
        raise AssertionError("unshare must not be called")

    monkeypatch.setattr(netns, "_unshare", boom)
    off = netns._attempt(False, {"ASCLEPIUS_NETNS": "off"})
    assert not off.namespace and "ASCLEPIUS_NETNS=off" in off.reason
    monkeypatch.setattr(netns.sys, "platform", "darwin")
    mac = netns._attempt(False, {})
    assert not mac.namespace and "Linux-only" in mac.reason and "darwin" in mac.reason


def test_a_display_problem_is_checked_before_unsharing(monkeypatch):
    monkeypatch.setattr(netns, "_unshare", lambda flags: pytest.fail("unshare called despite a TCP display"))
    iso = netns._attempt(True, {"DISPLAY": "remote.example:10", "QT_QPA_PLATFORM": "xcb"})
    assert not iso.namespace and "window" in iso.reason and "TCP" in iso.reason


def test_a_multithreaded_process_is_not_half_moved(monkeypatch):
    monkeypatch.setattr(netns, "_unshare", lambda flags: pytest.fail("unshare called with threads running"))
    monkeypatch.setattr(netns, "thread_count", lambda: 3)
    iso = netns._attempt(False, {})
    assert not iso.namespace and "3 threads" in iso.reason


@pytest.mark.parametrize(
    ("err", "words"),
    [(1, "EPERM"), (28, "max_user_namespaces"), (22, "does not offer"), (12, "ENOMEM")],
)
def test_kernel_refusals_are_explained(monkeypatch, err, words):
    def refuse(flags):
        raise OSError(err, "refused")

    monkeypatch.setattr(netns, "_unshare", refuse)
    monkeypatch.setattr(netns, "thread_count", lambda: 1)
    iso = netns._attempt(False, {})
    assert not iso.namespace and words in iso.reason


# -- the audit hook's one-endpoint allowance --------------------------------------------------------
class _Sock:
    family = socket.AF_INET


def test_guard_allows_only_the_endpoint_host_and_port():
    guard = netguard.NetGuard(block=True)
    guard.allowed = netguard.Endpoint.parse("http://127.0.0.1:8123/v1").resolved()
    guard._hook("socket.getaddrinfo", ("127.0.0.1", 8123, 0, 1, 0, 0))
    guard._hook("socket.connect", (_Sock(), ("127.0.0.1", 8123)))
    with pytest.raises(PermissionError, match=re.escape("may reach http://127.0.0.1:8123/v1 only")):
        guard._hook("socket.connect", (_Sock(), ("127.0.0.1", 8124)))
    with pytest.raises(PermissionError):
        guard._hook("socket.connect", (_Sock(), ("10.0.0.1", 8123)))
    with pytest.raises(PermissionError):
        guard._hook("socket.getaddrinfo", ("example.org", 80, 0, 1, 0, 0))
    assert len(guard.attempts) == 3


def test_guard_without_allowance_blocks_everything_and_unix_sockets_pass():
    guard = netguard.NetGuard(block=True)
    with pytest.raises(PermissionError, match="network access is disabled"):
        guard._hook("socket.connect", (_Sock(), ("127.0.0.1", 80)))

    class Unix:
        family = socket.AF_UNIX

    guard._hook("socket.connect", (Unix(), "/run/x.sock"))
    assert guard.attempts == ["socket.connect(('127.0.0.1', 80),)"]


@pytest.mark.parametrize(
    ("url", "port"), [("https://judge.example", 443), ("http://h", 80), ("http://h:9000/v1", 9000)]
)
def test_endpoint_default_ports(url, port):
    assert netguard.Endpoint.parse(url).port == port


@pytest.mark.parametrize("url", ["ftp://h/x", "judge.example:443", "http://", "http://h:99999"])
def test_endpoint_rejects_bad_urls(url):
    with pytest.raises(ValueError):
        netguard.Endpoint.parse(url)
