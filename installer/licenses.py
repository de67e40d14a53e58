"""Licence texts inside the installed tree, and the checks that keep GPL-only code out of the bundle.

The release's ``asclepius-desk/licenses/`` (installed as ``/opt/asclepius-desk/licenses/``) holds:

    python/<distribution>/...   the licence files each bundled Python distribution ships (or the common
                                (L)GPL text it declares but does not ship: PySide6, shiboken6)
    system/<package>/copyright  each Debian package a bundled system library came from
    llama.cpp/LICENSE, cpython/LICENSE.txt, demo-model/ (the Gemma terms and the package's NOTICE)
    README.txt                  what is where

The build fails (``check``) when a bundled component is GPL-only (no LGPL alternative, no linking exception):
the product is Apache-2.0. readline is GPL-3 and is what CPython's ``readline`` module links: the CLI does not
need line editing, so the module and the library must not be bundled; krippendorff (GPL-3) is a test-only
reference (the dev extra).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from installer import native, sbom

LICENCES_DIR = "licenses"
# Files that must never be in the bundle, whatever pulled them in: GPL-3 code in an Apache-2.0 product.
_NEVER = re.compile(r"(^|/)(readline\.cpython[^/]*\.so|libreadline\.so[^/]*|libhistory\.so[^/]*|krippendorff)(/|$)")
NEVER_DISTRIBUTIONS = frozenset({"krippendorff"})
"""GPL-only distributions the build venv must not hold (they would be frozen in or listed as shipped)."""


@dataclass(frozen=True)
class Extra:
    """A component with licence files that is not a Python distribution or a Debian package."""

    name: str
    """Directory name under ``licenses/`` (``llama.cpp``, ``cpython``, ``demo-model``)."""
    licence: str
    """Its licence, for README.txt."""
    files: tuple[Path, ...]
    """The licence files to copy (missing ones are skipped)."""


def never_bundled(bundle: Path) -> list[str]:
    """Bundle paths of readline, libhistory or krippendorff (relative, posix; a directory once, not its files)."""
    found: list[str] = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if _NEVER.search(rel) and not any(rel.startswith(f"{f}/") for f in found):
            found.append(rel)
    return found


def gpl_only(packages: list[sbom.Package], libs: list[native.NativeLib]) -> list[str]:
    """``name (licence)`` of every GPL-only Python distribution or system library's package."""
    bad = [f"{p.name} ({p.licence})" for p in packages if native.is_gpl_only(p.licence)]
    bad += [
        f"{p.name} (the build venv has it: it is dev-only)"
        for p in packages
        if sbom.normalise(p.name) in NEVER_DISTRIBUTIONS
    ]
    for deb in sorted({lib.deb for lib in libs if lib.deb}, key=lambda d: d.name):
        text = deb.copyright.read_text(encoding="utf-8", errors="replace") if deb.copyright else ""
        licence = native.package_licence(deb.name, text)
        if licence and native.is_gpl_only(licence):
            bad.append(f"{deb.name} ({licence})")
    return sorted(set(bad))


def check(bundle: Path, packages: list[sbom.Package], libs: list[native.NativeLib]) -> list[str]:
    """Every reason the bundle may not ship (empty: it may)."""
    problems = [f"{rel} is in the bundle (GPL-3; see installer/licenses.py)" for rel in never_bundled(bundle)]
    problems += [f"GPL-only component in an Apache-2.0 bundle: {b}" for b in gpl_only(packages, libs)]
    unknown = [lib.rel for lib in libs if lib.origin == "unknown"]
    if unknown:
        problems.append(
            f"{len(unknown)} bundled libraries match no file of an installed Debian package, so their licence is "
            f"unknown (first: {unknown[:3]})"
        )
    return problems


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name)


def write_tree(
    dest: Path,
    packages: list[sbom.Package],
    libs: list[native.NativeLib],
    extras: list[Extra],
    common_dir: Path = sbom.COMMON_LICENCES,
) -> list[str]:
    """Copy every licence text into ``dest`` (``<bundle>/licenses``); returns README.txt's lines."""
    index = ["Licences of the third-party software in Asclepius Desk (Apache-2.0).", ""]
    for extra in extras:
        copied = _copy(dest / extra.name, [f for f in extra.files if f.is_file()])
        index.append(f"{extra.name}/: {extra.licence} ({', '.join(copied) or 'no licence file found at build time'})")
    for p in packages:
        where = dest / "python" / _safe(f"{p.name}-{p.version}")
        copied = _copy(where, [f for f in p.licence_files if f.is_file()])
        if not copied:
            copied = _copy(
                where, [common_dir / n for n in sbom.common_licence_names(p.licence) if (common_dir / n).is_file()]
            )
        index.append(f"python/{where.name}/: {p.licence} ({', '.join(copied) or 'ships no licence file'})")
    for deb in sorted({lib.deb for lib in libs if lib.deb}, key=lambda d: d.name):
        if deb.copyright:
            _copy(dest / "system" / _safe(deb.name), [deb.copyright])
        licence = native.package_licence(deb.name, deb.copyright.read_text(errors="replace")) if deb.copyright else None
        index.append(
            f"system/{_safe(deb.name)}/copyright: Debian package {deb.name} {deb.version} ({licence or 'see the file'})"
        )
    (dest / "README.txt").write_text("\n".join(index) + "\n", encoding="utf-8")
    return index


def _copy(where: Path, files: list[Path]) -> list[str]:
    """Copy ``files`` into ``where`` (created only when there is one); names made unique by a prefix."""
    names: list[str] = []
    for i, f in enumerate(files):
        where.mkdir(parents=True, exist_ok=True)
        name = f.name if f.name not in names else f"{i}-{f.parent.name}-{f.name}"
        shutil.copyfile(f, where / name)
        names.append(name)
    return names
