"""The built release, end to end, as IT staff would use it (`make installer-test`; not in `make test`: it
needs the archive that `make installer` builds in ~25 min, root for `unshare`, Xvfb and qemu-user).

Everything runs inside `unshare -n` (a network namespace with no interface but a down loopback), with a
fresh HOME and `env -i` (PATH=/usr/bin:/bin: no venv), under `strace -f -e trace=network`, which must show
no AF_INET/AF_INET6 socket. Set ASCLEPIUS_INSTALLER_DIST to the directory holding the archive.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from installer import floor, licenses, native, package, sbom
from tests.conftest import SHARED_DATA

DIST = os.environ.get("ASCLEPIUS_INSTALLER_DIST")
pytestmark = pytest.mark.skipif(
    not DIST, reason="needs the built release: run `make installer-test` (sets ASCLEPIUS_INSTALLER_DIST)"
)
QUESTION = "What medications is the patient taking?"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not installed (apt-get install xvfb xdotool strace qemu-user util-linux)")
    return path


def expected_variant(flags: set[str]) -> str:
    """The ggml CPU variant of our build (sse42 haswell skylakex zen4) that fits these /proc/cpuinfo flags."""
    if {"avx512f", "avx512vbmi", "avx512_vnni", "avx512_bf16"} <= flags:
        return "zen4"
    if "avx512f" in flags:
        return "skylakex"
    if {"avx2", "fma", "f16c", "bmi2"} <= flags:
        return "haswell"
    return "sse42"


def cpu_flags() -> set[str]:
    return floor.cpuinfo_flags(Path("/proc/cpuinfo").read_text())


class Sandbox:
    """Runs commands in a fresh home, with no network, no venv, and a record of network syscalls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True)
        self.traces: list[Path] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {"HOME": str(self.home), "PATH": f"{self.home}/.local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        env.update(extra)
        return env

    def run(self, argv: list[str], *, timeout: float = 300, trace: bool = True, **extra: str):
        log = self.root / f"strace-{len(self.traces)}.log"
        cmd = [_tool("unshare"), "-n", "--", "env", "-i", *[f"{k}={v}" for k, v in self.env(**extra).items()]]
        if trace:
            self.traces.append(log)
            cmd += [_tool("strace"), "-f", "-qq", "-e", "trace=network", "-o", str(log)]
        return subprocess.run(cmd + argv, capture_output=True, text=True, timeout=timeout, cwd=self.home)

    def inet_sockets(self) -> list[str]:
        bad = []
        for log in self.traces:
            if log.exists():
                bad += [ln for ln in log.read_text().splitlines() if re.search(r"socket\(AF_INET6?\b", ln)]
        return bad


@pytest.fixture(scope="module")
def release() -> dict[str, Path]:
    dist = Path(DIST or "")
    archives = sorted(dist.glob("asclepius-desk-*-linux-x86_64.tar.gz"))
    assert archives, f"no archive in {dist}: run `make installer`"
    archive = archives[-1]
    version = archive.name.removeprefix("asclepius-desk-").removesuffix("-linux-x86_64.tar.gz")
    return {"dist": dist, "archive": archive, "version": Path(version)}


@pytest.fixture(scope="module")
def unpacked(release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unpacked")
    subprocess.run(["tar", "-xzf", str(release["archive"]), "-C", str(out)], check=True)
    (top,) = out.iterdir()
    return top


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("sandbox"))


@pytest.fixture(scope="module")
def installed(box, unpacked) -> Path:
    r = box.run([str(unpacked / "install.sh"), "--user"], timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return box.home / ".local/opt/asclepius-desk"


def test_strace_sees_an_inet_socket_when_one_is_made(tmp_path):
    # Positive control for every "no AF_INET socket" assertion below.
    control = Sandbox(tmp_path)
    control.run(["/usr/bin/python3", "-c", "import socket; socket.socket(socket.AF_INET)"])
    assert control.inet_sockets(), "strace did not record a socket the control made"


def test_checksums_pass_and_one_changed_byte_fails(release, tmp_path):
    dist = release["dist"]
    ok = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    listed = (dist / "SHA256SUMS").read_text().splitlines()
    assert ok.stdout.count(": OK") == len(listed) >= 5  # archive, .deb, SBOM, licences, VERIFY.md (+ public key)
    assert any(line.endswith("_amd64.deb") for line in listed)
    copy = tmp_path / "usb"
    shutil.copytree(dist, copy, ignore=shutil.ignore_patterns("wheelhouse"))
    tampered = copy / release["archive"].name
    with tampered.open("r+b") as f:
        f.seek(tampered.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x01]))
    bad = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=copy, capture_output=True, text=True)
    assert bad.returncode != 0
    assert f"{tampered.name}: FAILED" in bad.stdout


def test_release_files_sbom_and_no_torch(release, unpacked):
    dist = release["dist"]
    doc = json.loads(next(dist.glob("asclepius-desk-*.cdx.json")).read_text())
    comps = {sbom.normalise(c["name"]): c for c in doc["components"]}
    llama = {p["name"]: p["value"] for p in comps["llama-cpp"]["properties"]}
    cmake_args = llama["asclepius:cmake-args"].split()
    assert "-DGGML_NATIVE=OFF" in cmake_args and "-DGGML_BACKEND_DL=ON" in cmake_args
    assert {"pyside6-essentials", "llama-cpp-python", "sqlalchemy"} <= set(comps)
    assert "torch" not in comps and "transformers" not in comps
    libs = unpacked / "asclepius-desk" / "_internal" / "llama_cpp" / "lib"
    assert set(llama["asclepius:cpu-variants"].split()) == {
        m.group(1) for p in libs.iterdir() if (m := re.match(r"libggml-cpu-(\w+)\.so$", p.name))
    }
    assert package.forbidden_files(unpacked / "asclepius-desk") == []
    licences = (dist / "THIRD-PARTY-LICENSES.txt").read_text()
    assert "llama.cpp" in licences and "PySide6" in licences and "GNU LESSER GENERAL PUBLIC LICENSE" in licences
    assert "sha256sum -c SHA256SUMS" in (dist / "VERIFY.md").read_text()
    # Every component hashed; every bundled native library in the SBOM; no GPL-only code (issue #25).
    bundle = unpacked / "asclepius-desk"
    assert [c["name"] for c in doc["components"] if not c.get("hashes") and c["name"] != "llama.cpp"] == []
    paths = {p["value"] for c in doc["components"] for p in c.get("properties", []) if p["name"] == "asclepius:path"}
    assert {lib.relative_to(bundle).as_posix() for lib in native.shared_libraries(bundle)} <= paths
    assert any(c.get("purl", "").startswith("pkg:deb/debian/") for c in doc["components"])
    assert licenses.never_bundled(bundle) == []
    assert (bundle / "licenses" / "README.txt").is_file() and list((bundle / "licenses" / "system").iterdir())
    assert list((bundle / "share" / "models").glob("*.gguf")), "the demo model ships joined, once"


def test_selftest_offline_with_the_fastest_cpu_variant(box, installed):
    r = box.run(["asclepius", "selftest"], timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "selftest passed" in r.stdout
    assert f"llama.cpp CPU backend: {expected_variant(cpu_flags())} (portable build" in r.stdout, r.stdout
    assert "no connection or DNS lookup was attempted" in r.stdout
    from tests.integration.netns_probe import kernel_allows_netns

    if kernel_allows_netns():  # the frozen program enters its namespace as `python -m app` does (issue #25)
        assert "network protection: network namespace + audit hook" in r.stdout, r.stdout
    assert str(box.home / ".local/share/asclepius-desk") in r.stdout, "same data location as the installed app"
    assert box.inet_sockets() == []


def _note_from_shared_data() -> str:
    with (SHARED_DATA / "notes" / "aci_bench_valid.csv").open(encoding="utf-8", newline="") as fh:
        return next(csv.DictReader(fh))["note"]


def test_ask_about_a_shared_note_and_find_the_run_in_the_log(box, installed):
    note = box.home / "note.txt"
    note.write_text(_note_from_shared_data(), encoding="utf-8")
    r = box.run(["asclepius", "ask", QUESTION, "--note", str(note), "--task", "qa", "--max-tokens", "24", "--json"])
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)["answer"]
    r = box.run(["asclepius", "log", "export", "--format", "jsonl"])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    mine = [row for row in rows if row["instruction"] == QUESTION]
    assert len(mine) == 1 and mine[0]["answer"] == answer and mine[0]["status"] == "finished", mine
    assert (box.home / ".local/share/asclepius-desk/asclepius.db").stat().st_mode & 0o777 == 0o600
    assert box.inet_sockets() == []


def test_gui_starts_under_a_real_x_server(box, installed):
    script = box.root / "gui.sh"
    script.write_text(
        "Xvfb :77 -nolisten tcp -screen 0 1280x800x24 >/dev/null 2>&1 & X=$!\n"
        "for i in $(seq 50); do [ -S /tmp/.X11-unix/X77 ] && break; sleep 0.1; done\n"
        f"strace -f -qq -e trace=network -o {box.root}/strace-gui.log asclepius gui >{box.root}/gui.out 2>&1 & G=$!\n"
        "found=''; for i in $(seq 150); do\n"
        "  found=$(xdotool search --name 'Asclepius Desk' 2>/dev/null | head -n1); [ -n \"$found\" ] && break\n"
        "  kill -0 $G 2>/dev/null || break; sleep 0.2; done\n"
        'echo "window=$found"; sleep 3; kill -0 $G && echo alive-after-3s\n'
        # SIGTERM to the app itself (strace, its parent, would only detach and leave it running)
        "APP=$(pgrep -P $G); kill -TERM $APP; sleep 1; kill -KILL $APP 2>/dev/null; wait $G; kill $X\n"
    )
    r = box.run(["/bin/bash", str(script)], trace=False, DISPLAY=":77", timeout=180)
    box.traces.append(box.root / "strace-gui.log")
    out = (box.root / "gui.out").read_text()
    assert re.search(r"window=\d+", r.stdout), r.stdout + r.stderr + out
    assert "alive-after-3s" in r.stdout, out
    assert "Traceback" not in out and "Could not load the Qt platform plugin" not in out, out
    assert box.inet_sockets() == []


def test_gui_without_display_is_a_clear_error(box, installed):
    r = box.run(["asclepius", "gui"], trace=False)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("asclepius: error: no display"), r.stderr
    r = box.run(["asclepius", "gui"], trace=False, DISPLAY=":93")  # no X server there: Qt would abort
    assert r.returncode == 1
    assert r.stderr.strip() == "asclepius: error: cannot connect to the X display :93 (is the desktop session running?)"


def _older_copy(unpacked: Path, dest: Path, version: str) -> Path:
    """The same release relabelled as an older version (VERSION and its MANIFEST line updated)."""
    shutil.copytree(unpacked, dest, symlinks=True)
    (dest / "VERSION").write_text(version + "\n")
    lines = package.manifest_lines(dest)
    (dest / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")
    return dest


def test_installing_over_an_older_version_keeps_the_log(unpacked, tmp_path):
    upg = Sandbox(tmp_path / "upgrade")
    old = _older_copy(unpacked, tmp_path / "old", "0.0.1")
    assert upg.run([str(old / "install.sh"), "--user"], timeout=600).returncode == 0
    note = upg.home / "note.txt"
    note.write_text(_note_from_shared_data(), encoding="utf-8")
    r = upg.run(["asclepius", "ask", QUESTION, "--note", str(note), "--task", "qa", "--max-tokens", "8"])
    assert r.returncode == 0, r.stderr
    r = upg.run([str(unpacked / "install.sh"), "--user"], timeout=600)
    assert r.returncode == 0, r.stderr
    prefix = upg.home / ".local/opt/asclepius-desk"
    assert os.readlink(prefix / "current") == (unpacked / "VERSION").read_text().strip()
    assert not (prefix / "0.0.1").exists()
    r = upg.run(["asclepius", "log", "export", "--format", "jsonl"])
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["instruction"] for x in r.stdout.splitlines() if x.strip()] == [QUESTION]


def test_read_only_and_full_locations_fail_cleanly(unpacked, tmp_path):
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    script = (
        f"mount -t tmpfs -o ro,size=64m tmpfs {ro} && mount -t tmpfs -o size=4m tmpfs {full} || exit 99\n"
        f"{unpacked}/install.sh --user --prefix {ro}/opt --bin-dir {ro}/bin; echo ro-exit=$?\n"
        f"{unpacked}/install.sh --user --prefix {full}/opt --bin-dir {full}/bin; echo full-exit=$?\n"
        f"ls -A {full}/opt 2>/dev/null | wc -l | sed 's/^/full-left=/'\n"
    )
    r = subprocess.run(
        [_tool("unshare"), "-m", "-n", "--", "/bin/bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
    )
    assert "ro-exit=4" in r.stdout, r.stdout + r.stderr
    assert f"cannot write to {ro}" in r.stderr
    assert "full-exit=4" in r.stdout and "not enough free space" in r.stderr, r.stdout + r.stderr
    assert "full-left=0" in r.stdout


QEMU_PROBE = """
import json, sys
from app.core.llama_backends import ensure_cpu_backend
backend = ensure_cpu_backend()
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, n_threads_batch=1, verbose=False, seed=0)
out = llm.create_completion("the patient", max_tokens=8, temperature=0.0)
print(json.dumps({"backend": backend.describe(), "lib": llama_cpp.llama_cpp._base_path.as_posix(),
                  "tokens": out["usage"]["completion_tokens"]}))
"""


def _qemu_probe(cpu: str, lib_dir: Path | None, gguf: Path) -> subprocess.CompletedProcess[str]:
    # The installed bundle's llama.cpp libraries, loaded through LLAMA_CPP_LIB_PATH by the dev venv's
    # interpreter (same llama-cpp-python 0.3.36 bindings), all emulated by qemu-user with that CPU model.
    # (The frozen program itself, kept in emulation, is run by test_emulated.py.)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    if lib_dir is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib_dir)
    python = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python")
    argv = [_tool("qemu-x86_64"), "-cpu", cpu, python, "-c", QEMU_PROBE, str(gguf)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("cpu", "variant"), [("Haswell", "haswell"), ("Nehalem", "sse42")])
def test_bundled_llama_runs_on_older_cpus_under_qemu(installed, tiny_llama_gguf, cpu, variant):
    lib_dir = (installed / "current").resolve() / "_internal" / "llama_cpp" / "lib"
    start = time.monotonic()
    r = _qemu_probe(cpu, lib_dir, tiny_llama_gguf)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr[-2000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["backend"].startswith(f"llama.cpp CPU backend: {variant} (portable build"), out
    assert out["lib"] == lib_dir.as_posix() and out["tokens"] >= 1
    print(f"qemu -cpu {cpu}: {variant}, {out['tokens']} tokens in {time.monotonic() - start:.0f} s")


@pytest.mark.timeout(900)
def test_a_native_build_dies_under_qemu_haswell(tiny_llama_gguf):
    # Positive control: the dev venv's llama.cpp, compiled for this CPU (AVX-512), is killed by SIGILL on
    # an emulated Haswell: qemu really withholds the newer instructions the portable build must avoid.
    if "avx512f" not in cpu_flags():
        pytest.skip("this machine has no AVX-512: a native build would run on Haswell too")
    r = _qemu_probe("Haswell", None, tiny_llama_gguf)
    assert r.returncode in (-4, 132), f"expected SIGILL, got {r.returncode}: {r.stderr[-500:]}"


def test_uninstall_keeps_the_log_and_models(box, installed):
    db = box.home / ".local/share/asclepius-desk/asclepius.db"
    assert db.exists()
    before = db.stat().st_size
    r = box.run([str(installed / "uninstall.sh")])
    assert r.returncode == 0, r.stderr
    assert not installed.exists() and not (box.home / ".local/bin/asclepius").exists()
    assert not (box.home / ".local/share/applications/asclepius-desk.desktop").exists()
    assert db.exists() and db.stat().st_size == before
    # The demo model was used from the installation in place: no per-user copy was made (issue #25).
    assert not list((box.home / ".local/share/asclepius-desk").rglob("*.gguf"))


def test_the_deb_installs_and_every_user_answers_from_the_one_shared_model(release, tmp_path):
    from tests.installer.test_deb import Root

    (pkg,) = release["dist"].glob("asclepius-desk_*_amd64.deb")
    root = Root(tmp_path / "root")
    start = time.monotonic()
    r = root.dpkg("-i", str(pkg))
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"dpkg -i {pkg.name}: {time.monotonic() - start:.1f} s")
    app = root.path / "opt/asclepius-desk"
    for user in ("alice", "bob"):
        box = Sandbox(tmp_path / user)
        out = box.run([str(app / "asclepius"), "selftest"], timeout=600)
        assert out.returncode == 0 and "selftest passed" in out.stdout, out.stdout + out.stderr
        data = box.home / ".local/share/asclepius-desk"
        assert not list(data.rglob("*.gguf")), "no per-user copy of the demo model"
        print(f"{user}: {sum(p.lstat().st_size for p in data.rglob('*')) / 1024:.0f} KiB of own data")
        assert box.inet_sockets() == []
