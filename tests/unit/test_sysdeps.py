"""`make run`'s system-package step covers every library Qt's xcb platform plugin links against."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (shutil.which("dpkg") and shutil.which("objdump") and Path("/sbin/ldconfig").exists()),
    reason="needs a Debian-family system with dpkg, objdump and ldconfig",
)


def makefile_debs() -> set[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(r"^QT_DEBS\s*:=(.*)$", text, re.M)
    assert m, "the Makefile has no QT_DEBS list"
    return set(m.group(1).split())


def test_makefile_installs_every_package_the_xcb_plugin_needs() -> None:
    from tools.qt_sysdeps import xcb_packages

    packages, missing = xcb_packages()
    assert not missing, f"libraries the xcb plugin needs are not installed here: {missing} (run `make sysdeps`)"
    # The walk must reach the libraries a fresh desktop lacked (issue 10), or it proves nothing.
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"} <= packages
    assert packages <= makefile_debs(), f"add to QT_DEBS in the Makefile: {sorted(packages - makefile_debs())}"


def test_plugin_walk_follows_qt_libraries_inside_the_wheel() -> None:
    from tools.qt_sysdeps import qt_dir, system_sonames

    q = qt_dir()
    sonames = system_sonames(q / "plugins" / "platforms" / "libqxcb.so", q / "lib")
    # libQt6Gui pulls fontconfig/EGL; libQt6XcbQpa is inside the wheel and must not be reported as external.
    assert "libfontconfig.so.1" in sonames
    assert not any(s.startswith("libQt6") for s in sonames)


def test_sysdeps_target_checks_the_list_before_installing() -> None:
    text = (ROOT / "Makefile").read_text()
    body = text[text.index("\nsysdeps:") :].split("\n\n", 1)[0]
    assert "$(QT_DEBS)" in body and "apt-get install" in body
    assert "sysdeps" in re.search(r"^app-env:(.*)$", text, re.M).group(1)
