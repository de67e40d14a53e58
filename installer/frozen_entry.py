"""Entry point of the frozen ``asclepius`` executable (PyInstaller one-folder bundle).

It is ``app.cli.main:main`` with checks only a frozen bundle needs: a missing bundled library or Qt plugin
becomes one clear line and exit code 1, instead of a traceback or Qt's abort (a core dump) when the system
lacks an X11 library that the xcb platform plugin links to. A processor without the instruction sets the
bundle needs (``installer/floor.py``: Qt's SSE4.2 and POPCNT, the lowest llama.cpp variant's) gets one line
and the model-problem exit code 4, as the unfrozen app gets from ``ensure_cpu_backend``, before Qt or
llama.cpp is loaded: Qt would abort with a core dump, or die of an illegal instruction first.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from pathlib import Path

from app.core.errors import ModelError
from app.core.llama_backends import variant_names

try:
    from installer import floor
except ImportError:  # frozen: PyInstaller analysed this script from installer/, so floor is a top-level module
    import floor  # type: ignore[no-redef]

BUNDLE_BROKEN = 1


def _err(msg: str) -> None:
    print(f"asclepius: error: {msg}", file=sys.stderr)


def bundle_dir() -> Path:
    """``_internal`` of the one-folder bundle (``sys._MEIPASS``), or the source tree when not frozen."""
    return Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))


def check_cpu(internal: Path, missing: Callable[[tuple[str, ...]], list[str]] = floor.missing_cpu_flags) -> str | None:
    """Why this processor cannot run the bundle, or None: the flags Qt needs and those of the lowest llama.cpp
    CPU variant in the bundle (``floor.cpu_flags_for``), asked of the processor through CPUID."""
    try:
        needed = floor.cpu_flags_for(list(variant_names(internal / "llama_cpp" / "lib")))
    except ValueError:  # no variants (a native llama.cpp build) or one floor.py does not know: Qt's needs only
        needed = floor.QT_FLAGS
    lacking = missing(needed)
    if not lacking:
        return None
    return (
        f"this processor lacks the instruction set(s) {' '.join(lacking)}; Asclepius Desk needs {' '.join(needed)} "
        "(an x86-64 CPU with SSE4.2: Intel Nehalem (2008), AMD Bulldozer (2011) or newer)"
    )


def check_gui_platform(env: dict[str, str], internal: Path) -> str | None:
    """Why the desktop app cannot start here, or None. Checked before QApplication, which aborts instead."""
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform and platform not in ("xcb", "wayland"):
        return None  # offscreen, vnc ...: the user chose; Qt reports its own problems
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return "no display: DISPLAY and WAYLAND_DISPLAY are unset (start the desktop app inside a desktop session)"
    plugins = internal / "PySide6" / "Qt" / "plugins" / "platforms"
    xcb = plugins / "libqxcb.so"
    if not xcb.is_file():
        return f"the bundle is incomplete: the Qt platform plugin {xcb} is missing (reinstall Asclepius Desk)"
    if platform != "wayland" and env.get("DISPLAY"):
        try:
            ctypes.CDLL(str(xcb))
        except OSError as exc:
            return (
                f"the desktop app needs a system library the X11 plugin links to: {exc} "
                "(on Debian/Ubuntu: apt-get install libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 "
                "libxcb-keysyms1 libxcb-shape0 libegl1 libfontconfig1)"
            )
        if not x_display_reachable(env["DISPLAY"]):
            return f"cannot connect to the X display {env['DISPLAY']} (is the desktop session running?)"
    return None


def x_display_reachable(display: str) -> bool:
    """Whether an X server answers on ``display`` (libxcb, which the xcb plugin loads anyway). Qt aborts
    the process (SIGABRT) when it cannot connect; this turns that into a message."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # leave it to Qt: the library check above names missing libraries
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(display.encode(), None)
    try:
        return bool(conn) and xcb.xcb_connection_has_error(conn) == 0
    finally:
        if conn:
            xcb.xcb_disconnect(conn)


def main() -> int:
    argv = sys.argv[1:]
    frozen = bool(getattr(sys, "frozen", False))
    if frozen:
        problem = check_cpu(bundle_dir())
        if problem:
            _err(problem)
            return ModelError.exit_code
    if frozen and argv[:1] == ["gui"]:
        problem = check_gui_platform(dict(os.environ), bundle_dir())
        if problem:
            _err(problem)
            return BUNDLE_BROKEN
    try:
        from app.cli.main import main as cli_main
    except (ImportError, OSError) as exc:
        _err(f"the bundle is incomplete ({exc}); reinstall Asclepius Desk")
        return BUNDLE_BROKEN
    # This process is the asclepius program: it enters the network namespace like `python -m app` does.
    return cli_main(argv, isolate=True)


if __name__ == "__main__":
    sys.exit(main())
