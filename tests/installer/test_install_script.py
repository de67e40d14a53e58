"""install.sh and uninstall.sh on a stand-in bundle: ownership of a system-wide install, prefixes shared with
other software, the preflight (glibc, CPU), the per-user purge, and the build-time floor they read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from installer import floor
from tests.installer.stage import env, stage

APP = "asclepius-desk"
OTHER_UID = 12345  # the user who unpacked the archive (no such account is needed: ownership is a number)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a system-wide install and chown")


def sh(argv: list[str | Path], run_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], env=run_env, capture_output=True, text=True, timeout=120)


def tree(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


# -- a system-wide install belongs to root ------------------------------------------------------------------
@as_root
def test_a_system_install_is_owned_by_root_and_not_writable_by_the_unpacking_user(tmp_path):
    unpacked = stage(tmp_path, "0.1.0")
    for path in tree(unpacked):  # unpacked as an ordinary user, with careless modes and a set-uid bit
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
        if not path.is_symlink():
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o022)
    (unpacked / APP / "asclepius").chmod(0o4777)
    prefix = tmp_path / "sys"
    # An installation left by the old install.sh (cp -a): owned by that user, `current` pointing into it.
    legacy = prefix / "opt" / APP / "0.0.9"
    legacy.mkdir(parents=True)
    (legacy / "asclepius").write_text("old")
    (prefix / "opt" / APP / "current").symlink_to("0.0.9")
    for path in tree(prefix / "opt" / APP):
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)

    r = sh([unpacked / "install.sh", "--system", "--prefix", prefix], env(tmp_path))
    assert r.returncode == 0, r.stderr
    app_dir = prefix / "opt" / APP
    assert not legacy.exists() and os.readlink(app_dir / "current") == "0.1.0"
    launcher = prefix / "bin" / "asclepius"
    for path in [*tree(app_dir), launcher, prefix / "share/applications" / f"{APP}.desktop"]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (0, 0), f"{path} is owned by {st.st_uid}:{st.st_gid}"
        if not path.is_symlink():
            mode = stat.S_IMODE(st.st_mode)
            assert not mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID), f"{path}: {oct(mode)}"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o755
    assert stat.S_IMODE((app_dir / "0.1.0" / "asclepius").stat().st_mode) == 0o755
    assert sh([launcher, "selftest"], env(tmp_path)).stdout.strip() == "stand-in selftest"


def test_a_copy_changed_after_the_check_is_refused(tmp_path):
    # The copy is checked again: the unpacked tree may belong to someone who changes it mid-install.
    unpacked = stage(tmp_path, "0.1.0")
    home = tmp_path / "home"
    home.mkdir()
    fake = tmp_path / "fakebin"
    fake.mkdir()
    real_cp = "/bin/cp" if Path("/bin/cp").exists() else "/usr/bin/cp"
    # cp as install.sh calls it, then one byte more in the copied program (the last argument is the target)
    tamper = 'for d; do :; done; [ -f "$d/asclepius" ] && echo x >> "$d/asclepius"'
    (fake / "cp").write_text(f'#!/bin/sh\n{real_cp} "$@" && {tamper}\nexit 0\n')
    (fake / "cp").chmod(0o755)
    r = sh([unpacked / "install.sh", "--user"], env(home, PATH=f"{fake}:/usr/bin:/bin"))
    assert r.returncode == 3 and "does not match MANIFEST.sha256" in r.stderr, r.stderr
    assert not (home / ".local/opt").exists() and not (home / ".local/bin").exists()


# -- a prefix shared with other software ----------------------------------------------------------------------
@pytest.mark.parametrize("where", [".local", "usr/local"])
def test_install_upgrade_uninstall_never_delete_a_shared_directory(tmp_path, where):
    home = tmp_path / "home"
    prefix = home / where if where == ".local" else tmp_path / where
    others = {
        "bin/other-tool": "#!/bin/sh\n",
        "share/applications/other.desktop": "[Desktop Entry]\n",
        "opt/other-app/asclepius": "#!/bin/sh\n",  # another program's directory with a file of our name
        "lib/python3/site.py": "",
    }
    for rel, text in others.items():
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).write_text(text)
        (prefix / rel).chmod(0o755)
    run_env = env(home)
    for version in ("0.0.9", "0.1.0"):  # an install, then an upgrade over it
        r = sh([stage(tmp_path, version) / "install.sh", "--user", "--prefix", prefix], run_env)
        assert r.returncode == 0, r.stderr
        assert all((prefix / rel).read_text() == text for rel, text in others.items()), version
    app_dir = prefix / "opt" / APP
    assert sorted(p.name for p in app_dir.iterdir()) == ["0.1.0", "current", "installed-files.txt", "uninstall.sh"]
    assert sh([prefix / "bin/asclepius", "tasks"], run_env).stdout.strip() == "stand-in tasks"
    assert (prefix / "share/applications" / f"{APP}.desktop").is_file()
    r = sh([app_dir / "uninstall.sh"], run_env)
    assert r.returncode == 0, r.stderr
    assert not app_dir.exists() and not (prefix / "bin/asclepius").exists()
    assert not (prefix / "share/applications" / f"{APP}.desktop").exists()
    assert all((prefix / rel).read_text() == text for rel, text in others.items())


def test_a_failed_install_leaves_no_directory_it_created(tmp_path):
    unpacked = stage(tmp_path, "0.1.0")
    (unpacked / APP / "asclepius").write_text("changed")  # fails its checksum after the preflight
    prefix = tmp_path / "p"
    r = sh([unpacked / "install.sh", "--user", "--prefix", prefix], env(tmp_path))
    assert r.returncode == 3 and not prefix.exists()


# -- preflight: glibc and CPU, before anything is copied ----------------------------------------------------
FLOOR = floor.Requirements(glibc=(2, 31), cpu_flags=("sse4_2",))
CPU_OK = "processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 popcnt avx\n"
CPU_OLD = "processor\t: 0\nflags\t\t: fpu sse3 ssse3 sse4_1\n"


def machine(tmp_path: Path, getconf: str | None, ldd: str | None, cpuinfo: str) -> dict[str, str]:
    """An environment whose getconf/ldd print the given lines (None: the tool fails) and whose CPU has these
    flags."""
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    for tool, line in (("getconf", getconf), ("ldd", ldd)):
        body = f"echo '{line}'" if line is not None else "exit 1"
        (fake / tool).write_text(f"#!/bin/sh\n{body}\n")
        (fake / tool).chmod(0o755)
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return env(home, PATH=f"{fake}:/usr/bin:/bin", ASCLEPIUS_INSTALL_CPUINFO=str(tmp_path / "cpuinfo"))


@pytest.mark.parametrize(
    ("getconf", "ldd", "cpuinfo", "code", "words"),
    [
        ("glibc 2.28", None, CPU_OK, 5, ["glibc 2.28", "needs glibc 2.31 or newer"]),  # Debian 10
        (None, "ldd (Debian GLIBC 2.24-11) 2.24", CPU_OK, 5, ["glibc 2.24", "2.31"]),  # getconf missing
        (None, None, CPU_OK, 5, ["cannot tell this system's glibc version"]),
        ("glibc 2.36", None, CPU_OLD, 5, ["lacks the instruction set(s) sse4_2", "needs: sse4_2"]),
        ("glibc 2.31", None, CPU_OK, 0, ["installed Asclepius Desk 0.1.0"]),
        (None, "ldd (GNU libc) 2.39", CPU_OK, 0, ["installed Asclepius Desk 0.1.0"]),
    ],
)
def test_preflight_refuses_an_old_glibc_or_cpu_with_the_numbers(tmp_path, getconf, ldd, cpuinfo, code, words):
    unpacked = stage(tmp_path, "0.1.0", FLOOR)
    run_env = machine(tmp_path, getconf, ldd, cpuinfo)
    r = sh([unpacked / "install.sh", "--user"], run_env)
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert all(w in out for w in words), out
    installed = Path(run_env["HOME"]) / ".local/opt" / APP
    assert installed.exists() == (code == 0)
    if code:
        assert "Nothing was installed" in r.stderr and "checking the archive" not in r.stdout


def test_the_release_records_the_floor_install_sh_reads(tmp_path):
    unpacked = stage(tmp_path, "0.1.0", FLOOR)
    assert (unpacked / floor.REQUIRES_FILE).read_text() == "glibc=2.31\ncpu_flags=sse4_2\n"
    assert f"./{floor.REQUIRES_FILE}" in (unpacked / "MANIFEST.sha256").read_text()


def test_the_glibc_floor_is_the_newest_version_an_elf_file_names(tmp_path):
    (tmp_path / "a.so").write_bytes(b"\x7fELF" + b"\0GLIBC_2.2.5\0GLIBC_2.17\0GLIBC_PRIVATE\0")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.so").write_bytes(b"\x7fELF" + b"\0GLIBC_2.34\0GLIBC_2.4\0")
    (tmp_path / "notes.txt").write_bytes(b"GLIBC_2.99\0")  # not an ELF file: not a requirement
    (tmp_path / "link.so").symlink_to("sub/b.so")
    assert floor.glibc_floor(tmp_path) == (2, 34)
    assert floor.glibc_floor(tmp_path / "sub") == (2, 34)
    (tmp_path / "sub" / "b.so").unlink()
    assert floor.glibc_floor(tmp_path) == (2, 17)
    # A real binary names the versions it needs from the system's glibc.
    real = tmp_path / "real"
    real.mkdir()
    (real / "python").write_bytes(Path(sys.executable).resolve().read_bytes())
    found = floor.glibc_floor(real)
    if found is None:
        pytest.skip("this interpreter is not linked against glibc")
    assert (2, 2) <= found <= tuple(int(x) for x in os.confstr("CS_GNU_LIBC_VERSION").split()[1].split("."))


def test_cpu_flags_come_from_the_lowest_variant_built_and_an_unknown_one_is_refused():
    # the default build; Qt adds POPCNT (its abort under `qemu-x86_64 -cpu Nehalem,-popcnt` names it)
    assert floor.cpu_flags_for(["sse42", "haswell", "skylakex", "zen4"]) == ("sse4_2", "popcnt")
    assert floor.cpu_flags_for(["zen4", "haswell"]) == ("sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2")
    with pytest.raises(ValueError, match="sapphirerapids"):
        floor.cpu_flags_for(["sse42", "sapphirerapids"])


# -- uninstall: what it leaves, and the explicit per-user purge ------------------------------------------------
def installed_for(home: Path, tmp_path: Path, **extra: str) -> tuple[Path, dict[str, str]]:
    run_env = env(home, **extra)
    r = sh([stage(tmp_path, "0.1.0") / "install.sh", "--user"], run_env)
    assert r.returncode == 0, r.stderr
    return home / ".local/opt" / APP, run_env


def user_data(home: Path) -> list[Path]:
    data, config = home / ".local/share" / APP, home / ".config" / APP
    (data / "kvstate").mkdir(parents=True)
    (data / "asclepius.db").write_bytes(b"the evaluation log")
    (data / "kvstate" / "note.kv").write_bytes(b"a note's tokens")
    config.mkdir(parents=True)
    (config / "config.json").write_text("{}")
    return [data, config]


def test_uninstall_keeps_user_data_unless_purged_and_the_purge_takes_only_this_users(tmp_path):
    home = tmp_path / "home"
    app_dir, run_env = installed_for(home, tmp_path)
    dirs = user_data(home)
    assert sh([app_dir / "uninstall.sh", "--keep-program"], run_env).returncode == 2  # nothing to do
    r = sh([app_dir / "uninstall.sh", "--purge-user-data", "--keep-program"], run_env)
    assert r.returncode == 0, r.stderr
    assert not any(d.exists() for d in dirs)
    assert (app_dir / "current").exists() and (home / ".local/bin/asclepius").exists()
    assert all(f"Removed: {d}" in r.stdout for d in dirs)

    dirs = user_data(home)
    r = sh([app_dir / "uninstall.sh"], run_env)
    assert r.returncode == 0 and all(d.exists() for d in dirs) and not app_dir.exists()
    assert "--purge-user-data removes them" in r.stdout
    app_dir, run_env = installed_for(home, tmp_path)
    r = sh([app_dir / "uninstall.sh", "--purge-user-data"], run_env)
    assert r.returncode == 0, r.stderr
    assert not app_dir.exists() and not any(d.exists() for d in dirs)
    assert (home / ".local/share").is_dir(), "only the app's own directories go"


@as_root
def test_the_purge_never_removes_another_users_data(tmp_path):
    # As `sudo` with the user's HOME kept: the data found belongs to that user, not to root, and stays.
    home = tmp_path / "home"
    app_dir, run_env = installed_for(home, tmp_path)
    dirs = user_data(home)
    for d in dirs:
        os.chown(d, OTHER_UID, OTHER_UID)
    r = sh([app_dir / "uninstall.sh", "--purge-user-data", "--keep-program"], {**run_env, "SUDO_USER": "alice"})
    assert r.returncode == 1 and all(d.exists() for d in dirs)
    assert f"belongs to uid {OTHER_UID}, not to you (uid 0)" in r.stderr and "not alice's" in r.stdout


@pytest.mark.parametrize(
    "extra",
    [{}, {"XDG_DATA_HOME": "xdg/data", "XDG_CONFIG_HOME": "xdg/config"}, {"ASCLEPIUS_HOME": "portable"}],
    ids=["default", "xdg", "asclepius-home"],
)
def test_the_purge_and_the_app_agree_on_where_user_data_lives(tmp_path, extra):
    # uninstall.sh writes the app's location rule (app.core.config.Paths.default) again in shell: this pins
    # the two together.
    home = tmp_path / "home"
    extra = {k: str(tmp_path / v) for k, v in extra.items()}
    app_dir, run_env = installed_for(home, tmp_path, **extra)
    code = "from app.core.config import Paths; p = Paths.default(); print(p.data_dir); print(p.config_dir)"
    r = sh([sys.executable, "-c", code], {**run_env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    dirs = [Path(line) for line in r.stdout.splitlines()]
    assert len(dirs) == 2, r.stderr
    for d in dirs:
        d.mkdir(parents=True)
    r = sh([app_dir / "uninstall.sh", "--purge-user-data", "--keep-program"], run_env)
    assert r.returncode == 0, r.stderr
    assert not any(d.exists() for d in dirs), r.stdout
