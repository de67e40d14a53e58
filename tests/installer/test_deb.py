"""The Debian package on a stand-in bundle: its contents, and install/upgrade/remove/purge with dpkg into a
private root (``dpkg --root`` with its own database, maintainer scripts run chrootless): the host's dpkg
database and /opt are never touched."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from installer import deb
from installer.floor import Requirements
from tests.installer.stage import stage

pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb (Debian/Ubuntu)")
FLOOR = Requirements(glibc=(2, 31), cpu_flags=("sse4_2",))
EPOCH = 1_700_000_000
CPU_OK = "processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 popcnt avx\n"
CPU_OLD = "processor\t: 0\nflags\t\t: fpu sse3 ssse3 sse4_1\n"


def build(tmp_path: Path, version: str) -> Path:
    stage_dir = stage(tmp_path, version, FLOOR)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return deb.build(stage_dir, out, version, FLOOR, EPOCH, tmp_path / f"work-{version}")


def listing(path: Path) -> list[list[str]]:
    out = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()]


class Root:
    """A private dpkg root: its own admin directory, with a stand-in libc6 of a chosen version."""

    def __init__(self, path: Path, libc: str = "2.36-9") -> None:
        self.path = path
        admin = path / "var/lib/dpkg"
        for sub in ("info", "updates", "triggers"):
            (admin / sub).mkdir(parents=True)
        (admin / "available").touch()
        (admin / "info" / "libc6:amd64.list").touch()
        (admin / "status").write_text(
            f"Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nMaintainer: t\n"
            f"Architecture: amd64\nMulti-Arch: same\nVersion: {libc}\nDescription: stand-in\n\n"
        )
        cpuinfo = path.parent / "cpuinfo-ok"  # the preinst's preflight reads this, not the test machine's CPU
        cpuinfo.write_text(CPU_OK)
        self.env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "ASCLEPIUS_INSTALL_CPUINFO": str(cpuinfo)}

    def dpkg(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        argv = ["dpkg", f"--root={self.path}", "--force-script-chrootless", "--log=/dev/null", *args]
        return subprocess.run(argv, capture_output=True, text=True, env={**self.env, **env}, timeout=120)

    def status(self) -> str:
        r = subprocess.run(["dpkg-query", f"--root={self.path}", "-W", "-f=${Status} ${Version}", deb.PRODUCT],
                           capture_output=True, text=True)  # fmt: skip
        return r.stdout.strip()


def test_the_package_holds_the_bundle_root_owned_with_commands_menu_entry_and_policy(tmp_path):
    path = build(tmp_path, "0.1.0")
    assert path.name == "asclepius-desk_0.1.0_amd64.deb"
    rows = listing(path)
    assert all(r[1] == "root/root" for r in rows), [r for r in rows if r[1] != "root/root"]
    names = {r[5].removeprefix("./"): r for r in rows}
    for name in ("opt/asclepius-desk/asclepius", "usr/bin/asclepius", "usr/bin/asclepius-desk"):
        assert names[name][0] == "-rwxr-xr-x", names[name]
    assert all("w" not in r[0][4:] for r in rows if r[0][0] != "l"), "nothing group- or other-writable"
    assert names["opt/asclepius-desk/_internal/link.so"][-1] == "lib.so"
    assert {"usr/share/applications/asclepius-desk.desktop", "usr/share/icons/hicolor/scalable/apps/asclepius-desk.svg",
            "usr/share/doc/asclepius-desk/copyright", "etc/asclepius-desk/policy.toml"} <= set(names)  # fmt: skip
    info = subprocess.run(["dpkg-deb", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Architecture: amd64" in info and "Depends: libc6 (>= 2.31)" in info
    conffiles = subprocess.run(["dpkg-deb", "-I", str(path), "conffiles"], capture_output=True, text=True).stdout
    assert conffiles.strip() == "/etc/asclepius-desk/policy.toml"


def test_install_upgrade_remove_purge_never_touch_users_data(tmp_path):
    old, new = build(tmp_path, "0.1.0"), build(tmp_path, "0.2.0rc1")
    assert new.name == "asclepius-desk_0.2.0~rc1_amd64.deb"
    root = Root(tmp_path / "root")
    log = root.path / "home/alice/.local/share/asclepius-desk/asclepius.db"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"alice's evaluation log")
    r = root.dpkg("-i", str(old))
    assert r.returncode == 0, r.stdout + r.stderr
    assert root.status() == "install ok installed 0.1.0"
    app = root.path / "opt/asclepius-desk"
    assert (app / "asclepius").read_text().startswith("#!/bin/sh") and (app / "_internal/link.so").is_symlink()
    wrapper = (root.path / "usr/bin/asclepius").read_text()
    assert wrapper == '#!/bin/sh\nexec /opt/asclepius-desk/asclepius "$@"\n'
    assert "exec /opt/asclepius-desk/asclepius gui" in (root.path / "usr/bin/asclepius-desk").read_text()
    policy = root.path / "etc/asclepius-desk/policy.toml"
    policy.write_text("# edited by IT\n")

    r = root.dpkg("-i", str(new))  # an upgrade keeps IT's edited policy (a conffile the package did not change)
    assert r.returncode == 0, r.stdout + r.stderr
    assert root.status() == "install ok installed 0.2.0~rc1" and policy.read_text() == "# edited by IT\n"

    r = root.dpkg("-r", deb.PRODUCT)
    assert r.returncode == 0, r.stderr
    assert not app.exists() and not (root.path / "usr/bin/asclepius").exists()
    assert policy.read_text() == "# edited by IT\n", "remove keeps the conffile"
    assert log.read_bytes() == b"alice's evaluation log"

    r = root.dpkg("-P", deb.PRODUCT)
    assert r.returncode == 0, r.stderr
    assert not policy.exists() and not policy.parent.exists()
    assert log.read_bytes() == b"alice's evaluation log", "purge never deletes a user's log"
    assert "Users' own evaluation logs, settings and models were kept" in r.stdout


@pytest.mark.parametrize(
    ("cpuinfo", "getconf", "words"),
    [
        (CPU_OLD, "glibc 2.36", "lacks the instruction set(s) sse4_2"),
        (CPU_OK, "glibc 2.28", "this system has glibc 2.28; Asclepius Desk 0.1.0 needs glibc 2.31 or newer"),
    ],
)
def test_preinst_refuses_a_machine_that_cannot_run_it_before_unpacking(tmp_path, cpuinfo, getconf, words):
    path = build(tmp_path, "0.1.0")
    root = Root(tmp_path / "root")
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "getconf").write_text(f"#!/bin/sh\necho '{getconf}'\n")
    (fake / "getconf").chmod(0o755)
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    r = root.dpkg("-i", str(path), PATH=f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin",
                  ASCLEPIUS_INSTALL_CPUINFO=str(tmp_path / "cpuinfo"))  # fmt: skip
    assert r.returncode != 0 and words in r.stderr, r.stderr
    assert not (root.path / "opt/asclepius-desk/asclepius").exists()


def test_preinst_refuses_to_unpack_over_an_install_sh_installation(tmp_path):
    path = build(tmp_path, "0.1.0")
    root = Root(tmp_path / "root")
    legacy = root.path / "opt/asclepius-desk"
    (legacy / "0.0.9").mkdir(parents=True)
    (legacy / "installed-files.txt").write_text(f"{legacy}/0.0.9\n")
    r = root.dpkg("-i", str(path))
    assert r.returncode != 0 and "sudo /opt/asclepius-desk/uninstall.sh" in r.stderr, r.stderr
    assert sorted(p.name for p in legacy.iterdir()) == ["0.0.9", "installed-files.txt"]


def test_only_listed_files_are_packaged_and_each_is_checked(tmp_path):
    stage_dir = stage(tmp_path, "0.1.0", FLOOR)
    lib = stage_dir / "asclepius-desk/_internal/llama_cpp/lib"
    lib.mkdir(parents=True)
    (lib / "libggml-cpu-evil.so").write_bytes(b"dropped in after the manifest was written")
    path = deb.build(stage_dir, tmp_path, "0.1.0", FLOOR, EPOCH, tmp_path / "w")
    assert not any("evil" in r[5] for r in listing(path))
    with (stage_dir / "asclepius-desk/asclepius").open("a") as f:
        f.write("# changed\n")
    with pytest.raises(deb.DebError, match=r"asclepius does not match MANIFEST\.sha256"):
        deb.build(stage_dir, tmp_path, "0.1.0", FLOOR, EPOCH, tmp_path / "w")


def test_the_packaged_uninstall_script_leaves_the_program_to_apt_and_purges_only_user_data(tmp_path):
    root = Root(tmp_path / "root")
    assert root.dpkg("-i", str(build(tmp_path, "0.1.0"))).returncode == 0
    home = tmp_path / "home"
    data = home / ".local/share/asclepius-desk"
    data.mkdir(parents=True)
    script = root.path / "opt/asclepius-desk/uninstall.sh"
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(script)], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "sudo apt remove asclepius-desk" in r.stderr
    assert (root.path / "opt/asclepius-desk/asclepius").exists()
    r = subprocess.run([str(script), "--purge-user-data", "--keep-program"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and not data.exists(), r.stderr
    mode = stat.S_IMODE((root.path / "opt/asclepius-desk").stat().st_mode)
    assert mode == 0o755
