"""The release built in the Debian 11 root (`make installer-bullseye`), installed per user from the archive and
answering offline inside that root: glibc 2.31, no network (`unshare -n`), a fresh HOME.

Not in `make test`. Needs root (chroot), the Debian 11 root (ASCLEPIUS_BUILDROOT, made by
installer/buildroot/make_root.sh) and the release built there (ASCLEPIUS_INSTALLER_DIST, e.g.
/work/cache/bundle-bullseye); skipped without them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from installer import floor
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
BUILDROOT = Path(os.environ.get("ASCLEPIUS_BUILDROOT", "/work/cache/bullseye-root"))
DIST = os.environ.get("ASCLEPIUS_INSTALLER_DIST")


def _is_debian_11(root: Path) -> bool:
    version = root / "etc" / "debian_version"
    return version.is_file() and version.read_text().startswith("11.")


pytestmark = [
    pytest.mark.skipif(not DIST, reason="needs the release built in the root (ASCLEPIUS_INSTALLER_DIST)"),
    pytest.mark.skipif(not _is_debian_11(BUILDROOT), reason=f"needs the Debian 11 root at {BUILDROOT}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot)"),
]


def archive() -> Path:
    found = sorted(Path(DIST or "").glob("asclepius-desk-*-linux-x86_64.tar.gz"))
    assert found, f"no archive in {DIST}"
    return found[-1]


def in_root(script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """``script`` run by sh inside the root, with no network."""
    enter = ROOT / "installer" / "buildroot" / "enter.sh"
    argv = ["unshare", "-n", "--", str(enter), str(BUILDROOT), "sh", "-ec", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def box() -> Iterator[Path]:
    """A directory inside the root holding the archive and a held-out note; removed afterwards."""
    inside = BUILDROOT / "tmp" / f"asclepius-test-{os.getpid()}"
    inside.mkdir(parents=True)
    shutil.copy(archive(), inside / "release.tar.gz")
    with (SHARED_DATA / "notes" / "aci_bench_valid.csv").open(encoding="utf-8", newline="") as fh:
        (inside / "note.txt").write_text(next(csv.DictReader(fh))["note"], encoding="utf-8")
    yield inside
    shutil.rmtree(inside, ignore_errors=True)


def test_the_release_needs_glibc_231_at_most_and_says_so(tmp_path):
    subprocess.run(["tar", "-xzf", str(archive()), "-C", str(tmp_path)], check=True)
    (top,) = tmp_path.iterdir()
    requires = dict(line.split("=", 1) for line in (top / floor.REQUIRES_FILE).read_text().splitlines())
    assert floor.parse_version(requires["glibc"]) <= (2, 31), requires
    assert floor.glibc_floor(top / "asclepius-desk") == floor.parse_version(requires["glibc"])
    assert "readline" not in " ".join(p.name for p in (top / "asclepius-desk").rglob("*"))


@pytest.mark.timeout(3600)
def test_installed_per_user_and_answering_offline_in_debian_11(box):
    name = box.name
    r = in_root(
        f"""
        cd /tmp/{name}; export HOME=/tmp/{name}/home PATH=/tmp/{name}/home/.local/bin:/usr/bin:/bin
        mkdir -p "$HOME" unpacked; tar -xzf release.tar.gz -C unpacked
        getconf GNU_LIBC_VERSION
        unpacked/*/install.sh --user
        asclepius selftest
        asclepius ask "What medications is the patient taking?" --note note.txt --task qa --max-tokens 16 --json \
            > answer.json
        """
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "glibc 2.31" in r.stdout
    assert "selftest passed" in r.stdout and "no connection or DNS lookup was attempted" in r.stdout
    assert json.loads((box / "answer.json").read_text())["answer"].strip()


def deb() -> Path:
    found = sorted(Path(DIST or "").glob("asclepius-desk_*_amd64.deb"))
    assert found, f"no .deb in {DIST}"
    return found[-1]


@pytest.mark.timeout(3600)
def test_the_deb_installs_system_wide_answers_offline_and_purge_keeps_the_users_log(box):
    """As root from the .deb inside Debian 11: root-owned files, an unprivileged user's selftest and answer with
    no network, the shared demo model used in place (no per-user copy), then remove and purge: the user's log
    stays."""
    name = box.name
    shutil.copy(deb(), box / "release.deb")
    r = in_root(
        f"""
        cd /tmp/{name}; chmod 755 . ; chmod 644 note.txt
        t0=$(date +%s%N); dpkg -i release.deb; echo "dpkg -i: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
        du -sk /opt/asclepius-desk | sed 's/^/installed KiB: /'
        stat -c 'owner=%U %a %n' /opt/asclepius-desk /opt/asclepius-desk/asclepius
        test -f /etc/asclepius-desk/policy.toml
        mkdir -p syshome && chown 65534:65534 syshome
        as_user() {{ setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp/{name}/syshome "$@"; }}
        as_user asclepius selftest
        as_user asclepius ask "What medications is the patient taking?" --note note.txt --task qa --max-tokens 16 \
            --json > answer.json
        echo "user data: $(du -sk syshome | cut -f1) KiB"
        find syshome -name '*.gguf' | sed 's/^/per-user model: /'
        dpkg -r asclepius-desk
        test ! -e /usr/bin/asclepius
        dpkg -P asclepius-desk
        test ! -e /etc/asclepius-desk/policy.toml
        find syshome -name '*.db' | sed 's/^/kept: /'
        """
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    owners = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("owner=")]
    assert len(owners) == 2 and set(owners) == {"owner=root"}, r.stdout
    assert "selftest passed" in r.stdout and "no connection or DNS lookup was attempted" in r.stdout
    assert json.loads((box / "answer.json").read_text())["answer"].strip()
    assert "per-user model:" not in r.stdout, "the demo model is shared, not copied per user"
    assert "kept: " in r.stdout, "purging the package never deletes a user's log"
    print(r.stdout[-2000:])  # the figures (install time, sizes) for docs/benchmarks.md, with -s
