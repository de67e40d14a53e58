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

from app.core.privatefile import os_problem, private_dir
from quantize.errors import QuantizeError, QuantizeUsageError

# The project's own metadata keys (gguf-py has no names for these). The prompt-style keys, which the app's
# model registry reads too, are defined once in resources.prompts (KEY_PROMPT_STYLE, KEY_PROMPT_STYLE_VERSION).
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


def output_dir(directory: Path) -> Path:
    """Create a missing output folder, and each missing parent, readable by the user alone (0700).

    A folder that exists is left as it is (it may be the user's shared models folder)."""
    if directory.is_dir():
        return directory
    try:
        return private_dir(directory)
    except OSError as exc:
        raise QuantizeUsageError(f"cannot create the output folder {directory}: {os_problem(exc)}") from None


def _create_private(tmp: Path) -> None:
    """Create ``tmp`` empty and 0600 before any writer opens it.

    The writers (gguf-py's ``GGUFWriter``, ``TensorDataWriter`` after it, llama.cpp's quantizer in a child
    process) open the path by name and truncate it, which keeps the mode; left to them the file would be
    created with the umask's 0644. ``app.core.privatefile.private_file`` does not fit: it hands one Python
    file object to one writer for a whole file, and this file is written by a library and a child process,
    then checked (``check_written``) before it is renamed."""
    tmp.unlink(missing_ok=True)  # this process's own leftover of an earlier attempt (the name has our pid)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise QuantizeUsageError(f"cannot write in {tmp.parent}: {os_problem(exc)}") from None
    os.fchmod(fd, 0o600)  # the umask could only have removed bits; this states the mode outright
    os.close(fd)


@contextlib.contextmanager
def atomic_output(output: Path, expected: Expected, required_keys: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a temporary path (an empty 0600 file) to write to; on success check it with GGUFReader and
    rename it to ``output``. On any failure (including Ctrl-C) the temporary file is removed and ``output``
    is untouched."""
    clean_stale_partials(output.parent)
    tmp = partial_path(output)
    _create_private(tmp)
    try:
        yield tmp
        check_written(tmp, expected, required_keys)
        os.chmod(tmp, 0o600)  # in case a writer replaced the file rather than truncating it
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass
class Layout:
    """What ``scan_layout`` reads from a GGUF: metadata keys, tensor infos and where the data must end."""

    keys: set[str]
    tensors: dict[str, tuple[tuple[int, ...], int, int]]
    """name -> (shape in row-major order as in PyTorch, ggml type id, offset from the data start)."""
    data_start: int
    size: int


def scan_layout(path: Path) -> Layout:
    """Read a GGUF's header with the app's one fast header reader (``app.core.models.gguf_scan``: long
    arrays skipped, where GGUFReader builds numpy views of every vocabulary string)."""
    from app.core.models.gguf_scan import scan_gguf

    h = scan_gguf(path)
    tensors = {name: (t.shape, t.ggml_type, t.offset) for name, t in h.tensors.items()}
    return Layout(set(h.metadata), tensors, h.data_start, h.size)


def check_written(path: Path, expected: Expected, required_keys: Sequence[str] = ()) -> None:
    import gguf

    try:
        layout = scan_layout(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise QuantizeError(f"the written file does not read back as GGUF ({exc})") from None
    problems = []
    got = layout.tensors
    if len(got) != len(expected):
        problems.append(f"{len(got)} tensors written, {len(expected)} expected")
    end = layout.data_start
    for name, (shape, ttype) in expected.items():
        t = got.get(name)
        if t is None:
            problems.append(f"tensor {name} missing")
            continue
        actual, type_id, offset = t
        try:
            qtype = gguf.GGMLQuantizationType(type_id)
        except ValueError:
            problems.append(f"tensor {name}: unknown type {type_id}")
            continue
        if actual != tuple(shape):
            problems.append(f"tensor {name}: shape {list(actual)}, expected {list(shape)}")
        if ttype is not None and qtype.name != ttype.upper():
            problems.append(f"tensor {name}: type {qtype.name}, expected {ttype.upper()}")
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        numel = 1
        for d in actual:
            numel *= d
        end = max(end, layout.data_start + offset + numel // block * type_size)
    if end > layout.size:
        problems.append(f"the tensor data needs {end:,} bytes, the file has {layout.size:,}")
    for key in ("general.architecture", *required_keys):
        if key not in layout.keys:
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
