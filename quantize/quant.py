"""F32/F16/BF16 GGUF -> quantized GGUF through llama.cpp, with the same temp/verify/rename discipline,
and a manifest of what was made from what."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.core.hashing import sha256_file
from app.core.privatefile import write_private
from quantize import CONVERTER_VERSION
from quantize.errors import QuantizeError, QuantizeUsageError
from quantize.gguf_io import KEY_SOURCE_FILES, KEY_SOURCE_SHA256, Inspection, atomic_output, inspect_gguf
from quantize.worker import run_quantize

QUANT_TYPES = ("Q4_0", "Q4_K_S", "Q4_K_M", "Q5_0", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0")
"""Types offered; each maps to ``llama_cpp.LLAMA_FTYPE_MOSTLY_<type>``."""
SOURCE_TYPES = ("ALL_F32", "MOSTLY_F16", "MOSTLY_BF16")
Progress = Callable[[str, int, int], None]
MANIFEST_NAME = "manifest.json"


@dataclass
class QuantResult:
    output: Path
    qtype: str
    seconds: float
    size: int


def ftype_of(qtype: str) -> int:
    import llama_cpp

    q = qtype.upper()
    if q not in QUANT_TYPES:
        raise QuantizeUsageError(f"unknown quantization type {qtype!r}; supported: {', '.join(QUANT_TYPES)}")
    return int(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{q}"))


def default_output(input_path: Path, qtype: str) -> Path:
    stem = re.sub(r"[-.](f32|f16|bf16)$", "", input_path.stem, flags=re.IGNORECASE)
    return input_path.with_name(f"{stem}-{qtype.lower()}.gguf")


def _source_ftype(path: Path) -> str:
    import gguf

    ins = inspect_gguf(path)
    ft = ins.metadata.get("general.file_type")
    name = gguf.LlamaFileType(ft).name if ft is not None else "?"
    if name not in SOURCE_TYPES:
        raise QuantizeError(
            f"{path.name} is already quantized ({name}); quantize from the F32, F16 or BF16 GGUF that "
            "`asclepius quantize convert` wrote (requantizing compounds the error)"
        )
    return name


def check_source(input_path: Path) -> Inspection:
    """The input of ``quantize``, inspected: an F32/F16/BF16 GGUF, or a QuantizeError saying what it is not.

    The CLI calls it before it creates any output folder, so a wrong input leaves nothing behind."""
    input_path = Path(input_path)
    if not input_path.is_file():
        raise QuantizeError(f"{input_path}: no such file")
    src = inspect_gguf(input_path)  # raises a clear error for a non-GGUF input
    _source_ftype(input_path)
    return src


def quantize_gguf(
    input_path: Path,
    output: Path,
    qtype: str,
    threads: int = 0,
    force: bool = False,
    progress: Progress | None = None,
) -> QuantResult:
    """Quantize in a child process (see ``quantize.worker``): SIGINT/SIGTERM stop it and leave no file."""
    input_path, output = Path(input_path), Path(output)
    ftype = ftype_of(qtype)
    src = check_source(input_path)
    if output.exists() and not force:
        raise QuantizeUsageError(f"{output} already exists; pass --force to replace it")
    if output.resolve() == input_path.resolve():
        raise QuantizeUsageError("the output would overwrite the input; choose another output path")
    expected = {name: (shape, None) for name, _, shape, _ in src.tensors}
    # 0 means "all hardware threads" to llama.cpp; pass the CPU count explicitly so the log says what ran.
    nthread = threads if threads > 0 else (os.cpu_count() or 1)
    t0 = time.perf_counter()
    with atomic_output(output, expected) as tmp:
        rc, errors = run_quantize(input_path, tmp, ftype, nthread, progress)
        if rc != 0:
            detail = "; ".join(errors[-3:]) or f"exit status {rc}"
            if _disk_full(output):
                detail += " (is the disk full?)"
            raise QuantizeError(f"llama.cpp could not quantize {input_path.name} to {qtype}: {detail}")
    return QuantResult(output, qtype.upper(), time.perf_counter() - t0, output.stat().st_size)


def _disk_full(path: Path) -> bool:
    import shutil

    return shutil.disk_usage(path.parent).free < (64 << 20)


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"converter": CONVERTER_VERSION}
    for pkg in ("llama-cpp-python", "gguf", "torch", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _file_entry(path: Path, sha: str | None = None) -> dict[str, Any]:
    return {"file": path.name, "size": path.stat().st_size, "sha256": sha or sha256_file(path)}


def write_manifest(input_path: Path, results: list[QuantResult], directory: Path | None = None) -> Path:
    """Record input and outputs (size, sha256, type), tool versions and the source checkpoint's hashes
    in ``manifest.json`` beside the outputs; entries from earlier runs for other files are kept."""
    directory = directory or results[0].output.parent
    path = directory / MANIFEST_NAME
    manifest: dict[str, Any] = {}
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError:
            manifest = {}
    meta = inspect_gguf(input_path).metadata
    source = dict(zip(meta.get(KEY_SOURCE_FILES) or [], meta.get(KEY_SOURCE_SHA256) or [], strict=False))
    outputs = {o["file"]: o for o in manifest.get("outputs", []) if (directory / o["file"]).is_file()}
    for r in results:
        outputs[r.output.name] = _file_entry(r.output) | {"type": r.qtype, "seconds": round(r.seconds, 2)}
    manifest.update(
        updated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        input=_file_entry(input_path) | {"type": "source GGUF"},
        source_checkpoint=source,
        outputs=sorted(outputs.values(), key=lambda o: o["file"]),
        tools=tool_versions(),
    )
    write_private(path, json.dumps(manifest, indent=2) + "\n", what="manifest")
    return path


def result_dict(r: QuantResult) -> dict[str, Any]:
    d = asdict(r)
    d["output"] = str(r.output)
    return d
