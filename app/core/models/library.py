"""The model manager's operations, one API for ``asclepius models ...`` and the desktop Models screen.

- ``add_model``: import a GGUF, optionally copying it into the app's model library first (the default for
  removable media, ``is_removable``); the copy is hashed while it is written (one pass, at the disk's speed).
- ``remove_model``: forget an entry; the file is deleted only when it is the app's own library copy and the
  caller confirmed (``delete_copy``); the built-in demo model stays.
- ``rename_model``: the name shown (the entry's id, its path, does not change; runs keep the sha256 and file
  name they were logged with).
- ``default_setting`` / ``is_default``: what to save as the configured default, and whether an entry is it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from app.core.errors import ModelError, UsageError
from app.core.hashing import CHUNK, ProgressFn, copy_hashing
from app.core.models.entries import MISSING, check_name, entry_key
from app.core.models.files import check_loadable
from app.core.models.header import read_gguf
from app.core.models.registry import Registry, check_style
from app.core.privatefile import OutputError, private_dir
from app.core.types import ModelInfo

REMOVABLE_ROOTS = ("/media/", "/run/media/", "/mnt/", "/Volumes/")
"""Where Linux desktops (and macOS) mount USB sticks and card readers."""


def is_removable(path: str | Path, *, library: Path | None = None, sys_root: Path = Path("/sys")) -> bool:
    """A file on removable media: under a removable-media mount root, or on another filesystem than the
    ``library`` whose block device says it is removable (``/sys/block/*/removable``) or hangs off a USB bus
    (USB hard disks report ``removable`` 0). Such a model is copied into the library by default, so unplugging
    the stick does not take it away."""
    p = Path(path).expanduser()
    try:
        resolved = p.resolve()
    except (OSError, RuntimeError):
        return False
    if str(resolved).startswith(REMOVABLE_ROOTS):
        return True
    try:
        dev = os.stat(resolved).st_dev
        if library is not None and os.stat(_existing(library)).st_dev == dev:
            return False
    except OSError:
        return False
    return removable_device(os.major(dev), os.minor(dev), sys_root)


def _existing(p: Path) -> Path:
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def removable_device(major: int, minor: int, sys_root: Path = Path("/sys")) -> bool:
    """Whether block device ``major:minor`` (a disk or one of its partitions) is removable, per sysfs."""
    try:
        real = (sys_root / "dev" / "block" / f"{major}:{minor}").resolve(strict=True)
        inside = real.relative_to(sys_root.resolve())
    except (OSError, ValueError, RuntimeError):
        return False  # not a block device (tmpfs, overlay, a network share): not removable media
    if any(part.startswith("usb") for part in inside.parts):
        return True
    for d in (real, real.parent):  # a partition's directory sits inside its disk's, which has "removable"
        try:
            return (d / "removable").read_text().strip() == "1"
        except OSError:
            continue
    return False


def copy_into_library(
    library: Path, src: Path, progress: ProgressFn | None = None, chunk: int = CHUNK
) -> tuple[Path, str]:
    """Copy ``src`` into ``library`` (0600, through a partial file); (copy, sha256).

    One pass over the file, as ``cp`` is: each block is read once, hashed and written; the copy is fsynced
    before it is renamed into place, so a crash never leaves a half file under the model's name and a write
    error (a full or failing disk) surfaces here. ``progress(done, total)`` counts bytes; an exception from it
    (Cancel) deletes the partial copy. An existing library file of the same name is never overwritten: the
    copy gets a numbered name.
    """
    private_dir(library)
    size = src.stat().st_size
    free = shutil.disk_usage(library).free
    if free < size:
        raise OutputError(
            f"the model library {library} has {free / 1e9:.2f} GB free; copying {src.name} needs {size / 1e9:.2f} GB. "
            "Free some space, or import the model without copying it"
        )
    target = library / src.name
    n = 1
    while target.exists():
        target = library / f"{src.stem}-{n}{src.suffix}"
        n += 1
    tmp = target.with_name(f".{target.name}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as out:
            sha = copy_hashing([src], out, _synced_progress(out, size, progress), chunk=chunk)
            out.flush()
            os.fsync(out.fileno())
        if progress is not None:
            progress(size, size)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
        raise OutputError(
            f"could not copy {src} into the model library {library}: {why}; nothing was imported"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, sha


SYNC_EVERY = 64 << 20
"""Bytes between two write-back steps of a copy: the progress counts bytes on the disk, not in the page cache,
so the bar does not sit at 100 % while gigabytes are still being written back, and the copy never fills the
page cache with gigabytes of dirty pages."""

_SYNC_FILE_RANGE_WAIT_BEFORE, _SYNC_FILE_RANGE_WRITE, _SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's ``sync_file_range`` (write-behind without waiting), or None where libc lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def _synced_progress(out: BinaryIO, size: int, progress: ProgressFn | None) -> ProgressFn:
    """A ``copy_hashing`` progress callback that writes the copy behind as it goes and reports what has
    reached the disk; the last report (``size``) comes from the caller, after the final ``fsync``.

    Every ``SYNC_EVERY`` bytes the new window is handed to the disk without waiting, and the caller waits only
    for the window before it (``sync_file_range``, as ``dd``-style write-behind does): reading, hashing and
    writing overlap. Without ``sync_file_range`` each window is ``fdatasync``-ed instead."""
    sfr = [_sync_file_range()]
    state = {"started": 0, "synced": 0}
    fd = out.fileno()

    def write_behind(start: int, done: int) -> bool:
        """Start writing [start, done) and wait for what came before; False where the filesystem refuses
        ``sync_file_range`` (some network and FUSE filesystems): the copy then syncs with ``fdatasync``."""
        fn, prev = sfr[0], state["synced"]
        wait = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER
        if fn is None:
            return False
        for offset, length, flags in ((start, done - start, _SYNC_FILE_RANGE_WRITE), (prev, start - prev, wait)):
            if length > 0 and fn(fd, offset, length, flags) != 0:
                err = ctypes.get_errno()
                if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE):
                    sfr[0] = None
                    return False
                raise OSError(err, os.strerror(err))
        state["synced"] = start
        return True

    def report(done: int, _total: int) -> None:
        if done - state["started"] >= SYNC_EVERY:
            out.flush()
            if not write_behind(state["started"], done):
                os.fdatasync(fd)
                state["synced"] = done
            state["started"] = done
        if progress is not None:
            progress(min(state["synced"], size - 1) if size else 0, size)

    return report


def add_model(
    reg: Registry,
    path: str | Path,
    *,
    copy: bool = False,
    prompt_style: str | None = None,
    name: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[ModelInfo, str]:
    """Import a GGUF; returns (its entry, a note for the user, possibly empty).

    Each file path is its own entry, so a byte-identical copy of a registered model (the demo's included) is
    listed beside it and the existing entry keeps its path, name and badge; the note says they are identical.
    ``copy``: copy the file into the library first and register the copy (a copy whose bytes are already in
    the library is not kept twice).
    """
    if prompt_style is not None:
        check_style(prompt_style)
    if name is not None:
        name = check_name(name)
    src = Path(path).expanduser()
    library = reg.paths.models_dir
    notes: list[str] = []
    if copy and Path(entry_key(src)).parent != Path(entry_key(library)):
        read_gguf(src)  # fail fast, before copying gigabytes (import_model checks a file it registers in place)
        check_loadable(src)
        target, sha = copy_into_library(library, src, progress)
        same = [m for m in reg.list() if m.sha256 == sha and m.in_library and m.status != MISSING]
        if same:
            target.unlink()
            return same[0], f"already in the model library as {same[0].display_name} ({same[0].path})"
        info = reg.add_library_copy(target, sha, prompt_style=prompt_style, name=name)
        notes.append(f"copied into the model library: {target}")
    else:
        info = reg.import_model(src, prompt_style=prompt_style, progress=progress, name=name)
    twins = [m for m in reg.list() if m.sha256 == info.sha256 and m.path != info.path]
    if twins:
        t = twins[0]
        notes.append(f"it is identical (same sha256) to {t.display_name} at {t.path}; both are listed")
    return info, "; ".join(notes)


def remove_model(reg: Registry, ref: str, *, delete_copy: bool = False) -> tuple[ModelInfo, Path | None]:
    """Forget a model; returns (its entry, the library copy deleted or None).

    The user's own files are never deleted: only an entry's copy in the app's library, and only with
    ``delete_copy`` (the front end asked). Runs in the evaluation log keep the sha256 and path they were
    logged with.
    """
    info = reg.get(ref, strict=True)
    if reg.is_builtin(info):
        raise UsageError("the demo model is built in and cannot be removed")
    deleted = None
    p = Path(info.path)
    if delete_copy and info.in_library and p.parent == Path(entry_key(reg.paths.models_dir)) and p.is_file():
        try:
            p.unlink()
        except OSError as exc:
            raise OutputError(
                f"could not delete the library copy {p}: {exc.strerror or exc}; nothing was removed"
            ) from None
        deleted = p
    reg.forget(info.path)
    return info, deleted


def rename_model(reg: Registry, ref: str, name: str) -> ModelInfo:
    """Change the name shown for a model (its id, the path, stays)."""
    name = check_name(name)
    info = reg.get(ref, strict=True)
    if reg.is_builtin(info):
        raise UsageError("the demo model's name stays as it is, so it is always recognisable as the demo")
    return reg.rename(info.path, name)


def default_setting(reg: Registry, ref: str) -> tuple[ModelInfo, str]:
    """(the entry, the value to save as ``AppConfig.default_model``): the entry's id, or "" for the built-in
    demo. A model whose file is missing cannot become the default."""
    info = reg.get(ref, strict=True)
    if info.status == MISSING:
        raise ModelError(f"the file of {info.display_name} is missing ({info.path}); it cannot be the default")
    return info, "" if reg.is_builtin(info) else info.path


def is_default(reg: Registry, info: ModelInfo, setting: str) -> bool:
    """Whether ``info`` is the model the saved ``setting`` names (a path, an older sha256, or "" for the demo)."""
    if not setting:
        return reg.is_builtin(info)
    try:
        found = reg.find(setting)
    except ModelError:
        return False
    return found is not None and found.path == info.path
