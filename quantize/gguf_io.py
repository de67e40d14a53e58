"""Writing GGUF files safely (temp name, re-read, atomic rename) and reading them back (inspect).

Only ``gguf`` and the standard library here: ``inspect`` works without the quantize extra.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantize.errors import QuantizeError

# The project's own metadata keys (gguf-py has no names for these). The app's model registry reads
# KEY_PROMPT_STYLE to pick the prompt template.
KEY_PROMPT_STYLE = "asclepius.prompt_style"
KEY_PROMPT_STYLE_VERSION = "asclepius.prompt_style_version"
KEY_CONVERTER = "asclepius.converter"
KEY_SOURCE_FORMAT = "asclepius.source.format"
KEY_SOURCE_DTYPE = "asclepius.source.dtype"
KEY_SOURCE_FILES = "asclepius.source.files"
KEY_SOURCE_SHA256 = "asclepius.source.sha256"
KEY_QUANTIZED_FROM = "asclepius.quantized_from.sha256"

Expected = dict[str, tuple[tuple[int, ...], str | None]]
"""GGUF tensor name -> (shape in row-major order as in PyTorch, ggml type name such as ``F16``, or None)."""


def partial_path(output: Path) -> Path:
    """Hidden, not ending in .gguf, tagged with our pid: nothing mistakes it for a finished model, and a
    later run can tell a dead run's leftovers from a live one's."""
    return output.with_name(f".{output.name}.partial-{os.getpid()}")


_PARTIAL_RE = re.compile(r"^\..+\.partial-(\d+)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


@dataclass(frozen=True)
class StalePartial:
    path: Path
    size: int
    pid: int

    def describe(self) -> str:
        return (
            f"removed {self.path.name} ({self.size / 1e6:,.1f} MB), a partial file left by process {self.pid}, "
            "which is no longer running (a killed convert or quantize)"
        )


def clean_stale_partials(directory: Path) -> list[StalePartial]:
    """Remove ``.NAME.partial-PID`` files in ``directory`` whose process is gone; return what was removed.

    A live process's partial file (this one's, another run's) is never touched. Only the hidden names
    ``partial_path`` makes are considered, so nothing else in the folder can match."""
    removed: list[StalePartial] = []
    if not directory.is_dir():
        return removed
    for p in sorted(directory.iterdir()):
        m = _PARTIAL_RE.match(p.name)
        if not m or not p.is_file() or _alive(int(m.group(1))):
            continue
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            continue  # another run cleaned it first
        except OSError:
            continue  # not ours to remove (read-only folder): leave it, the run itself will say what fails
        removed.append(StalePartial(p, size, int(m.group(1))))
    return removed


@contextlib.contextmanager
def atomic_output(output: Path, expected: Expected, required_keys: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary path to write to; on success check it with GGUFReader and rename it to ``output``.
    On any failure (including Ctrl-C) the temporary file is removed and ``output`` is untouched."""
    clean_stale_partials(output.parent)
    tmp = partial_path(output)
    try:
        yield tmp
        check_written(tmp, expected, required_keys)
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_written(path: Path, expected: Expected, required_keys: Sequence[str] = ()) -> None:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:
        raise QuantizeError(f"the written file does not read back as GGUF ({exc})") from None
    problems = []
    got = {t.name: t for t in reader.tensors}
    if len(got) != len(expected):
        problems.append(f"{len(got)} tensors written, {len(expected)} expected")
    for name, (shape, ttype) in expected.items():
        t = got.get(name)
        if t is None:
            problems.append(f"tensor {name} missing")
            continue
        actual = tuple(int(d) for d in reversed(t.shape.tolist()))
        if actual != tuple(shape):
            problems.append(f"tensor {name}: shape {list(actual)}, expected {list(shape)}")
        if ttype is not None and t.tensor_type.name != ttype.upper():
            problems.append(f"tensor {name}: type {t.tensor_type.name}, expected {ttype.upper()}")
    for key in ("general.architecture", *required_keys):
        if reader.get_field(key) is None:
            problems.append(f"metadata key {key} missing")
    if problems:
        raise QuantizeError("the written GGUF failed its check: " + "; ".join(problems[:10]))


def field_value(field: Any) -> Any:
    """A GGUFReader field as a Python value (str, number, bool or list)."""
    import gguf

    if not field.types:
        return None
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        return [field.contents(i) for i in range(len(field.data))]
    return field.contents()


def _open(path: Path) -> Any:
    import gguf

    path = Path(path)
    if not path.is_file():
        raise QuantizeError(f"{path}: no such file")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise QuantizeError(f"{path}: not a GGUF file (no GGUF magic)")
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:
        raise QuantizeError(f"{path}: cannot read GGUF ({exc})") from None


@dataclass
class Inspection:
    path: Path
    size: int
    metadata: dict[str, Any]
    tensors: list[tuple[str, str, tuple[int, ...], int]]
    """(name, ggml type, shape as in PyTorch, bytes)."""

    def type_summary(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for _, ttype, _, nbytes in self.tensors:
            n, b = out.get(ttype, (0, 0))
            out[ttype] = (n + 1, b + nbytes)
        return out

    @property
    def n_params(self) -> int:
        total = 0
        for _, _, shape, _ in self.tensors:
            n = 1
            for d in shape:
                n *= d
            total += n
        return total


def inspect_gguf(path: Path) -> Inspection:
    reader = _open(path)
    meta = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = [
        (t.name, t.tensor_type.name, tuple(int(d) for d in reversed(t.shape.tolist())), int(t.n_bytes))
        for t in reader.tensors
    ]
    return Inspection(Path(path), Path(path).stat().st_size, meta, tensors)


def format_inspection(ins: Inspection, show_tensors: bool = False, max_array: int = 8) -> str:
    lines = [f"{ins.path}  ({ins.size / 1e6:,.1f} MB, {len(ins.tensors)} tensors, {ins.n_params:,} parameters)"]
    lines.append("metadata:")
    for k, v in ins.metadata.items():
        if isinstance(v, list) and len(v) > max_array:
            shown = ", ".join(repr(x) for x in v[:max_array])
            v = f"[{shown}, ... ({len(v)} items)]"
        lines.append(f"  {k} = {v}")
    lines.append("tensor types:")
    for ttype, (n, nbytes) in sorted(ins.type_summary().items()):
        lines.append(f"  {ttype:<6} {n:>5} tensors  {nbytes / 1e6:>10,.1f} MB")
    if show_tensors:
        lines.append("tensors:")
        for name, ttype, shape, nbytes in ins.tensors:
            lines.append(f"  {name:<28} {ttype:<6} {list(shape)!s:<20} {nbytes:>12,}")
    return "\n".join(lines)
