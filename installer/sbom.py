"""A CycloneDX 1.5 SBOM and the third-party licence texts of a frozen bundle, from ``importlib.metadata``.

The Python distributions listed are those installed in the build venv, less the build-only tools
(PyInstaller, pip ...), which never reach the bundle. llama.cpp is listed as its own component with the
build's version, upstream commit, CMake flags and CPU variants (``installer/build_llama.sh`` writes them).
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

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
    name: str
    version: str
    licence: str
    licence_files: tuple[Path, ...] = field(default=())


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
        seen[normalise(name)] = Package(name, dist.version, _licence_of(dist.metadata), files)
    return sorted(seen.values(), key=lambda p: normalise(p.name))


def _licence_entry(licence: str) -> dict[str, Any]:
    if re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", licence) and " " not in licence.strip("()"):
        return {"license": {"id": licence}}
    if re.fullmatch(r"[A-Za-z0-9.+() -]+", licence) and any(op in licence for op in (" AND ", " OR ", " WITH ")):
        return {"expression": licence}
    return {"license": {"name": licence}}


def build_sbom(
    product: str, version: str, packages: list[Package], llama: dict[str, Any], archive_sha256: str | None = None
) -> dict[str, Any]:
    """The CycloneDX 1.5 document (a dict ready for ``json.dump``)."""
    components: list[dict[str, Any]] = [
        {
            "type": "library",
            "bom-ref": f"pkg:pypi/{normalise(p.name)}@{p.version}",
            "name": p.name,
            "version": p.version,
            "purl": f"pkg:pypi/{normalise(p.name)}@{p.version}",
            "licenses": [_licence_entry(p.licence)],
        }
        for p in packages
    ]
    components.append(
        {
            "type": "library",
            "bom-ref": f"llama.cpp@{llama['llama_cpp_commit']}",
            "name": "llama.cpp",
            "version": llama["llama_cpp_commit"],
            "description": f"vendored in llama-cpp-python {llama['version']}; built by installer/build_llama.sh",
            "licenses": [{"license": {"id": "MIT"}}],
            "externalReferences": [{"type": "vcs", "url": "https://github.com/ggml-org/llama.cpp"}],
            "properties": [
                {"name": "asclepius:llama-cpp-python-version", "value": llama["version"]},
                {"name": "asclepius:cmake-args", "value": " ".join(llama["cmake_args"])},
                {"name": "asclepius:cpu-variants", "value": " ".join(llama["cpu_variants"])},
            ],
        }
    )
    components.append(
        {
            "type": "application",
            "bom-ref": f"cpython@{sys.version.split()[0]}",
            "name": "CPython",
            "version": sys.version.split()[0],
            "licenses": [{"license": {"id": "PSF-2.0"}}],
        }
    )
    main: dict[str, Any] = {
        "type": "application",
        "bom-ref": f"pkg:pypi/{product}@{version}",
        "name": product,
        "version": version,
        "licenses": [{"license": {"id": "Apache-2.0"}}],
    }
    if archive_sha256:
        main["hashes"] = [{"alg": "SHA-256", "content": archive_sha256}]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "component": main,
            "tools": {"components": [{"type": "application", "name": "installer/sbom.py"}]},
        },
        "components": components,
        "dependencies": [{"ref": main["bom-ref"], "dependsOn": [c["bom-ref"] for c in components]}],
    }


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
