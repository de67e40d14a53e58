"""Fast checks of the installer's parts (part of the default suite; the built archive is tested by
tests/installer/test_bundle.py under `make installer-test`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.core import llama_backends
from installer import frozen_entry, package, sbom, wheelhouse
from tests.installer.stage import env, stage

ROOT = Path(__file__).resolve().parents[2]


# -- which llama.cpp CPU backend runs ---------------------------------------------------------------------
MAPS = """\
7f00-7f01 r-xp 00000000 08:01 1 /opt/a/_internal/llama_cpp/lib/libggml-base.so
7f02-7f03 r-xp 00000000 08:01 2 /opt/a/_internal/llama_cpp/lib/libggml-cpu-haswell.so
7f04-7f05 r--p 00000000 00:00 0 [heap]
"""


def test_maps_parser_finds_the_variant_or_the_builtin_library():
    assert llama_backends._mapped_cpu_library(MAPS) == (
        "variant",
        "/opt/a/_internal/llama_cpp/lib/libggml-cpu-haswell.so",
    )
    lib = "/v/site-packages/llama_cpp/lib/libggml-cpu.so.0"
    assert llama_backends._mapped_cpu_library(f"7f-80 r-xp 0 08:01 3 {lib}\n") == ("built-in", lib)
    assert llama_backends._mapped_cpu_library(MAPS.replace("cpu-haswell", "base2")) is None


def test_variant_names_lists_only_cpu_variants(tmp_path):
    for name in ("libggml-cpu-zen4.so", "libggml-cpu-sse42.so", "libggml-base.so", "libggml-cpu.so.0", "libllama.so"):
        (tmp_path / name).write_bytes(b"")
    assert llama_backends.variant_names(tmp_path) == ("sse42", "zen4")
    assert llama_backends.variant_names(tmp_path / "missing") == ()


def test_native_build_reports_its_builtin_backend_after_loading_a_model(demo_engine):
    # The shared dev venv has llama-cpp-python built natively: one libggml-cpu.so, mapped once a model loads.
    backend = llama_backends.ensure_cpu_backend()
    assert backend.kind == "built-in", backend
    assert backend.path and os.path.exists(backend.path)
    assert "built-in" in backend.describe()


# -- frozen-specific errors are one clear line --------------------------------------------------------------
def _qt_tree(root: Path, plugin: bytes | None) -> Path:
    platforms = root / "PySide6" / "Qt" / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    if plugin is not None:
        (platforms / "libqxcb.so").write_bytes(plugin)
    return root


def test_gui_check_names_the_missing_display_plugin_or_library(tmp_path):
    ok_tree = _qt_tree(tmp_path / "a", None)
    assert "no display" in (frozen_entry.check_gui_platform({}, ok_tree) or "")
    missing = frozen_entry.check_gui_platform({"DISPLAY": ":9"}, ok_tree)
    assert missing and "libqxcb.so is missing" in missing
    broken = _qt_tree(tmp_path / "b", b"not an ELF file")
    problem = frozen_entry.check_gui_platform({"DISPLAY": ":9"}, broken)
    assert problem and "system library" in problem and "libqxcb.so" in problem
    # A loadable plugin passes the library check; then the X server itself must answer (none on :9).
    good = _qt_tree(tmp_path / "c", None)
    libc = "/lib/x86_64-linux-gnu/libc.so.6"
    if not os.path.exists(libc):
        pytest.skip("no glibc at the Debian path")
    shutil.copy(libc, good / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so")
    no_server = frozen_entry.check_gui_platform({"DISPLAY": ":9"}, good)
    assert no_server == "cannot connect to the X display :9 (is the desktop session running?)"
    assert frozen_entry.check_gui_platform({"QT_QPA_PLATFORM": "offscreen"}, ok_tree) is None


# -- the frozen entry is the program: it enters the network namespace --------------------------------------------
FROZEN_PROBE = """
import sys
sys.argv = ["asclepius", "tasks"]
from installer import frozen_entry
from app.core import netns
code = frozen_entry.main()
print(netns.protection().label)
sys.exit(code)
"""


def test_the_frozen_entry_enters_the_network_namespace():
    # The frozen entry passes argv explicitly; isolation used to follow `argv is None` only, so the installed
    # program ran with the audit hook alone and selftest passed saying so.
    from tests.integration.netns_probe import kernel_allows_netns

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ASCLEPIUS_NETNS", None)
    r = subprocess.run([sys.executable, "-c", FROZEN_PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    label = r.stdout.strip().splitlines()[-1]
    if kernel_allows_netns():
        assert label == "network namespace + audit hook", label
    else:  # the fallback where the kernel refuses: the reason is the kernel's, not the entry's
        assert label.startswith("audit hook only (") and "argv" not in label, label


def test_a_frozen_process_is_the_program_whatever_argv_it_passes(monkeypatch):
    from app.cli.main import is_the_program

    assert is_the_program(None, None) and not is_the_program(["tasks"], None)  # pytest's own process
    assert not is_the_program(None, False) and is_the_program(["tasks"], True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert is_the_program(["tasks"], None)


# -- packaging ------------------------------------------------------------------------------------------------
def test_forbidden_files_catches_torch_and_transformers_but_not_lookalikes(tmp_path):
    for rel in ("_internal/torch/lib/libtorch_cpu.so", "_internal/transformers/__init__.pyc", "_internal/libc10.so"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "_internal/torchlike_name_ok.txt").write_bytes(b"x")
    (tmp_path / "_internal/scipy/sparse").mkdir(parents=True)
    found = package.forbidden_files(tmp_path)
    assert "_internal/torch" in found and "_internal/transformers" in found and "_internal/libc10.so" in found
    assert not any("torchlike" in f or "scipy" in f for f in found)


def test_sbom_lists_packages_with_purls_and_the_llama_build():
    pkgs = sbom.installed_packages()
    names = {sbom.normalise(p.name) for p in pkgs}
    assert {"numpy", "sqlalchemy", "pyside6-essentials"} <= names
    assert "pip" not in names and "asclepius-desk" not in names
    llama = {
        "version": "0.3.36",
        "llama_cpp_commit": "0c1e57098",
        "cmake_args": ["-DGGML_NATIVE=OFF"],
        "cpu_variants": ["sse42", "zen4"],
    }
    doc = json.loads(json.dumps(sbom.build_sbom("asclepius-desk", "0.1.0", pkgs, llama, "ab" * 32)))
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.5"
    comps = {c["name"]: c for c in doc["components"]}
    numpy = next(c for n, c in comps.items() if n.lower() == "numpy")
    assert numpy["purl"] == f"pkg:pypi/numpy@{numpy['version']}"
    props = {p["name"]: p["value"] for p in comps["llama.cpp"]["properties"]}
    assert props["asclepius:cmake-args"] == "-DGGML_NATIVE=OFF" and props["asclepius:cpu-variants"] == "sse42 zen4"
    refs = {c["bom-ref"] for c in doc["components"]}
    assert set(doc["dependencies"][0]["dependsOn"]) == refs
    assert doc["metadata"]["component"]["hashes"][0]["content"] == "ab" * 32


def test_licence_texts_include_shipped_files_and_the_lgpl_text_pyside_does_not_ship():
    pkgs = [p for p in sbom.installed_packages() if sbom.normalise(p.name) in ("numpy", "pyside6-essentials")]
    text = sbom.licence_texts(pkgs, {})
    assert "numpy" in text and "Copyright" in text
    if (sbom.COMMON_LICENCES / "LGPL-3").is_file():
        assert "full texts at the end: LGPL-3, GPL-3, GPL-2" in text
        assert text.count("GNU LESSER GENERAL PUBLIC LICENSE") >= 1
    assert sbom.common_licence_names("MIT OR Apache-2.0") == []


# -- install.sh on a stand-in bundle: the script's own logic (more: test_install_script.py) ---------------
def test_install_upgrade_uninstall_keep_user_data(tmp_path):
    home = tmp_path / "home"
    data = home / ".local/share/asclepius-desk"
    data.mkdir(parents=True)
    (data / "asclepius.db").write_bytes(b"the evaluation log")
    old, new = stage(tmp_path, "0.0.9"), stage(tmp_path, "0.1.0")
    run_env = env(home)
    for stage_dir in (old, new):
        r = subprocess.run([str(stage_dir / "install.sh"), "--user"], env=run_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    prefix = home / ".local/opt/asclepius-desk"
    assert os.readlink(prefix / "current") == "0.1.0"
    assert not (prefix / "0.0.9").exists(), "the older version is replaced"
    out = subprocess.run([str(home / ".local/bin/asclepius"), "selftest"], env=run_env, capture_output=True, text=True)
    assert out.stdout.strip() == "stand-in selftest"
    desktop = (home / ".local/share/applications/asclepius-desk.desktop").read_text()
    assert f"Exec={home}/.local/bin/asclepius gui" in desktop
    assert (data / "asclepius.db").read_bytes() == b"the evaluation log"
    r = subprocess.run([str(prefix / "uninstall.sh")], env=run_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not prefix.exists() and not (home / ".local/bin/asclepius").exists()
    assert not (home / ".local/share/applications/asclepius-desk.desktop").exists()
    assert (data / "asclepius.db").read_bytes() == b"the evaluation log"


def test_install_refuses_a_tampered_file_and_an_unwritable_target(tmp_path):
    stage_dir = stage(tmp_path, "0.1.0")
    home = tmp_path / "home"
    home.mkdir()
    with (stage_dir / "asclepius-desk" / "asclepius").open("r+b") as f:
        f.seek(3)
        f.write(b"X")
    r = subprocess.run([str(stage_dir / "install.sh"), "--user"], env=env(home), capture_output=True, text=True)
    assert r.returncode == 3 and "do not match their checksums" in r.stderr and "asclepius: FAILED" in r.stderr
    assert not (home / ".local/opt").exists()

    good = stage(tmp_path / "g", "0.1.0")
    target = Path("/proc/asclepius-test")  # a directory that can never be created, even by root
    r = subprocess.run(
        [str(good / "install.sh"), "--user", "--prefix", str(target), "--bin-dir", str(tmp_path / "bin")],
        env=env(home),
        capture_output=True,
        text=True,
    )
    # root may "write" /proc (access() says yes) but it has no free space: either way a clean exit 4
    assert r.returncode == 4 and ("cannot write" in r.stderr or "not enough free space" in r.stderr), r.stderr
    assert not target.exists()


# -- the wheelhouse lock ----------------------------------------------------------------------------------------
def _wheel(directory: Path, name: str, version: str, tag: str = "py3-none-any") -> Path:
    """A minimal valid pure-Python wheel (pip installs it)."""
    path = directory / f"{name}-{version}-{tag}.whl"
    di = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{di}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    record = "".join(
        f"{k},sha256={__import__('base64').urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(v.encode())}\n"
        for k, v in files.items()
    )
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr(f"{di}/RECORD", record + f"{di}/RECORD,,\n")
    return path


def test_wheelhouse_lock_refuses_sdists_duplicates_and_foreign_platforms(tmp_path):
    _wheel(tmp_path, "asclepius_desk", "0.1.0")
    _wheel(tmp_path, "alpha", "1.0")
    _wheel(tmp_path, "alpha", "1.1")
    (tmp_path / "beta-2.0.tar.gz").write_bytes(b"sdist")
    _wheel(tmp_path, "gamma", "1.0", "cp311-cp311-musllinux_1_2_x86_64")
    _wheel(tmp_path, "delta", "1.0", "cp312-cp312-manylinux_2_28_x86_64")
    with pytest.raises(ValueError) as err:
        wheelhouse.lock_lines(tmp_path, "asclepius-desk[train]", "cp311")
    msg = str(err.value)
    assert "beta-2.0.tar.gz: an sdist" in msg and "alpha: several versions (1.0, 1.1)" in msg
    assert "gamma-1.0" in msg and "delta-1.0" in msg
    ok = wheelhouse.parse_wheel(Path("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"))
    assert ok.version == "2.13.0+cpu" and wheelhouse.compatible(ok, "cp311")
    abi3 = wheelhouse.parse_wheel(Path("cryptography-44.0-cp39-abi3-manylinux_2_34_x86_64.whl"))
    assert wheelhouse.compatible(abi3, "cp311") and not wheelhouse.compatible(abi3, "cp38")


def test_wheelhouse_lock_is_accepted_by_pip_and_catches_a_changed_wheel(tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    _wheel(house, "asclepius_desk", "0.1.0")
    _wheel(house, "alpha", "1.0")
    assert wheelhouse.main(["lock", str(house), "--project", "asclepius-desk"]) == 0
    lock = (house / "requirements.lock").read_text()
    assert "alpha==1.0 \\\n    --hash=sha256:" in lock
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house)]
    cmd += ["--require-hashes", "-r", str(house / "requirements.lock"), "--target", str(tmp_path / "t")]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_CONFIG_FILE": "/dev/null"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "t" / "alpha" / "__init__.py").exists()
    _wheel(house, "alpha", "1.0").write_bytes((house / "alpha-1.0-py3-none-any.whl").read_bytes() + b"\0")
    r = subprocess.run([*cmd[:-1], str(tmp_path / "t2")], capture_output=True, text=True)
    assert r.returncode != 0 and "do not match the hashes" in r.stderr.lower().replace("don't", "do not")


def test_shell_scripts_parse():
    scripts = ("linux/install.sh", "linux/uninstall.sh", "linux/preflight.sh", "wheelhouse/install.sh",
               "build_bundle.sh", "build_llama.sh", "deb/preinst.in", "deb/postinst", "deb/prerm",
               "deb/postrm")  # fmt: skip
    for script in scripts:
        assert subprocess.run(["bash", "-n", str(ROOT / "installer" / script)]).returncode == 0, script


def test_the_libllama_handle_exposes_the_ggml_backend_functions():
    # Tripwire for app.core.llama_adapter.shared_library (a private llama-cpp-python attribute): the portable
    # build's chosen CPU variant is loaded through these two ggml functions, looked up via libllama's handle.
    import ctypes

    from app.core.llama_adapter import shared_library

    lib = shared_library()
    assert isinstance(lib, ctypes.CDLL)
    for name in ("ggml_backend_load", "ggml_backend_reg_by_name"):
        assert getattr(lib, name) is not None
