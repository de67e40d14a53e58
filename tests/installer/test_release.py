"""The release around a stand-in bundle: byte-identical repacking, the OpenPGP signature, install.sh taking
only listed files, the shared demo model staged into the bundle, and the loader loading only known variants."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.core import llama_backends
from app.core.errors import ModelError
from installer import deb, lock, package, reproduce, sign
from installer.floor import Requirements
from tests.installer.stage import env, stage

FLOOR = Requirements(glibc=(2, 31), cpu_flags=("sse4_2",))
EPOCH = 1_700_000_000


# -- reproducible: two packings of one bundle are byte-identical ------------------------------------------------
def pack(tmp_path: Path, umask: int) -> tuple[Path, Path]:
    """Stage, archive and package the stand-in bundle as package.package does, under a given umask."""
    old = os.umask(umask)
    try:
        stage_dir = stage(tmp_path, "0.1.0", FLOOR)
        named = stage_dir.rename(tmp_path / "asclepius-desk-0.1.0-linux-x86_64")  # the release's top directory
        out = tmp_path / "out"
        out.mkdir()
        archive = out / f"{named.name}.tar.gz"
        package.make_archive(named, archive, EPOCH)
        return archive, deb.build(named, out, "0.1.0", FLOOR, EPOCH, tmp_path / "work")
    finally:
        os.umask(old)


def test_two_packings_of_one_bundle_are_byte_identical(tmp_path):
    first = pack(tmp_path / "a", 0o022)
    # Another day, path and umask: the bundle's files dated differently, generated files with other modes.
    os.utime(tmp_path / "a" / "bundle" / "asclepius", (EPOCH + 999, EPOCH + 999))
    shutil.copytree(tmp_path / "a" / "bundle", tmp_path / "b" / "bundle", symlinks=True)
    for path in (tmp_path / "b" / "bundle").rglob("*"):
        os.utime(path, (EPOCH + 12345, EPOCH + 12345), follow_symlinks=False)
    second = pack(tmp_path / "b", 0o002)
    for a, b in zip(first, second, strict=True):
        assert reproduce.differences(a, b) == [], a.name
    # The tool's own negative control: a different time stamp is found and shown.
    other = tmp_path / "c"
    shutil.copytree(tmp_path / "a" / "bundle", other / "bundle", symlinks=True)
    stage_dir = stage(other, "0.1.0", FLOOR).rename(other / "asclepius-desk-0.1.0-linux-x86_64")
    package.make_archive(stage_dir, other / "x.tar.gz", EPOCH + 86400)
    diff = reproduce.differences(first[0], other / "x.tar.gz")
    assert diff and any("2023-11-15 22:13" in line for line in diff), diff


def test_the_archive_has_no_build_user_time_or_group_write_bit(tmp_path):
    archive, _ = pack(tmp_path, 0o002)
    listing = subprocess.run(["tar", "-tvzf", str(archive)], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in listing.splitlines()]
    assert all(r[1] == "0/0" and f"{r[3]} {r[4]}" == "2023-11-14 22:13" for r in rows), rows[:3]
    assert all(r[0][5] != "w" and r[0][8] != "w" for r in rows if r[0][0] != "l")
    assert archive.read_bytes()[4:8] == b"\0\0\0\0", "gzip -n: no time stamp in the gzip header"


def test_source_date_epoch_comes_from_the_environment_or_the_last_commit(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234")
    assert package.source_date_epoch() == 1234
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    r = subprocess.run(["git", "log", "-1", "--format=%ct"], capture_output=True, text=True, cwd=package.HERE)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    assert package.source_date_epoch() == int(r.stdout)


# -- signed releases --------------------------------------------------------------------------------------------
@pytest.fixture
def signing_key():
    """A throwaway ed25519 key in its own GnuPG home (short path: gpg-agent's socket lives there)."""
    if not shutil.which("gpg"):
        pytest.skip("needs gpg")
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    home.chmod(0o700)
    uid = "Asclepius Desk test release <release@example.invalid>"
    gen = ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run([*gen, "--quick-gen-key", uid, "ed25519", "sign", "never"], check=True, capture_output=True)
    yield sign.SigningKey.from_env({"ASCLEPIUS_SIGNING_KEY": uid, "ASCLEPIUS_SIGNING_GNUPGHOME": str(home)})
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def admin_verifies(release: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """VERIFY.md's steps with a fresh GnuPG home: import the shipped key, verify the signature."""
    home = Path(tempfile.mkdtemp(prefix="a", dir="/tmp"))
    home.chmod(0o700)
    try:
        gpg = ["gpg", "--homedir", str(home), "--batch"]
        subprocess.run([*gpg, "--import", str(release / sign.PUBLIC_KEY)], check=True, capture_output=True)
        return subprocess.run(
            [*gpg, "--verify", "SHA256SUMS.asc", "SHA256SUMS"], cwd=release, capture_output=True, text=True
        )
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_a_signed_sha256sums_verifies_and_a_tampered_one_fails(tmp_path, signing_key):
    release = tmp_path / "usb"
    release.mkdir()
    (release / "a.tar.gz").write_bytes(b"the archive")
    sums = release / "SHA256SUMS"
    sums.write_text(f"{hashlib.sha256(b'the archive').hexdigest()}  a.tar.gz\n")
    fpr = sign.fingerprint(signing_key)
    assert len(fpr) == 40
    sign.export_public_key(signing_key, fpr, release)
    assert sign.sign(signing_key, sums) == release / "SHA256SUMS.asc"
    assert (release / "SHA256SUMS.asc").read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    assert "PRIVATE KEY" not in (release / sign.PUBLIC_KEY).read_text()

    good = admin_verifies(release, tmp_path)
    assert good.returncode == 0 and "Good signature" in good.stderr, good.stderr
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=release, capture_output=True).returncode == 0
    # gpgv against exactly this key, as VERIFY.md offers
    keyring = tmp_path / "release.gpg"
    with keyring.open("wb") as out:
        subprocess.run(["gpg", "--dearmor"], stdin=(release / sign.PUBLIC_KEY).open("rb"), stdout=out, check=True)
    sig = release / "SHA256SUMS.asc"
    assert subprocess.run(sign.verify_argv(keyring, sig, sums), capture_output=True).returncode == 0

    sums.write_text(sums.read_text().replace("a.tar.gz", "b.tar.gz"))
    bad = admin_verifies(release, tmp_path)
    assert bad.returncode != 0 and "BAD signature" in bad.stderr, bad.stderr
    assert subprocess.run(sign.verify_argv(keyring, sig, sums), capture_output=True).returncode != 0


def test_verify_md_names_the_fingerprint_and_the_exact_steps(signing_key):
    fpr = sign.fingerprint(signing_key)
    text = package.render_verify("0.1.0", "a.tar.gz", "s.cdx.json", "asclepius-desk_0.1.0_amd64.deb", fpr)
    assert package._spaced(fpr) in text and "@" not in text.replace("@example", "")
    steps = ("gpg --show-keys asclepius-desk-release-key.asc", "gpg --verify SHA256SUMS.asc SHA256SUMS",
             "sha256sum -c SHA256SUMS", "sudo apt install ./asclepius-desk_0.1.0_amd64.deb")  # fmt: skip
    assert all(s in text for s in steps)
    assert "**This build is not signed**" in package.render_verify("0.1.0", "a", "s", "d", "")
    assert sign.SigningKey.from_env({}) is None


def test_a_missing_signing_key_is_a_clear_error(tmp_path):
    key = sign.SigningKey("nobody@example.invalid", tmp_path)
    tmp_path.chmod(0o700)
    with pytest.raises(sign.SigningError, match=r"(?i)no secret key"):
        sign.fingerprint(key)


# -- install.sh installs only what the manifests list -------------------------------------------------------------
@pytest.mark.parametrize("extra", ["file", "link"])
def test_install_refuses_a_library_dropped_into_the_unpacked_tree(tmp_path, extra):
    unpacked = stage(tmp_path, "0.1.0")
    lib = unpacked / "asclepius-desk/_internal/llama_cpp/lib"
    lib.mkdir(parents=True)
    if extra == "file":
        (lib / "libggml-cpu-evil.so").write_bytes(b"\x7fELF not ours")
    else:
        (lib / "libggml-rpc.so").symlink_to("/tmp/elsewhere.so")
    home = tmp_path / "home"
    home.mkdir()
    r = subprocess.run([str(unpacked / "install.sh"), "--user"], env=env(home), capture_output=True, text=True)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "do not list" in r.stderr and "not listed: " in r.stderr and ("evil" in r.stderr or "rpc" in r.stderr)
    assert not (home / ".local/opt/asclepius-desk").exists() or not any(
        (home / ".local/opt/asclepius-desk").glob("0.1.0")
    )


def test_the_manifests_list_every_file_and_link_of_the_release(tmp_path):
    unpacked = stage(tmp_path, "0.1.0")
    assert (unpacked / "MANIFEST.links").read_text() == "./asclepius-desk/_internal/link.so -> lib.so\n"
    listed = (unpacked / "MANIFEST.sha256").read_text()
    for name in ("./preflight.sh", "./MANIFEST.links", "./asclepius-desk/asclepius", "./REQUIRES"):
        assert f"  {name}\n" in listed or name == "./MANIFEST.links"
    assert "  ./MANIFEST.links\n" not in listed  # the manifests do not list themselves


# -- the demo model, joined once into the bundle ------------------------------------------------------------------
def fake_demo(tmp_path: Path, parts: list[bytes], expected: bytes | None = None):
    """A demo package whose part files live in a site-packages dir, copied into a bundle's _internal."""
    site = tmp_path / "site"
    pkg_dir = site / "fakedemo"
    pkg_dir.mkdir(parents=True)
    (pkg_dir / "__init__.py").write_text("")
    chunks = []
    for i, data in enumerate(parts, 1):
        chunk = site / f"fakedemo_part{i}" / "data" / f"chunk{i}.bin"
        chunk.parent.mkdir(parents=True)
        chunk.write_bytes(data)
        chunks.append(chunk)
    app = tmp_path / "app"
    for chunk in chunks:
        dest = app / "_internal" / chunk.relative_to(site)
        dest.parent.mkdir(parents=True)
        shutil.copyfile(chunk, dest)
    sha = hashlib.sha256(expected if expected is not None else b"".join(parts)).hexdigest()
    pkg = SimpleNamespace(
        __file__=str(pkg_dir / "__init__.py"), __name__="fakedemo", MODEL_NAME="demo.gguf",
        EXPECTED_SHA256=sha, chunk_paths=lambda: chunks,
    )  # fmt: skip
    return app, pkg


def test_the_demo_model_is_joined_once_into_share_models_and_its_parts_dropped(tmp_path):
    app, pkg = fake_demo(tmp_path, [b"GGUF part one ", b"and part two"])
    found = package.share_demo_model(app, pkg)
    target = app / "share/models/demo.gguf"
    assert target.read_bytes() == b"GGUF part one and part two"
    assert found is not None and found.rel == "share/models/demo.gguf" and found.sha256 == pkg.EXPECTED_SHA256
    assert not list((app / "_internal").rglob("chunk*.bin")), "the parts are not shipped twice"
    assert oct(target.stat().st_mode & 0o777) == "0o644"


def test_a_wrong_demo_join_fails_the_build_and_no_parts_means_no_shared_model(tmp_path):
    app, pkg = fake_demo(tmp_path / "a", [b"one", b"two"], expected=b"something else")
    with pytest.raises(ModelError, match="sha256"):
        package.share_demo_model(app, pkg)
    app, pkg = fake_demo(tmp_path / "b", [b"one"])
    shutil.rmtree(app / "_internal")
    assert package.share_demo_model(app, pkg) is None


# -- the loader loads only ggml's known CPU variants ----------------------------------------------------------------
VARIANT_C = """
#include <stdio.h>
__attribute__((constructor)) static void loaded(void) {
    FILE *f = fopen("%(marker)s", "a"); if (f) { fputs("%(name)s\\n", f); fclose(f); }
}
int ggml_backend_score(void) { return %(score)d; }
"""


def compile_variant(lib_dir: Path, name: str, score: int, marker: Path) -> None:
    src = lib_dir / f"{name}.c"
    src.write_text(VARIANT_C % {"marker": marker, "name": name, "score": score})
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib_dir / f"libggml-{name}.so"), str(src)], check=True)
    src.unlink()


def test_only_known_variant_libraries_are_loaded_and_the_best_is_chosen(tmp_path):
    if not shutil.which("cc"):
        pytest.skip("needs a C compiler")
    lib_dir, marker = tmp_path / "lib", tmp_path / "loaded.txt"
    lib_dir.mkdir()
    for name, score in (("cpu-sse42", 10), ("cpu-haswell", 20), ("cpu-evil", 99), ("rpc-x", 99)):
        compile_variant(lib_dir, name, score, marker)
    available = llama_backends.variant_names(lib_dir)
    assert available == ("haswell", "sse42")
    assert llama_backends.best_variant(lib_dir, available) == lib_dir / "libggml-cpu-haswell.so"
    assert sorted(marker.read_text().split()) == ["cpu-haswell", "cpu-sse42"], "a dropped-in library ran"
    maps = Path("/proc/self/maps").read_text()
    assert "libggml-cpu-sse42.so" not in maps, "scored variants are unloaded again"


# -- pinned, hashed inputs -------------------------------------------------------------------------------------------
def test_the_build_lock_pins_every_requirement_with_a_hash():
    text = lock.LOCK.read_text()
    assert lock.check() == [], "pyproject.toml gained a dependency: run python -m installer.lock"
    entries = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
    hashes = [line for line in text.splitlines() if line.strip().startswith("--hash=sha256:")]
    assert len(entries) == len(hashes) >= 30 and all(len(h.split(":")[1]) == 64 for h in hashes)
    assert lock.sdist_line().startswith("llama-cpp-python==0.3.36 \\\n    --hash=sha256:")
    # the one PySide6 the Debian 11 build root can run (6.11's wheels need glibc 2.34)
    assert "PySide6_Essentials==6.11" not in text


def test_the_lock_is_written_from_pips_report_and_refuses_a_file_without_a_hash():
    item = {
        "metadata": {"name": "alpha", "version": "1.0"},
        "download_info": {"archive_info": {"hashes": {"sha256": "ab" * 32}}},
    }
    text = lock.lock_text({"install": [item]}, "llama-cpp-python==0.3.36 \\\n    --hash=sha256:" + "cd" * 32)
    assert f"alpha==1.0 \\\n    --hash=sha256:{'ab' * 32}\n" in text
    item["download_info"] = {"url": "file:///x"}
    with pytest.raises(ValueError, match="no sha256"):
        lock.lock_text({"install": [item]}, "")


def test_package_writes_the_whole_signed_release(tmp_path, signing_key, monkeypatch):
    # The dev venv holds the dev extra (krippendorff, GPL-3): the build venv would not. The release's own
    # check refuses it (test_sbom_licences.py); here the list is the build venv's.
    from installer import sbom

    real = sbom.installed_packages()
    monkeypatch.setattr(
        sbom, "installed_packages", lambda: [p for p in real if sbom.normalise(p.name) != "krippendorff"]
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    stage(tmp_path, "0.1.0")  # the stand-in bundle at tmp_path/bundle
    llama_build = tmp_path / "llama-build.json"
    llama_build.write_text(
        '{"version": "0.3.36", "llama_cpp_commit": "0c1e57098", "cmake_args": [], "cpu_variants": ["sse42"]}'
    )
    out = tmp_path / "dist"
    made = package.package(tmp_path / "bundle", llama_build, out, None, tmp_path / "work", signing_key)
    names = sorted(p.name for p in out.iterdir())
    version = package.metadata.version("asclepius-desk")
    assert names == sorted([
        f"asclepius-desk-{version}-linux-x86_64.tar.gz", f"asclepius-desk_{deb.deb_version(version)}_amd64.deb",
        f"asclepius-desk-{version}.cdx.json", "THIRD-PARTY-LICENSES.txt", "VERIFY.md", sign.PUBLIC_KEY,
        "SHA256SUMS", "SHA256SUMS.asc",
    ])  # fmt: skip
    assert len((out / "SHA256SUMS").read_text().splitlines()) == 6
    assert admin_verifies(out, tmp_path).returncode == 0
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    assert package._spaced(sign.fingerprint(signing_key)) in (out / "VERIFY.md").read_text()
    listing = subprocess.run(["tar", "-tzf", str(made["archive"])], capture_output=True, text=True).stdout
    assert f"asclepius-desk-{version}-linux-x86_64/asclepius-desk/licenses/README.txt" in listing.splitlines()
    assert (
        "./opt/asclepius-desk/licenses/README.txt"
        in subprocess.run(["dpkg-deb", "-c", str(made["deb"])], capture_output=True, text=True).stdout
    )
