"""The model manager (issue #10 item 5): one registry entry per file path, models.json v2 and its migration,
a damaged registry kept aside, status ok / missing / changed, library copies (checked, cancellable),
remove / rename, removable media, and the demo-model fallback for a missing default."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from app.core.config import Paths
from app.core.errors import Cancelled, ModelError, UsageError
from app.core.hashing import sha256_file
from app.core.models import (
    CHANGED,
    MISSING,
    OK,
    REGISTRY_VERSION,
    Registry,
    add_model,
    default_setting,
    is_default,
    is_removable,
    mark_missing,
    removable_device,
    remove_model,
    rename_model,
)
from app.core.models import library as model_library
from app.core.privatefile import OutputError
from tests.fixtures_llama import tiny_llama_gguf  # noqa: F401  (the fixture: a tiny real GGUF)


def _paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "data", tmp_path / "cfg")


def _place(src: Path, where: Path) -> Path:
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, where)
    return where


@pytest.fixture
def demo_paths(tmp_path, demo_model):
    """A data directory of the test's own with the demo GGUF hard-linked in (hashed once, not assembled)."""
    p = _paths(tmp_path)
    p.models_dir.mkdir(parents=True)
    os.link(demo_model.path, p.models_dir / os.path.basename(demo_model.path))
    return p


def test_identical_files_are_two_entries_and_the_first_keeps_its_path_and_name(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    first, note = add_model(reg, _place(tiny_llama_gguf, tmp_path / "a" / "tiny.gguf"), name="Mine")
    assert note == "" and first.path == str((tmp_path / "a" / "tiny.gguf").resolve())
    twin, note = add_model(reg, _place(tiny_llama_gguf, tmp_path / "b" / "tiny.gguf"))
    assert "identical" in note and first.path in note
    assert twin.path != first.path and twin.sha256 == first.sha256
    again = Registry(reg.paths)
    by_path = {m.path: m for m in again.list()}
    assert set(by_path) == {first.path, twin.path}, "one entry per file path"
    assert by_path[first.path].name == "Mine" and by_path[twin.path].name == "tiny-llama"
    # Importing the same path again updates that entry; it does not add one.
    add_model(again, first.path)
    assert len(Registry(reg.paths).list()) == 2
    # A sha256 names the content: a run can take either file; removing needs one file.
    assert again.find(first.sha256[:10]).sha256 == first.sha256
    with pytest.raises(ModelError, match="matches 2 models"):
        remove_model(again, first.sha256)
    with pytest.raises(ModelError, match="matches 2 models"):
        again.find("tiny.gguf")  # the same file name in two folders


def test_v1_registry_is_migrated_with_a_backup(tmp_path, tiny_llama_gguf):  # noqa: F811
    paths = _paths(tmp_path)
    outside = _place(tiny_llama_gguf, tmp_path / "models" / "tiny.gguf")
    copy = _place(tiny_llama_gguf, paths.models_dir / "tiny.gguf")
    sha = sha256_file(outside)
    st = os.stat(outside)

    def v1_entry(path: Path, name: str, **extra) -> dict:
        return {
            "architecture": "llama",
            "name": name,
            "context_length": 128,
            "file_type": "F32",
            "parameter_count": 1000,
            "prompt_style": "asclepius",
            "provenance": {},
            "size_bytes": st.st_size,
            "path": str(path.resolve()),
            "file_name": path.name,
            "sha256": sha,
            "mtime": st.st_mtime,
            "mtime_ns": os.stat(path).st_mtime_ns,
            "quick_sha256": "x",
            "is_demo": False,
            "style_override": "plain-qa",
            "verified": True,
            **extra,
        }

    # Version 1 was keyed by sha256: one content, one entry; the test writes what an older version wrote.
    v1 = {"version": 1, "models": [v1_entry(outside, "Outside", verified=False), v1_entry(copy, "Library copy")]}
    raw = json.dumps(v1, indent=2)
    paths.registry_file.write_text(raw)
    reg = Registry(paths)
    by_path = {m.path: m for m in reg.list()}
    assert set(by_path) == {str(outside.resolve()), str(copy.resolve())}
    assert by_path[str(outside.resolve())].name == "Outside" and not by_path[str(outside.resolve())].verified
    assert by_path[str(copy.resolve())].in_library and not by_path[str(outside.resolve())].in_library
    assert all(m.prompt_style == "plain-qa" and m.sha256 == sha for m in by_path.values())
    saved = json.loads(paths.registry_file.read_text())
    assert saved["version"] == REGISTRY_VERSION == 2 and saved["key"] == "path"
    assert [e["path"] for e in saved["models"]] == [str(outside.resolve()), str(copy.resolve())]
    assert all("mtime" not in e and "in_library" in e for e in saved["models"])
    backup = paths.registry_file.with_name("models.json.v1")
    assert backup.read_text() == raw, "the version-1 file is kept, byte for byte"
    for f in (paths.registry_file, backup):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert not [p for p in paths.data_dir.iterdir() if p.name.endswith(".tmp")], "written atomically"
    assert Registry(paths).list() == reg.list(), "version 2 reads back the same"


@pytest.mark.parametrize(
    "content",
    ['{"version": 2, "models": [', "[]", '{"version": 9, "models": []}', '{"models": [{"path": "/x"}]}', "\xff\xfe"],
    ids=["truncated", "not-an-object", "future-version", "entry-missing-fields", "not-utf8"],
)
def test_a_damaged_registry_is_kept_aside_and_reported(tmp_path, tiny_llama_gguf, content):  # noqa: F811
    paths = _paths(tmp_path)
    paths.data_dir.mkdir(parents=True)
    raw = content.encode("latin-1")
    paths.registry_file.write_bytes(raw)
    reg = Registry(paths)
    [aside] = [p for p in paths.data_dir.iterdir() if p.name.startswith("models.json.damaged-")]
    assert aside.read_bytes() == raw, "the damaged file is kept, not lost"
    assert "damaged" in reg.notice and aside.name in reg.notice
    assert reg.list() == [] and not paths.registry_file.exists()
    info, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "m" / "tiny.gguf"))
    assert [m.path for m in Registry(paths).list()] == [info.path]
    assert Registry(paths).notice == ""


def test_status_missing_and_changed_clear_verified_until_hashed_again(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    f = _place(tiny_llama_gguf, tmp_path / "usb" / "tiny.gguf")
    info, _ = add_model(reg, f)
    assert (info.status, info.verified) == (OK, True)
    os.utime(f, ns=(1, 1))  # mtime moved: "changed", not verified, until hashed again
    m = Registry(reg.paths).get(info.path)
    assert (m.status, m.verified) == (CHANGED, False)
    ok_info, ok = reg.verify(info.path)
    assert ok and (ok_info.status, ok_info.verified) == (OK, True)
    assert Registry(reg.paths).get(info.path).verified
    hidden = f.with_suffix(".away")
    f.rename(hidden)  # the stick is pulled out
    m = Registry(reg.paths).get(info.path)
    assert (m.status, m.verified) == (MISSING, False), '"Verified: yes" is never shown for a missing file'
    with pytest.raises(ModelError, match="not found"):
        reg.verify(info.path)
    hidden.rename(f)  # back again: the file is as it was, but it was out of sight: verify again
    m = Registry(reg.paths).get(info.path)
    assert m.status == OK and not m.verified
    assert reg.verify(info.path)[1] and Registry(reg.paths).get(info.path).verified


def test_content_changed_at_a_path_keeps_the_entry_id_and_the_users_name(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    f = _place(tiny_llama_gguf, tmp_path / "m" / "tiny.gguf")
    info, _ = add_model(reg, f)
    rename_model(reg, info.path, "  Ward   model ")
    with f.open("r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        fh.write(b"\x01")
    used = Registry(reg.paths).resolve(info.path)
    assert used.path == info.path and used.sha256 != info.sha256
    assert used.name == "Ward model" and [m.path for m in Registry(reg.paths).list()] == [info.path]


def test_copy_into_the_library_is_one_pass_with_progress(tmp_path, tiny_llama_gguf, monkeypatch):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    src = _place(tiny_llama_gguf, tmp_path / "stick" / "tiny.gguf")
    size = src.stat().st_size
    seen: list[tuple[int, int]] = []
    opened: list[str] = []
    real_open = Path.open

    def watch_open(self: Path, *a, **k):
        opened.append(self.name)
        return real_open(self, *a, **k)

    monkeypatch.setattr(model_library, "SYNC_EVERY", 4096)  # the tiny file then syncs between blocks
    monkeypatch.setattr(Path, "open", watch_open)
    info, note = add_model(reg, src, copy=True, progress=lambda d, t: seen.append((d, t)))
    monkeypatch.setattr(Path, "open", real_open)
    assert "copied into the model library" in note and info.in_library
    assert Path(info.path).parent == reg.paths.models_dir.resolve() and info.sha256 == sha256_file(src)
    assert stat.S_IMODE(os.stat(info.path).st_mode) == 0o600
    assert not any(name.endswith(".partial") for name in opened), "the copy is never read back: one pass"
    assert {t for _, t in seen} == {size}, "the bar counts the file's bytes once"
    assert [d for d, _ in seen].count(size) == 1 and seen[-1][0] == size, "100 % only after the fsync"
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    # The same bytes copied again are not kept twice.
    again, note = add_model(reg, src, copy=True)
    assert again.path == info.path and "already in the model library" in note
    assert sorted(p.name for p in reg.paths.models_dir.iterdir()) == ["tiny.gguf"]
    # The source is gone (the stick is out): the library copy still works.
    src.unlink()
    assert Registry(reg.paths).resolve(info.path).status == OK


def test_a_cancelled_or_corrupted_copy_leaves_nothing(tmp_path, tiny_llama_gguf, monkeypatch):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    src = _place(tiny_llama_gguf, tmp_path / "stick" / "tiny.gguf")

    def cancel(done: int, total: int) -> None:
        if done > total // 4:
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        add_model(reg, src, copy=True, progress=cancel)
    assert list(reg.paths.models_dir.iterdir()) == [] and reg.list() == []

    def full_disk(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model_library.os, "fsync", full_disk)  # the disk fills up as the copy is written back
    with pytest.raises(OutputError, match="the disk is full; nothing was imported"):
        add_model(reg, src, copy=True)
    assert list(reg.paths.models_dir.iterdir()) == [] and Registry(reg.paths).list() == []


def test_remove_deletes_only_a_confirmed_library_copy(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    own = _place(tiny_llama_gguf, tmp_path / "mine" / "tiny.gguf")
    mine, _ = add_model(reg, own)
    _, deleted = remove_model(reg, mine.path, delete_copy=True)
    assert deleted is None and own.exists(), "the user's own file is never deleted"
    assert Registry(reg.paths).find(mine.path) is None
    lib, _ = add_model(reg, own, copy=True)
    _, deleted = remove_model(reg, lib.path)  # not confirmed: the copy stays
    assert deleted is None and Path(lib.path).exists() and Registry(reg.paths).list() == []
    lib, _ = add_model(reg, lib.path)  # registered where it is, in the library, but not made by the app
    assert not lib.in_library
    _, deleted = remove_model(reg, lib.path, delete_copy=True)
    assert deleted is None and Path(lib.path).exists()
    os.unlink(lib.path)
    lib, _ = add_model(reg, own, copy=True)
    _, deleted = remove_model(reg, lib.path, delete_copy=True)
    assert deleted == Path(lib.path) and not deleted.exists() and own.exists()
    with pytest.raises(ModelError, match="no registered model"):
        remove_model(reg, lib.path)


def test_rename_keeps_the_id_and_refuses_bad_names(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    info, _ = add_model(reg, _place(tiny_llama_gguf, tmp_path / "m" / "tiny.gguf"))
    renamed = rename_model(reg, "tiny-llama", "Discharge 7B")
    assert renamed.path == info.path and renamed.sha256 == info.sha256
    assert Registry(reg.paths).get("Discharge 7B").path == info.path, "the new name finds it"
    for bad in (" ", "x" * 121):
        with pytest.raises(UsageError, match="1 to 120"):
            rename_model(reg, info.path, bad)
    assert Registry(reg.paths).get(info.path).name == "Discharge 7B"


def test_builtin_demo_stays_a_copy_of_it_is_its_own_entry_and_a_missing_default_falls_back(
    tmp_path,
    demo_paths,
    demo_model,
    tiny_llama_gguf,  # noqa: F811
):
    reg = Registry(demo_paths)
    demo = reg.ensure_demo()
    assert reg.is_builtin(demo)
    twin, note = add_model(reg, _place(Path(demo_model.path), tmp_path / "elsewhere" / "same.gguf"))
    assert "identical" in note and twin.path != demo.path and not reg.is_builtin(twin)
    kept = Registry(demo_paths).get(demo.path)
    assert kept.is_demo and kept.path == demo.path and kept.name == demo.name, "the demo entry is unchanged"
    assert twin.is_demo, "the same bytes are labelled as the demo model too"
    assert Registry(demo_paths).find(demo.sha256).path == demo.path, "by sha256: the built-in entry"
    with pytest.raises(UsageError, match="built in"):
        remove_model(reg, demo.path)
    with pytest.raises(UsageError, match="demo"):
        rename_model(reg, demo.path, "Other")
    remove_model(reg, twin.path)
    # The default model on a USB stick that was pulled out.
    usb = _place(tiny_llama_gguf, tmp_path / "usb" / "tiny.gguf")
    info, _ = add_model(reg, usb)
    assert default_setting(reg, info.path) == (info, info.path)
    assert default_setting(reg, demo.path)[1] == "", "the demo default is saved as empty"
    usb.unlink()
    with pytest.raises(ModelError, match="cannot be the default"):
        default_setting(reg, info.path)
    for setting in (info.path, info.sha256):  # a path, or a sha256 from an older config
        later = Registry(demo_paths, setting)
        assert is_default(later, later.get(info.path), setting)
        with pytest.raises(ModelError, match="not found"):
            later.resolve(None)  # without a fallback the caller is told
        notices: list[str] = []
        used = later.resolve(None, on_fallback=notices.append)
        assert later.is_builtin(used) and len(notices) == 1
        assert "missing" in notices[0] and "demo model" in notices[0] and str(usb.resolve()) in notices[0]
        assert later.default_model == setting, "the saved default is not changed"
    # A default that is no longer registered at all falls back too.
    notices = []
    assert Registry(demo_paths, "/nowhere/gone.gguf").resolve(None, on_fallback=notices.append).is_demo
    assert "not registered" in notices[0]


def test_mark_missing_by_sha_or_id_is_persisted(tmp_path, tiny_llama_gguf):  # noqa: F811
    reg = Registry(_paths(tmp_path))
    f = _place(tiny_llama_gguf, tmp_path / "m" / "tiny.gguf")
    info, _ = add_model(reg, f)
    mark_missing(reg, info.sha256)  # present: nothing is marked
    assert json.loads(reg.paths.registry_file.read_text())["models"][0]["verified"] is True
    f.unlink()
    mark_missing(reg, info.sha256)
    assert json.loads(reg.paths.registry_file.read_text())["models"][0]["verified"] is False


def _fake_sysfs(root: Path, dev: int, chain: str, removable: str) -> Path:
    """/sys/dev/block/MAJ:MIN -> the partition's directory inside its disk's, which has ``removable``."""
    disk = root / chain
    (disk / "sdb1").mkdir(parents=True)
    (disk / "removable").write_text(removable + "\n")
    link = root / "dev" / "block" / f"{os.major(dev)}:{os.minor(dev)}"
    link.parent.mkdir(parents=True)
    link.symlink_to(disk / "sdb1")
    return root


@pytest.mark.parametrize(
    ("chain", "flag", "expected"),
    [
        ("devices/pci0000:00/0000:00:1d.0/block/sdb", "1", True),
        ("devices/pci0000:00/0000:00:1d.0/block/sdb", "0", False),
        ("devices/pci0000:00/0000:00:14.0/usb2/2-1/host6/block/sdb", "0", True),  # a USB disk says 0
    ],
    ids=["removable-flag", "fixed-disk", "usb-disk"],
)
def test_removable_media_from_sysfs(tmp_path, chain, flag, expected):
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    dev = os.stat(f).st_dev
    sys_root = _fake_sysfs(tmp_path / "sys", dev, chain, flag)
    assert removable_device(os.major(dev), os.minor(dev), sys_root) is expected
    assert is_removable(f, sys_root=sys_root) is expected
    # On the same filesystem as the library it is never "removable media".
    assert is_removable(f, library=tmp_path / "data" / "models", sys_root=sys_root) is False


def test_removable_mount_roots():
    assert is_removable("/media/alice/STICK/m.gguf") and is_removable("/run/media/alice/S/m.gguf")
    assert is_removable("/mnt/usb/m.gguf")
    assert not is_removable("/nonexistent-dir/m.gguf")


def test_runs_keep_their_model_provenance_through_rename_remove_and_new_content(tmp_path, tiny_llama_gguf):  # noqa: F811
    """The evaluation log keys models by the sha256 a run was made with; the registry's changes never touch it."""
    from app.store import EvalLog
    from tests.store.helpers import request, result

    reg = Registry(_paths(tmp_path))
    f = _place(tiny_llama_gguf, tmp_path / "m" / "tiny.gguf")
    info, _ = add_model(reg, f)
    log = EvalLog.open(tmp_path / "log.db")
    try:
        req = request()
        run_id = log.log_run(req, info, result(req, info))
        rename_model(reg, info.path, "Renamed")
        with f.open("r+b") as fh:  # new content at the same path: the entry gets the new sha256
            fh.seek(-1, os.SEEK_END)
            fh.write(b"\x02")
        assert reg.resolve(info.path).sha256 != info.sha256
        remove_model(reg, info.path)
        run = log.get_run(run_id)
        assert (run.model_sha256, run.model_file, run.model_name) == (info.sha256, info.file_name, "tiny-llama")
        [logged] = [m for m in log.models() if m.sha256 == info.sha256]
        assert logged.name == "tiny-llama", "the name the run was made under"
    finally:
        log.close()


def test_a_filesystem_without_sync_file_range_still_gets_a_durable_copy(tmp_path, tiny_llama_gguf, monkeypatch):  # noqa: F811
    """Some network and FUSE filesystems refuse sync_file_range (EINVAL): the copy falls back to fdatasync."""
    import ctypes

    reg = Registry(_paths(tmp_path))
    src = _place(tiny_llama_gguf, tmp_path / "share" / "tiny.gguf")
    calls = {"sfr": 0, "fdatasync": 0}

    def refusing(_fd, _offset, _length, _flags):
        calls["sfr"] += 1
        ctypes.set_errno(errno.EINVAL)
        return -1

    real_fdatasync = os.fdatasync

    def counting(fd: int) -> None:
        calls["fdatasync"] += 1
        real_fdatasync(fd)

    monkeypatch.setattr(model_library, "SYNC_EVERY", 4096)
    monkeypatch.setattr(model_library, "_sync_file_range", lambda: refusing)
    monkeypatch.setattr(model_library.os, "fdatasync", counting)
    info, _ = add_model(reg, src, copy=True)
    assert info.sha256 == sha256_file(src) and info.in_library
    assert calls["sfr"] == 1, "refused once, then not asked again"
    assert calls["fdatasync"] >= 1, "the window was synced with fdatasync instead"
