"""Turn the PyInstaller bundle into the release: archive, SHA256SUMS, SBOM, licence texts, VERIFY.md.

    python -m installer.package --bundle build/installer/dist/asclepius-desk \
        --llama-build ~/.cache/asclepius-desk-installer/wheels/llama-build.json --out dist [--model FILE.gguf]

Run with the build venv's Python (the SBOM lists the distributions installed there). Writes into ``--out``:
``asclepius-desk-<v>-linux-x86_64.tar.gz``, ``asclepius-desk-<v>.cdx.json``, ``THIRD-PARTY-LICENSES.txt``,
``VERIFY.md`` and ``SHA256SUMS`` (of the other four).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from app.core.hashing import sha256_file
from installer import floor, sbom

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


def manifest_lines(root: Path) -> list[str]:
    """``sha256  ./relative/path`` for every regular file under ``root``, sorted (``sha256sum -c`` format)."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel == "MANIFEST.sha256":
            continue
        lines.append(f"{sha256_file(path)}  ./{rel}")
    return lines


def render_verify(version: str, archive: str, sbom_name: str) -> str:
    text = (HERE / "VERIFY.md.in").read_text(encoding="utf-8")
    return text.replace("@VERSION@", version).replace("@ARCHIVE@", archive).replace("@SBOM@", sbom_name)


def stage(
    bundle: Path, stage_dir: Path, version: str, model: Path | None, verify_text: str, *, requires: floor.Requirements
) -> None:
    """The release directory: bundle, scripts, desktop files, VERSION, REQUIRES (checked by install.sh before
    it copies anything), VERIFY.md, an optional model, and MANIFEST.sha256 over all of it."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True)
    shutil.copytree(bundle, stage_dir / PRODUCT, symlinks=True)
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(HERE / "linux" / script, stage_dir / script)
        (stage_dir / script).chmod(0o755)
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
    (stage_dir / "MANIFEST.sha256").write_text("\n".join(manifest_lines(stage_dir)) + "\n", encoding="utf-8")


def make_archive(stage_dir: Path, archive: Path) -> None:
    """A gzip tarball with sorted names and root ownership (no build user's names inside)."""
    tmp = archive.with_suffix(".partial")
    cmd = [
        "tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner",
        "-C", str(stage_dir.parent), "-cf", "-", stage_dir.name,
    ]  # fmt: skip
    with tmp.open("wb") as out:
        tar = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        gz = subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=out, check=False)
        if tar.stdout:
            tar.stdout.close()
        if tar.wait() != 0 or gz.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise PackagingError(f"creating {archive} failed")
    tmp.replace(archive)


def package(bundle: Path, llama_build: Path, out: Path, model: Path | None, work: Path) -> dict[str, Path]:
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
    version = metadata.version(PRODUCT)
    base = f"{PRODUCT}-{version}-linux-x86_64"
    archive = out / f"{base}.tar.gz"
    sbom_path = out / f"{PRODUCT}-{version}.cdx.json"
    licences = out / "THIRD-PARTY-LICENSES.txt"
    verify = out / "VERIFY.md"
    out.mkdir(parents=True, exist_ok=True)
    verify_text = render_verify(version, archive.name, sbom_path.name)
    stage_dir = work / base
    llama = json.loads(llama_build.read_text(encoding="utf-8"))
    try:
        requires = floor.requirements(bundle, llama["cpu_variants"])
    except (KeyError, ValueError) as exc:
        raise PackagingError(f"{llama_build}: cannot tell which CPUs the build runs on ({exc})") from None
    stage(bundle, stage_dir, version, model, verify_text, requires=requires)
    make_archive(stage_dir, archive)

    packages = sbom.installed_packages()
    sbom.write_json(sbom_path, sbom.build_sbom(PRODUCT, version, packages, llama, sha256_file(archive)))
    extra = {}
    llama_licence = llama_build.parent / "llama.cpp-LICENSE"
    if llama_licence.is_file():
        extra[f"llama.cpp {llama['llama_cpp_commit']} (MIT)"] = llama_licence
    py_licence = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
    if py_licence.is_file():
        extra[f"CPython {sys.version.split()[0]} (PSF-2.0)"] = py_licence
    licences.write_text(sbom.licence_texts(packages, extra), encoding="utf-8")
    verify.write_text(verify_text, encoding="utf-8")
    sums = [f"{sha256_file(p)}  {p.name}" for p in (archive, sbom_path, licences, verify)]
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    return {"archive": archive, "sbom": sbom_path, "licences": licences, "verify": verify, "stage": stage_dir}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m installer.package", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--llama-build", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path)
    p.add_argument("--work", type=Path, default=Path("build/installer/stage"))
    args = p.parse_args(argv)
    try:
        made = package(args.bundle, args.llama_build, args.out, args.model, args.work)
    except PackagingError as exc:
        print(f"package: error: {exc}", file=sys.stderr)
        return 1
    size = made["archive"].stat().st_size
    print(f"package: {made['archive']} ({size / 1e6:.1f} MB)")
    for key in ("sbom", "licences", "verify"):
        print(f"package: {made[key]}")
    needs = (made["stage"] / floor.REQUIRES_FILE).read_text(encoding="utf-8").split()
    print(f"package: runs where install.sh's preflight finds {', '.join(needs)}")
    print(f"package: {args.out / 'SHA256SUMS'}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
