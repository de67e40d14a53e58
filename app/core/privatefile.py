"""The one way the app writes a file or makes a directory that may hold patient data.

Every export, ``batch --output``, the config, the model registry and the prepared demo model go through
``private_file`` (or ``write_private``, its one-shot form). It lives in ``app.core`` rather than
``app.store`` because the config and the registry, which sit below the store, write private files too.

What a hospital's security reviewer expects, and how it is met:
- The result is readable by the user alone (0600), whatever was there before: the data goes to a NEW
  temporary file created 0600 (``O_EXCL``, never an existing one) in the target's directory and is renamed
  over the target at the end, so an existing 0644 file is replaced by a 0600 one, not rewritten in place.
- Nothing is written through a symbolic link unless the caller asks (``follow_symlinks``): a link planted
  at the output path could otherwise send patient text anywhere the user can write.
- A failed or interrupted write leaves the previous file (if any) untouched and no temporary file behind.
- A full disk is reported as a full disk.
- Directories the app creates are 0700, each one of them (``mkdir -p`` would create the parents 0755).

Problems are raised as ``OutputError`` (a usage error, exit code 2): the user chose the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from app.core.errors import UsageError


class OutputError(UsageError):
    """An output path that cannot be written (a directory, a missing directory, a link, no permission, full)."""


def os_problem(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full (no space left on device)"
    if exc.errno == errno.EFBIG:
        return "the file is larger than this system allows (file size limit)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is (from its ``st_mode``), in words a user recognises."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each readable by the user alone (0700).

    Directories that already exist keep their mode, except ``path`` itself, which is made 0700 when it is
    ours to own (it is the app's data or config directory, or a directory the app created).
    """
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
    if not path.is_dir():
        raise OutputError(f"{path} is not a directory")
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def check_output(path: str | os.PathLike[str], *, follow_symlinks: bool = False, what: str = "output") -> Path:
    """Refuse an output path before any work starts; return the path that will be written.

    Checks: not a directory, not a link (unless ``follow_symlinks``: then its target is written), not an
    existing device, FIFO or socket (it would be replaced), its directory exists and is writable. Creating the
    temporary file is the final proof; this is the early one (``batch --output dir.csv`` must fail before an
    hour of model runs, not after).
    """
    p = Path(path).expanduser()
    if p.is_symlink():
        if not follow_symlinks:
            raise OutputError(
                f"{what} {p} is a symbolic link; refusing to write patient data through it "
                "(pass --follow-symlinks to write to its target)"
            )
        p = p.resolve()
    if p.is_dir():
        raise OutputError(f"{what} {p} is a directory; give a file name")
    with contextlib.suppress(OSError):  # not there (or not reachable): the checks below say why
        if not stat.S_ISREG(mode := os.stat(p).st_mode):
            # The write renames a new 0600 file over the path: a device (/dev/null as root), a FIFO or a
            # socket would be replaced by a file of patient data, and whatever read it would never see it.
            raise OutputError(
                f"{what} {p} is not a regular file ({file_kind(mode)}); refusing to replace it: give a file name"
            )
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{what} directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{what} directory {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} in {parent}: permission denied")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"cannot write {what} {p}: permission denied")
    return p


def _new_temp(target: Path) -> tuple[int, Path]:
    for i in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{i}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600), tmp
        except FileExistsError:
            continue
    raise OutputError(f"cannot create a temporary file beside {target}")


@contextmanager
def private_file(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    follow_symlinks: bool = False,
    what: str = "output",
    encoding: str = "utf-8",
    newline: str | None = "",
) -> Iterator[IO[Any]]:
    """Write ``path`` atomically as a 0600 file: ``with private_file(p) as fh: fh.write(...)``.

    ``mode`` is ``"w"`` (text) or ``"wb"``. On an exception inside the block the target is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', not {mode!r}")
    target = check_output(path, follow_symlinks=follow_symlinks, what=what)
    try:
        fd, tmp = _new_temp(target)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {target}: {os_problem(exc)}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            fh = os.fdopen(fd, mode, encoding=encoding, newline=newline) if mode == "w" else os.fdopen(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if target.is_symlink() and not follow_symlinks:  # planted while we wrote
            raise OutputError(f"{what} {target} became a symbolic link while it was written; refused")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {what} {target}: {os_problem(exc)}; nothing was written (a previous file there is unchanged)"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(
    path: str | os.PathLike[str], data: str | bytes, *, follow_symlinks: bool = False, what: str = "file"
) -> None:
    """Write ``data`` to ``path`` atomically, readable by the user alone; its directory is created 0700."""
    p = Path(path)
    if not p.parent.exists():
        private_dir(p.parent)
    with private_file(p, "wb", follow_symlinks=follow_symlinks, what=what) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
