"""llama.cpp quantization in a child process, so that SIGINT/SIGTERM really stop it.

``llama_model_quantize`` has no abort or progress callback of its own (its parameters, as bound by
llama-cpp-python 0.3.36, are thread count, types, overrides and buffer size only): the one callback it calls
while it works is the log callback, once per tensor ("[ 12/ 201] blk.1.attn_q.weight ..."). A Python
exception raised there is swallowed by ctypes (that is the traceback SIGTERM printed), and the C loop runs to
the end. So the quantization runs in a child interpreter that reports each tensor through that log
callback on its stdout; the parent reads the lines, drives the progress display, and on a signal kills the
child (which cannot be half-way through anything the parent keeps), removes the partial file and exits
130/143. The child also dies with the parent (``PR_SET_PDEATHSIG``), so a SIGKILLed parent leaves no writer
behind, only a partial file that the next run removes.

Protocol on the child's stdout, one line each: ``@progress DONE TOTAL NAME``, ``@error TEXT``; anything else
(a native library writing to stderr, which is merged in) is kept as context for an error message.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

_PROGRESS_RE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
THROTTLE_ENV = "ASCLEPIUS_QUANTIZE_THROTTLE_S"
"""Seconds the child waits after each tensor. For tests only: it makes a tiny model's quantization last long
enough to signal it mid-way, deterministically, with llama.cpp still doing the real work."""
Progress = Callable[[str, int, int], None]
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_main(argv: list[str]) -> int:
    """``python -m quantize.worker INPUT OUTPUT FTYPE NTHREAD PARENT_PID``."""
    import llama_cpp

    inp, out, ftype, nthread, parent = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole process group: the parent decides
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 1
    throttle = float(os.environ.get(THROTTLE_ENV) or 0)

    @llama_cpp.llama_log_callback
    def _log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        msg = text.decode("utf-8", "replace")
        if level == 3:  # GGML_LOG_LEVEL_ERROR
            print(f"@error {msg.strip()}", flush=True)
        m = _PROGRESS_RE.search(msg)
        if m:
            print(f"@progress {m.group(1)} {m.group(2)} {m.group(3)}", flush=True)
            if throttle:
                time.sleep(throttle)

    llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(inp.encode(), out.encode(), ctypes.byref(params))
    return 0 if rc == 0 else 1


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_quantize(
    input_path: Path, tmp: Path, ftype: int, nthread: int, progress: Progress | None = None
) -> tuple[int, list[str]]:
    """Quantize ``input_path`` into ``tmp`` in a child process; return (exit status, error lines).

    Any exception here (KeyboardInterrupt from SIGINT, the CLI's SIGTERM exception) kills the child first,
    so the caller's cleanup never races a writer."""
    cmd = [sys.executable, "-m", "quantize.worker", str(input_path), str(tmp), str(ftype), str(nthread)]
    cmd.append(str(os.getpid()))
    errors: list[str] = []
    other: list[str] = []
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, env=_child_env()
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("@progress "):
                _, done, total, name = line.rstrip("\n").split(" ", 3)
                if progress:
                    progress(name, int(done), int(total))
            elif line.startswith("@error "):
                errors.append(line[7:].strip())
            elif line.strip():
                other.append(line.strip())
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0 and not errors:
        errors = other[-3:] or [f"the quantizer exited with status {rc}"]
    return rc, errors


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
