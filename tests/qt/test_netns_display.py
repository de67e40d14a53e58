"""The desktop app and the network namespace: the badge says what is in force, and the real window still
opens on a real X server (Xvfb) inside the namespace, or falls back, saying why, when the display is
only reachable over TCP or an abstract socket that a new network namespace would hide."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.core import netguard, netns
from tests.integration.netns_probe import kernel_allows_netns

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.qt
@pytest.mark.parametrize(
    ("isolation", "badge", "tip"),
    [
        (netns.Isolation(namespace=True, how="network namespace"), "offline: namespace + audit hook", "namespace"),
        (
            netns.Isolation(namespace=False, reason="the kernel refused a network namespace (EPERM: ...)"),
            "offline: audit hook only",
            "audit hook only (the kernel refused a network namespace (EPERM",
        ),
    ],
)
def test_badge_shows_the_protection_in_force(open_window, monkeypatch, isolation, badge, tip):
    monkeypatch.setattr(netns, "_entered", isolation)
    monkeypatch.setattr(netguard, "_installed", netguard.NetGuard())
    _, win = open_window(wait=False)
    assert win.offline.text() == badge
    assert tip in win.offline.toolTip()
    assert ("#1e6b2a" in win.offline.styleSheet()) is isolation.namespace


LAUNCH = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    REPORT = sys.argv[1]
    original_exec = QApplication.exec

    def exec_then_quit(*args):
        tries = [0]

        def poll():
            wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
            exposed = [w for w in wins if w.windowHandle() is not None and w.windowHandle().isExposed()]
            tries[0] += 1
            loaded = any(w.demo_badge.isVisibleTo(w) for w in wins)  # the demo model is loaded
            if (exposed and loaded) or tries[0] > 240:
                with open(REPORT, "w", encoding="utf-8") as out:
                    for w in exposed:
                        out.write(f"{QApplication.platformName()}|{w.offline.text()}|{w.offline.toolTip()}\\n")
                QApplication.quit()
            else:
                QTimer.singleShot(250, poll)
        QTimer.singleShot(250, poll)
        return original_exec()

    QApplication.exec = exec_then_quit
    from app.cli.main import main
    sys.argv = ["asclepius", "gui"]
    sys.exit(main())
    """
)


@pytest.fixture
def xvfb() -> Iterator[Callable[..., str]]:
    """Start Xvfb servers on free display numbers (``-displayfd``); each is stopped by the test."""
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> str:
        read, write = os.pipe()
        proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", *options],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        started.append(proc)
        with os.fdopen(read) as fh:
            number = fh.readline().strip()
        assert number.isdigit(), "Xvfb did not report its display number"
        return number

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


def home_with_demo(tmp_path: Path, demo_model) -> Path:
    """A fresh app home whose demo GGUF is a hard link to the session's, so it is not assembled again."""
    from app.core.config import Paths
    from app.core.models import Registry

    home = tmp_path / "home"
    saved = os.environ.get("ASCLEPIUS_HOME")
    os.environ["ASCLEPIUS_HOME"] = str(home)
    try:
        target = Registry(Paths.default()).demo_path()
    finally:
        os.environ["ASCLEPIUS_HOME"] = saved or ""
        if saved is None:
            del os.environ["ASCLEPIUS_HOME"]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(demo_model.path, target)
    except OSError:
        shutil.copyfile(demo_model.path, target)
    return home


def launch(tmp_path: Path, display: str, demo_model) -> list[str]:
    report = tmp_path / "window.txt"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QT_QPA_PLATFORM": "xcb",
        "DISPLAY": display,
        "ASCLEPIUS_HOME": str(home_with_demo(tmp_path, demo_model)),
    }
    env.pop("WAYLAND_DISPLAY", None)
    r = subprocess.run(
        [sys.executable, "-c", LAUNCH, str(report)], capture_output=True, text=True, timeout=240, env=env, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert report.exists(), r.stderr[-3000:]
    return report.read_text(encoding="utf-8").splitlines()


@pytest.mark.qt
def test_real_window_opens_on_xvfb_inside_the_namespace(xvfb, tmp_path, demo_model):
    number = xvfb("-nolisten", "tcp")  # the usual local server: a socket file in /tmp/.X11-unix
    lines = launch(tmp_path, f":{number}", demo_model)
    assert len(lines) == 1, lines  # one main window, mapped and exposed on the X server
    platform, badge, tip = lines[0].split("|", 2)
    assert platform == "xcb"
    if kernel_allows_netns():
        assert badge == "offline: namespace + audit hook", tip
        assert tip == "Network protection: network namespace + audit hook"
    else:
        assert badge == "offline: audit hook only", tip


@pytest.mark.qt
@pytest.mark.parametrize(
    ("options", "host", "why"),
    [
        (("-listen", "tcp"), "127.0.0.1", "reached over TCP"),  # X11 forwarding looks like this
        (("-nolisten", "tcp", "-nolisten", "unix"), "", "abstract socket only"),  # no file in /tmp/.X11-unix
    ],
)
def test_window_still_opens_when_the_display_needs_the_host_network(xvfb, tmp_path, demo_model, options, host, why):
    number = xvfb(*options)
    lines = launch(tmp_path, f"{host}:{number}", demo_model)
    assert len(lines) == 1, lines
    platform, badge, tip = lines[0].split("|", 2)
    assert platform == "xcb"
    assert badge == "offline: audit hook only"
    assert tip.startswith("Network protection: audit hook only (kept the host network so the window can reach it")
    assert why in tip
