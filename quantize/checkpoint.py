"""Reading a Hugging Face checkpoint directory without loading it: config, files, tensor metadata.

Safetensors headers are parsed here without torch; their data is streamed (read once, hashed as read)
by ``quantize.stream``. PyTorch ``.bin`` tensors are read one at a time: each read maps its file afresh
and drops the mapping afterwards, so the pages of a multi-gigabyte shard that one tensor touched do not
stay resident.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core import safejson
from app.core.hashing import sha256_file
from quantize.errors import QuantizeError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: str
    """Source dtype as torch names it without the prefix: ``float32``, ``float16``, ``bfloat16``."""
    file: Path
    offset: int = -1
    """Safetensors: absolute byte offset of the data in ``file``; -1 for PyTorch ``.bin`` files."""
    nbytes: int = 0

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]
    weight_files: list[Path]
    tensors: dict[str, TensorMeta] = field(default_factory=dict)
    headers: dict[Path, bytes] = field(default_factory=dict)
    """Safetensors file -> its header bytes (length prefix + JSON) as read when indexing."""

    @property
    def format(self) -> str:
        return "safetensors" if self.weight_files[0].suffix == ".safetensors" else "bin"

    def source_files(self) -> list[Path]:
        """Every file whose content determines the GGUF: config, tokenizer files and weights."""
        names = ["config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"]
        extra = [self.path / n for n in names if (self.path / n).is_file()]
        return extra + self.weight_files


def is_gguf_file(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def read_json(path: Path, what: str) -> Any:
    """A small JSON file of a checkpoint (config, shard index, training manifest), or a QuantizeError.

    Unreadable, not UTF-8, not JSON and nested too deeply for the parser (``[[[[...`` raises
    RecursionError, not a ValueError) are each one message naming the file, never a traceback."""
    try:
        return safejson.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        why = exc.strerror or str(exc)
    except UnicodeDecodeError:
        why = "not UTF-8 text"
    except ValueError as exc:
        why = str(exc)
    raise QuantizeError(f"{path} is not a readable {what}: {why}")


def _weight_files(path: Path) -> list[Path]:
    for stem, ext in (("model", "safetensors"), ("pytorch_model", "bin")):
        index = path / f"{stem}.{ext}.index.json"
        if index.is_file():
            listing = read_json(index, "shard index")
            weight_map = listing.get("weight_map") if isinstance(listing, dict) else None
            if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
                raise QuantizeError(f"{index.name} has no weight_map of tensor names to shard files")
            files = [path / f for f in sorted(set(weight_map.values()))]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise QuantizeError(f"{index.name} names shards that are missing: {', '.join(missing)}")
            return files
        single = path / f"{stem}.{ext}"
        if single.is_file():
            return [single]
    found = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    return found


def checkpoint_files(path: Path) -> list[Path]:
    """The weight files of a complete Hugging Face checkpoint directory, or a QuantizeError saying what is
    missing. The one check of a ``--checkpoint``/checkpoint argument: a path that does not exist is "no such
    checkpoint" here, before transformers could take it for a model id on the hub."""
    if not path.exists():
        raise QuantizeError(f"no such checkpoint: {path} does not exist (expected a Hugging Face checkpoint directory)")
    if is_gguf_file(path) or path.suffix == ".gguf":
        raise QuantizeError(
            f"{path} is already a GGUF file; convert takes a Hugging Face checkpoint directory "
            "(use `asclepius quantize quantize` to change a GGUF's type)"
        )
    if not path.is_dir():
        raise QuantizeError(f"{path}: not a directory (expected a Hugging Face checkpoint directory)")
    problems = []
    if not (path / "config.json").is_file():
        problems.append("config.json is missing")
    if not (path / "tokenizer.model").is_file() and not (path / "tokenizer.json").is_file():
        problems.append("no tokenizer: expected tokenizer.model (SentencePiece) or tokenizer.json (BPE)")
    files = _weight_files(path)
    if not files:
        problems.append("no weights: expected *.safetensors or pytorch_model*.bin (with an index if sharded)")
    if problems:
        raise QuantizeError(f"{path} is not a complete checkpoint: " + "; ".join(problems))
    return files


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory as a JSON object (a list or a number is refused here)."""
    config = read_json(path / "config.json", "Hugging Face config")
    if not isinstance(config, dict):
        raise QuantizeError(f"{path / 'config.json'} is not a readable Hugging Face config: not a JSON object")
    return config


def open_checkpoint(path: Path) -> Checkpoint:
    """Check the directory is a complete HF checkpoint and index its tensors (metadata only)."""
    path = Path(path)
    files = checkpoint_files(path)
    ckpt = Checkpoint(path, read_config(path), files)
    for f in files:
        if f.suffix == ".safetensors":
            ckpt.headers[f], metas = read_safetensors_header(f)
        else:
            metas = _read_bin_metas(f)
        for meta in metas:
            if meta.name in ckpt.tensors:
                raise QuantizeError(
                    f"tensor {meta.name} appears in both {ckpt.tensors[meta.name].file.name} and {f.name}"
                )
            ckpt.tensors[meta.name] = meta
    return ckpt


_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64"}
_ST_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}
_ST_ITEMSIZE |= {"I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_ST_MAX_HEADER = 100 << 20  # the safetensors library's own limit


def read_safetensors_header(f: Path) -> tuple[bytes, list[TensorMeta]]:
    """Parse a safetensors header without a framework (and without mapping the file): the raw header
    bytes and each tensor's dtype, shape and absolute data range, checked against the file's size."""
    size = f.stat().st_size
    with f.open("rb") as fh:
        prefix = fh.read(8)
        n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if n < 2 or n > _ST_MAX_HEADER or 8 + n > size:
            raise QuantizeError(f"{f.name}: not a safetensors file (bad header length; truncated or damaged)")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        start = 8 + n
        metas, end_max = [], 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            code, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
            numel = 1
            for d in shape:
                numel *= d
            if code not in _ST_ITEMSIZE or not 0 <= begin <= end or end - begin != numel * _ST_ITEMSIZE[code]:
                raise ValueError(f"tensor {name}: dtype {code}, shape {list(shape)} and data range disagree")
            metas.append(TensorMeta(name, shape, _st_dtype(code), f, start + begin, end - begin))
            end_max = max(end_max, end)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise QuantizeError(f"{f.name}: damaged safetensors header ({exc})") from None
    except RecursionError:  # nested deeper than the JSON parser goes: no real header is
        raise QuantizeError(f"{f.name}: damaged safetensors header (nested too deeply)") from None
    if start + end_max > size:
        raise QuantizeError(f"{f.name}: truncated: its header needs {start + end_max:,} bytes, the file has {size:,}")
    spans = sorted((m.offset, m.offset + m.nbytes, m.name) for m in metas if m.nbytes)
    for (_, e0, a), (b1, _, b) in itertools.pairwise(spans):
        if b1 < e0:
            raise QuantizeError(f"{f.name}: damaged safetensors header (tensors {a} and {b} overlap)")
    return prefix + raw, metas


def _read_bin_metas(f: Path) -> list[TensorMeta]:
    state = _torch_load(f)
    return [TensorMeta(k, tuple(v.shape), str(v.dtype).removeprefix("torch."), f) for k, v in state.items()]


def _st_dtype(code: str) -> str:
    return _ST_DTYPES.get(code, code.lower())


def _torch_load(f: Path) -> dict[str, Any]:
    import torch

    try:
        # mmap: tensors stay on disk until touched; weights_only: a checkpoint must not run code.
        return torch.load(f, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:
        raise QuantizeError(f"{f.name}: cannot read as a PyTorch checkpoint ({exc})") from None


def load_tensor(meta: TensorMeta) -> Any:
    """One tensor of a PyTorch ``.bin`` file as a torch tensor owning its memory (the mapping is dropped on
    return). Safetensors files are streamed by ``quantize.stream`` instead."""
    state = _torch_load(meta.file)
    t = state[meta.name].clone()
    del state
    return t


def hash_sources(ckpt: Checkpoint, on_file: Callable[[Path], None] | None = None) -> dict[str, str]:
    out = {}
    for f in ckpt.source_files():
        if on_file:
            on_file(f)
        out[f.name] = sha256_file(f)
    return out


TRAIN_MANIFEST = "asclepius-train-manifest.json"
"""Written by ``training.trainer`` beside the checkpoint it trained (``training.trainer.MANIFEST_NAME``)."""


def manifest_prompt_style(ckpt_dir: Path) -> str | None:
    """The prompt style a trained checkpoint records in its manifest, or None when there is none."""
    path = Path(ckpt_dir) / TRAIN_MANIFEST
    if not path.is_file():
        return None
    manifest = read_json(path, "training manifest")
    if not isinstance(manifest, dict):
        raise QuantizeError(f"{path} is not a readable training manifest: not a JSON object")
    style = manifest.get("prompt_style")
    return style if isinstance(style, str) else None
