"""The Debian package for system-wide installs, built with ``dpkg-deb`` from the staged release.

    /opt/asclepius-desk/                 the PyInstaller bundle (root-owned, writable by root only), with
                                         share/models/ (the demo GGUF, shared read-only) and licenses/
    /usr/bin/asclepius                   the command (a wrapper: the bundle finds its libraries beside itself)
    /usr/bin/asclepius-desk              the desktop app (``asclepius gui``)
    /usr/share/applications/, icons/     the menu entry and icon
    /usr/share/doc/asclepius-desk/copyright
    /etc/asclepius-desk/policy.toml      IT's policy file, a conffile (kept on remove, removed on purge)

Only what the release's ``MANIFEST.sha256``/``MANIFEST.links`` list goes in, each file checked against its
hash first. Maintainer scripts: ``preinst`` runs install.sh's preflight (``installer/linux/preflight.sh``,
embedded) and refuses an install.sh installation in the same place; ``postrm`` never touches users' data. The
package is reproducible: ``SOURCE_DATE_EPOCH`` for every time stamp, root ownership, sorted members, one
compressor thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.core.hashing import sha256_file
from installer import native
from installer.floor import Requirements

HERE = Path(__file__).resolve().parent
PRODUCT = "asclepius-desk"
PREFIX = f"opt/{PRODUCT}"
CONFFILE = f"etc/{PRODUCT}/policy.toml"
# glibc's own libraries: the libc6 dependency (with the floor's version) covers them.
_GLIBC_SONAMES = re.compile(r"^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux-x86-64)\.so")


class DebError(Exception):
    pass


@dataclass(frozen=True)
class DebSpec:
    """What the control file says."""

    version: str
    """The Debian version (``deb_version`` of the product's version)."""
    depends: tuple[str, ...]
    """``libc6 (>= floor)`` and the packages of the system libraries the bundle links but does not ship."""
    installed_kb: int
    """``Installed-Size``: the tree's size in KiB."""
    maintainer: str = "Asclepius Desk release engineering <release@asclepius-desk.invalid>"
    """Who answers for the package (an IT department may rebuild with its own)."""


def deb_version(version: str) -> str:
    """A PEP 440 version as Debian orders it: ``0.2.0rc1`` sorts before ``0.2.0`` only with a tilde."""
    return re.sub(r"(?<=\d)\.?(a|b|rc|dev)(\d*)$", r"~\1\2", version)


def _needed(path: Path) -> list[str]:
    """The DT_NEEDED sonames of an ELF file (``readelf -d``)."""
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=False).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def system_depends(app_dir: Path, requires: Requirements) -> tuple[str, ...]:
    """Debian packages the bundle needs from the system: glibc, and any library its ELF files link that it
    does not ship (found on the build machine with ``dpkg -S``). A library found nowhere fails the build."""
    shipped = {p.name for p in app_dir.rglob("*")}
    missing: set[str] = set()
    for path in sorted(p for p in app_dir.rglob("*") if p.is_file() and not p.is_symlink() and native.is_elf(p)):
        missing.update(n for n in _needed(path) if n not in shipped and not _GLIBC_SONAMES.match(n))
    libc = "libc6" + (f" (>= {'.'.join(map(str, requires.glibc))})" if requires.glibc else "")
    packages: set[str] = set()
    unknown = []
    for soname in sorted(missing):
        found = next((d / soname for d in native.SYSTEM_LIB_DIRS if (d / soname).exists()), None)
        deb = native.deb_package_of(found.resolve()) if found else None
        if deb is None:
            unknown.append(soname)
        else:
            packages.add(deb.name)
    if unknown:
        raise DebError(f"the bundle links system libraries no installed Debian package provides: {unknown}")
    return (libc, *sorted(packages))


def control_text(spec: DebSpec) -> str:
    return (
        f"Package: {PRODUCT}\n"
        f"Version: {spec.version}\n"
        "Architecture: amd64\n"
        f"Maintainer: {spec.maintainer}\n"
        f"Installed-Size: {spec.installed_kb}\n"
        f"Depends: {', '.join(spec.depends)}\n"
        "Section: science\n"
        "Priority: optional\n"
        "Homepage: https://github.com/starmpcc/Asclepius\n"
        "Description: offline clinical-note assistant (local language models)\n"
        " Asks questions about discharge summaries with a local GGUF model through llama.cpp, keeps an\n"
        " evaluation log per user, and never opens a network connection. Ships a demo model (Gemma 3 270M)\n"
        " that is not trained for clinical tasks.\n"
    )


def _wrapper(*args: str) -> str:
    tail = " ".join(args)
    return f'#!/bin/sh\nexec /{PREFIX}/asclepius {tail}{" " if tail else ""}"$@"\n'


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def copy_listed(stage_dir: Path, dest: Path) -> None:
    """Copy the release's bundle into ``dest``: exactly the files and links the manifests list, each file
    checked against its sha256 (a file dropped into the staged tree after it was listed is not packaged)."""
    prefix = f"./{PRODUCT}/"
    for line in (stage_dir / "MANIFEST.sha256").read_text(encoding="utf-8").splitlines():
        sha, rel = line.split("  ", 1)
        if not rel.startswith(prefix):
            continue
        src, out = stage_dir / rel, dest / rel[len(prefix) :]
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        if sha256_file(out) != sha:
            raise DebError(f"{rel} does not match MANIFEST.sha256")
        out.chmod(0o755 if os.access(src, os.X_OK) else 0o644)
    for line in (stage_dir / "MANIFEST.links").read_text(encoding="utf-8").splitlines():
        rel, target = line.split(" -> ", 1)
        if rel.startswith(prefix):
            link = dest / rel[len(prefix) :]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target)


def maintainer_scripts(debian: Path, version: str, requires: Requirements) -> None:
    preflight = (HERE / "linux" / "preflight.sh").read_text(encoding="utf-8")
    preinst = (HERE / "deb" / "preinst.in").read_text(encoding="utf-8")
    preinst = preinst.replace("@VERSION@", version).replace("@REQUIRES@", requires.render().strip())
    _write(debian / "preinst", preinst.replace("@PREFLIGHT@", preflight), 0o755)
    for name in ("postinst", "prerm", "postrm"):
        _write(debian / name, (HERE / "deb" / name).read_text(encoding="utf-8"), 0o755)
    _write(debian / "conffiles", f"/{CONFFILE}\n")


def tree(stage_dir: Path, root: Path, version: str, requires: Requirements) -> DebSpec:
    """The package's file tree under ``root`` (DEBIAN/ included)."""
    if root.exists():
        shutil.rmtree(root)
    copy_listed(stage_dir, root / PREFIX)
    shutil.copyfile(stage_dir / "uninstall.sh", root / PREFIX / "uninstall.sh")  # for --purge-user-data
    (root / PREFIX / "uninstall.sh").chmod(0o755)
    # uninstall.sh reads this to leave the program to dpkg (apt remove), purging only a user's own data.
    _write(root / PREFIX / "INSTALLED_BY_DPKG", "This installation is managed by dpkg: apt remove asclepius-desk\n")
    _write(root / "usr/bin/asclepius", _wrapper(), 0o755)
    _write(root / "usr/bin/asclepius-desk", _wrapper("gui"), 0o755)
    desktop = (stage_dir / "share" / f"{PRODUCT}.desktop.in").read_text(encoding="utf-8")
    _write(root / f"usr/share/applications/{PRODUCT}.desktop", desktop.replace("@EXEC@", "/usr/bin/asclepius"))
    icon = root / f"usr/share/icons/hicolor/scalable/apps/{PRODUCT}.svg"
    icon.parent.mkdir(parents=True)
    shutil.copyfile(stage_dir / "share" / f"{PRODUCT}.svg", icon)
    _write(
        root / f"usr/share/doc/{PRODUCT}/copyright",
        "Asclepius Desk: Apache-2.0.\nThe licences of every bundled component, the system libraries' copyright\n"
        f"files included, are in /{PREFIX}/licenses/ (README.txt lists them); the SBOM ships beside the package.\n",
    )
    _write(root / CONFFILE, (HERE / "deb" / "policy.toml").read_text(encoding="utf-8"))
    spec = DebSpec(
        version=deb_version(version),
        depends=system_depends(root / PREFIX, requires),
        installed_kb=sum(p.lstat().st_size for p in root.rglob("*")) // 1024 + 1,
    )
    maintainer_scripts(root / "DEBIAN", version, requires)
    _write(root / "DEBIAN" / "control", control_text(spec))
    _write(root / "DEBIAN" / "md5sums", md5sums(root))
    return spec


def md5sums(root: Path) -> str:
    """``DEBIAN/md5sums`` (what ``dpkg --verify`` checks), conffiles excluded as dpkg expects."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("DEBIAN/") or rel == CONFFILE:
            continue
        lines.append(f"{hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()}  {rel}")
    return "\n".join(lines) + "\n"


def build_argv(root: Path, deb: Path) -> list[str]:
    """``dpkg-deb`` for a reproducible package: root:root members, gzip (deterministic for one zlib; the demo
    GGUF hardly compresses, and xz took minutes for it on two cores). gzip compresses in one thread whatever
    ``--threads-max`` says, and Debian 11's dpkg-deb (1.20, the build root's) does not know that option."""
    return ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(root), str(deb)]


def clamp_times(root: Path, epoch: int) -> None:
    """Every file, link and directory dated ``epoch`` (dpkg-deb only clamps newer ones down to it)."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def build(stage_dir: Path, out: Path, version: str, requires: Requirements, epoch: int, work: Path) -> Path:
    """``<out>/asclepius-desk_<version>_amd64.deb`` from the staged release."""
    root = work / "deb-root"
    spec = tree(stage_dir, root, version, requires)
    deb = out / f"{PRODUCT}_{spec.version}_amd64.deb"
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o022)
    clamp_times(root, epoch)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C"}
    r = subprocess.run(build_argv(root, deb), capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise DebError(f"dpkg-deb failed: {r.stderr.strip()}")
    return deb
