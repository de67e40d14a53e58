"""The native shared libraries of a frozen bundle and where each came from, for the SBOM and the licence tree.

Every ELF file of the bundle is one of: llama.cpp's (``llama_cpp/lib``), Qt's (``PySide6/Qt``), a library a
wheel vendors (``numpy.libs``, ``scipy.libs`` ...), CPython's, or a system library PyInstaller copied from the
build machine. A system library is found by name in the build machine's library directories and accepted only
when the bytes are the same (sha256); ``dpkg -S`` then names its Debian package, ``dpkg-query`` the package's
version and source, and ``/usr/share/doc/<package>/copyright`` its licence.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.hashing import sha256_file

# Where PyInstaller finds the system libraries it copies on a Debian/Ubuntu x86-64 build machine.
SYSTEM_LIB_DIRS = (
    Path("/lib/x86_64-linux-gnu"),
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/lib64"),
    Path("/usr/lib"),
    Path("/lib"),
)
_SHARED = re.compile(r"\.so(\.\d+)*$")


@dataclass(frozen=True)
class DebPackage:
    """The Debian package a bundled system library came from."""

    name: str
    """Binary package name, e.g. ``libxcb-cursor0``."""
    version: str
    """Its version on the build machine, e.g. ``0.1.1-4``."""
    source: str
    """Its source package (for the purl's ``upstream`` qualifier)."""
    copyright: Path | None
    """``/usr/share/doc/<name>/copyright`` when present."""


@dataclass(frozen=True)
class NativeLib:
    """One ELF shared library of the bundle."""

    rel: str
    """Path inside the bundle (posix)."""
    sha256: str
    """Of the bundled file."""
    origin: str
    """``llama.cpp``, ``qt``, ``cpython``, ``wheel`` or ``system`` (``unknown`` when a system-looking file
    matches nothing on the build machine)."""
    deb: DebPackage | None = None
    """For ``system``: the Debian package it came from."""


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def shared_libraries(bundle: Path) -> list[Path]:
    """Every regular ELF file under ``bundle`` named like a shared library (``*.so``, ``*.so.N``), sorted."""
    found = [
        p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink() and _SHARED.search(p.name) and is_elf(p)
    ]
    return sorted(found)


def origin_of(rel: str) -> str:
    """Which kind of component a bundled library belongs to, from where PyInstaller put it."""
    parts = rel.split("/")
    if "llama_cpp" in parts:
        return "llama.cpp"
    if "PySide6" in parts or "shiboken6" in parts:
        return "qt"
    if re.search(r"(^|/)libpython3[^/]*\.so", rel) or "lib-dynload" in parts:
        return "cpython"
    if re.search(r"\.(cpython-[^/]*|abi3)\.so$", rel):
        return "wheel"  # a Python extension module (cffi's _cffi_backend sits at the top of _internal)
    if any(p.endswith(".libs") for p in parts[:-1]) or len(parts) > 2:
        return "wheel"  # inside a package directory of _internal, or a wheel's vendored-libs directory
    return "system"


def system_copy(name: str, sha256: str, dirs: tuple[Path, ...] = SYSTEM_LIB_DIRS) -> Path | None:
    """The build machine's file of that name with the same bytes, if any (links resolved)."""
    for d in dirs:
        candidate = d / name
        if candidate.is_file() and sha256_file(candidate.resolve()) == sha256:
            return candidate.resolve()
    return None


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    return r.stdout if r.returncode == 0 else ""


def deb_package_of(path: Path, run: Callable[[list[str]], str] = _run) -> DebPackage | None:
    """The Debian package owning ``path`` on the build machine (``dpkg -S``), with version and source."""
    owner = ""
    for candidate in dict.fromkeys((str(path), str(path).replace("/usr/lib/", "/lib/", 1))):
        out = run(["dpkg", "-S", candidate])
        if out:
            owner = out.split(":", 1)[0].strip()
            break
    if not owner or "," in owner:  # diversions list several packages: not one origin
        return None
    fields = run(["dpkg-query", "-W", "-f=${Version}\t${source:Package}", owner]).split("\t")
    version = fields[0].strip() if fields and fields[0].strip() else "unknown"
    source = fields[1].strip() if len(fields) > 1 and fields[1].strip() else owner
    name = owner.split(":")[0]  # libfoo:amd64 -> libfoo
    copyright_file = Path("/usr/share/doc") / name / "copyright"
    return DebPackage(name, version, source, copyright_file if copyright_file.is_file() else None)


def inventory(bundle: Path, run: Callable[[list[str]], str] = _run) -> list[NativeLib]:
    """Every shared library of the bundle with its sha256 and origin (system ones with their package)."""
    libs = []
    for path in shared_libraries(bundle):
        rel = path.relative_to(bundle).as_posix()
        sha = sha256_file(path)
        origin = origin_of(rel)
        deb = None
        if origin == "system":
            copy = system_copy(path.name, sha)
            deb = deb_package_of(copy, run) if copy else None
            origin = "system" if deb else "unknown"
        libs.append(NativeLib(rel, sha, origin, deb))
    return libs


# -- the licence a Debian copyright file declares ------------------------------------------------------------
LIBRARY_FILES = {
    "libblkid1": "libblkid/*",
    "libmount1": "libmount/*",
    "libuuid1": "libuuid/*",
    "libfdisk1": "libfdisk/*",
    "libsmartcols1": "libsmartcols/*",
    "libkeyutils1": "keyutils.*",
}
"""Debian packages built from a source whose ``Files: *`` stanza is the programs' licence (util-linux's GPL-2+,
keyutils' GPL-2+) while the shared library we bundle has its own stanza (LGPL-2+/BSD-3-clause): the library's
stanza, by its ``Files:`` pattern, is the one that says what we ship."""

REVIEWED_LICENCES = {
    "libzstd1": (
        "BSD-3-clause or GPL-2",
        "zstd is dual-licensed, either licence at the user's choice (upstream LICENSE and COPYING); Debian 11's "
        "copyright file writes 'BSD-3-clause and GPL-2', Debian 12's 'BSD-3-clause or GPL-2'",
    ),
}
"""Packages whose copyright file states the licence wrongly for our purpose, read by a person: (licence, why)."""


def debian_licence(text: str, files: str = "*") -> str | None:
    """The licence of a machine-readable copyright file's stanza whose ``Files:`` patterns include ``files``
    (default ``*``: ``GPL-2+ or LGPL-3+``); None for a free-form file, whose licence a person reads (the text is
    shipped either way), or when no such stanza is there."""
    if not text.startswith("Format:"):
        return None
    for stanza in re.split(r"\n[ \t]*\n", text):
        patterns: list[str] = []
        licence = None
        in_files = False
        for line in stanza.splitlines():
            if line.startswith("Files:"):
                patterns, in_files = line.split(":", 1)[1].split(), True
            elif in_files and line[:1] in (" ", "\t") and not line.strip().startswith(("Copyright", "License")):
                patterns += line.split()
            else:
                in_files = False
                if line.startswith("License:") and licence is None:
                    licence = line.split(":", 1)[1].strip() or None
        if files in patterns:
            return licence
    return None


def package_licence(package: str, text: str) -> str | None:
    """The licence of what the bundle takes from Debian package ``package``: a reviewed one, the library's own
    stanza (``LIBRARY_FILES``), else the ``Files: *`` stanza's."""
    if package in REVIEWED_LICENCES:
        return REVIEWED_LICENCES[package][0]
    return debian_licence(text, LIBRARY_FILES.get(package, "*"))


def is_gpl_only(licence: str) -> bool:
    """True when every alternative of a licence expression is the GPL without a linking exception (a GPL-only
    library may not be shipped linked into the Apache-2.0 product). LGPL, AGPL-free dual licences and ``GPL
    with ... exception`` pass. Works on SPDX ids (``GPL-3.0-only``) and Debian's (``GPL-3+``)."""
    alternatives = re.split(r"\s+(?:or|OR)\s+", licence.strip().strip("()"))
    return bool(alternatives) and all(_gpl_only_term(a) for a in alternatives)


def _gpl_only_term(term: str) -> bool:
    t = term.strip().strip("()")
    if re.search(r"\bexception\b|\bWITH\b|\bwith\b", t):
        return False
    words = re.split(r"\s+(?:and|AND)\s+", t)  # a conjunction is GPL-only if any part is
    return any(re.match(r"^(A?GPL|GNU (Affero )?General Public License)\b", w.strip()) for w in words)
