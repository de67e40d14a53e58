"""Which Debian packages Qt's xcb platform plugin needs: ``python tools/qt_sysdeps.py``.

The plugin (``PySide6/Qt/plugins/platforms/libqxcb.so``) and the Qt libraries it pulls from the wheel link
against system libraries the wheel does not ship (libxcb-*, libxkbcommon-x11, libGL, ...). A fresh desktop
install lacks some of them and Qt aborts at start. This walks the ELF ``NEEDED`` entries from the plugin
through the wheel's own libraries, keeps the sonames found outside the wheel, and maps each to the Debian
package that owns it (``dpkg -S``). Packages those depend on are installed by apt; the Makefile's
``QT_DEBS`` lists the direct ones and ``tests/unit/test_sysdeps.py`` checks that it covers this output.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

_NEEDED = re.compile(r"^\s*NEEDED\s+(\S+)", re.M)
_LDCONFIG = re.compile(r"^\s*(\S+) \(([^)]*)\) => (\S+)$", re.M)


def qt_dir() -> Path:
    import PySide6

    return Path(PySide6.__file__).parent / "Qt"


def needed(lib: Path) -> list[str]:
    """The sonames ``lib`` names in its dynamic section (objdump, from binutils)."""
    out = subprocess.run(["objdump", "-p", str(lib)], capture_output=True, text=True, check=True).stdout
    return _NEEDED.findall(out)


def system_sonames(plugin: Path, bundled: Path) -> set[str]:
    """Sonames reached from ``plugin`` that the wheel's ``bundled`` lib directory does not provide."""
    seen: set[str] = set()
    external: set[str] = set()
    todo = [plugin]
    while todo:
        for name in needed(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            inside = bundled / name
            if inside.exists():
                todo.append(inside)
            else:
                external.add(name)
    return external


def resolve(sonames: set[str]) -> dict[str, str | None]:
    """soname -> its path from the dynamic linker's cache (None: not installed)."""
    cache = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths: dict[str, str] = {}
    for name, arch, path in _LDCONFIG.findall(cache):
        if "x86-64" in arch or "64bit" in arch or name not in paths:
            paths.setdefault(name, path)
    return {s: paths.get(s) for s in sorted(sonames)}


def owner(path: str) -> str:
    """The Debian package that installed ``path`` (architecture qualifier dropped)."""
    real = str(Path(path).resolve())
    for candidate in (path, real, real.replace("/usr/lib/", "/lib/", 1), path.replace("/lib/", "/usr/lib/", 1)):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
    raise LookupError(f"no package owns {path}")


def xcb_packages() -> tuple[set[str], list[str]]:
    """(packages owning the plugin's system libraries, sonames not installed at all)."""
    q = qt_dir()
    resolved = resolve(system_sonames(q / "plugins" / "platforms" / "libqxcb.so", q / "lib"))
    missing = [s for s, p in resolved.items() if p is None]
    return {owner(p) for p in resolved.values() if p is not None}, missing


def main() -> int:
    pkgs, missing = xcb_packages()
    print(" ".join(sorted(pkgs)))
    if missing:
        print("not installed (no package found): " + " ".join(missing), file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
