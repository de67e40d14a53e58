"""Benchmark of the data-generation client against a fault-free loopback server with a fixed reply delay.

    PYTHONPATH=. .venv/bin/python tests/bench/bench_data_client.py [--n 2000] [--big 20000] [--repeats 3]
        [--sequential-n N] [--resume-big] [--no-durability] [--kills K]

Measures, each client run in a fresh process (so its peak RSS is its own) against one server process:
1. throughput: N requests at concurrency 32 vs one request after another (the reference's approach), both
   for real: the sequential side sends ``--sequential-n`` requests (default N; a smaller value is reported
   as measured on that many, with N's time extrapolated and labelled so); sides are interleaved over
   ``--repeats`` and the medians compared; the concurrent side twice, as chat completions and as background
   responses (``--background``: submit, then poll; the server generates each in its 200 ms);
2. the cost of writing each result durably: the same N requests at concurrency 32 with the result log's
   fdatasync (the default) and without it (flushed to the OS only), interleaved over ``--repeats``, medians;
3. peak RSS (VmHWM) of the client at N and at ``--big`` requests (0 skips it);
4. resume: a real ``asclepius data notes`` run over N case reports at concurrency 32, SIGKILLed once half
   the results are recorded, then started again. Reported: requests the server received twice; of those,
   how many had a reply the killed run received (must be 0) and how many were marked sent with no reply
   (the unavoidable "re-sent after an interruption", which the resumed run counts itself); the same with
   SIGTERM, which lets the requests in flight finish first; then ``--kills`` SIGKILLs with ``--background``,
   where a request the server had accepted (``submitted``) is fetched by id on resume, never sent again.
Nothing here reaches any address but 127.0.0.1. Prints a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def serve(delay: float) -> None:
    """Server mode: print the port, then answer 'stats' lines on stdin with the server's counts."""
    from tests.training.fake_server import FaultServer

    with FaultServer(delay_s=delay) as srv:
        print(srv.port, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                seen = list(srv.seen.values())
                print(json.dumps({"received": sum(seen), "distinct": len(seen), "max_in_flight": srv.max_in_flight}),
                      flush=True)  # fmt: skip
            elif line.strip() == "dups":
                print(json.dumps(sorted(p for p, c in srv.seen.items() if c > 1)), flush=True)
            elif line.strip() == "reset":
                srv.seen.clear()
                srv.max_in_flight = 0
                print("{}", flush=True)


def client(n: int, base_url: str, concurrency: int, out: Path, durable: bool = True, bg: bool = False) -> None:
    """Client mode: send n requests (built lazily) through the real runner; print timing and peak RSS."""
    from training.endpoint.chat import ChatRequest
    from training.endpoint.settings import ChatSettings
    from training.runner import ResultLog, request_id, run_requests

    cfg = ChatSettings(base_url, "bench", concurrency=concurrency, timeout_s=30, background=bg)
    log = ResultLog(out / f"bench-{n}-{concurrency}-{time.time_ns()}.results.jsonl", durable=durable)
    reqs = (ChatRequest(request_id("bench", "p@1", i), f"bench prompt number {i} " + "x" * 200, 16, 1.0,
                        {"i": i}) for i in range(n))  # fmt: skip
    t0 = time.perf_counter()
    usage = run_requests(cfg, reqs, log, total=n, stage="bench", progress=False)
    elapsed = time.perf_counter() - t0
    log.close()
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))  # fmt: skip
    print(json.dumps({"n": n, "concurrency": concurrency, "elapsed_s": elapsed, "succeeded": usage.succeeded,
                      "failed": usage.failed, "peak_rss_mib": hwm / 1024, "durable": durable, "background": bg,
                      "polls": usage.polls}))  # fmt: skip


class Server:
    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(delay)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)  # fmt: skip
        self.base_url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/v1"  # type: ignore[union-attr]

    def ask(self, what: str) -> dict:
        self.proc.stdin.write(what + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(30)


def run_client(server: Server, n: int, concurrency: int, out: Path, durable: bool = True, bg: bool = False) -> dict:
    r = subprocess.run([sys.executable, __file__, "--client", str(n), "--base-url", server.base_url, "--concurrency",
                        str(concurrency), "--out", str(out), *([] if durable else ["--no-durable"]),
                        *(["--background"] if bg else [])],
                       capture_output=True, text=True, env=ENV, cwd=ROOT, check=True)  # fmt: skip
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["succeeded"] == n and res["failed"] == 0, res
    return res


def _records(path: Path, offset: int) -> tuple[list[dict], int]:
    """Complete lines of a growing JSONL file from ``offset``; returns them and the new offset."""
    with path.open("rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    return [json.loads(line) for line in data[:end].splitlines()], offset + end


def resume(server: Server, n: int, out: Path, sig: int = signal.SIGKILL, bg: bool = False, tag: str = "") -> dict:
    cases = out / f"cases-{n}.csv"
    with cases.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["patient_id", "patient"])
        w.writerows([f"c{i}", f"Case {i}: a patient admitted with fever, treated, and discharged."] for i in range(n))
    dest = out / f"resume-{n}-{sig}{'-bg' if bg else ''}{tag}"
    argv = [sys.executable, "-m", "app.cli.main", "data", "notes", str(cases), "--id-column", "patient_id",
            "--base-url", server.base_url, "--model", "bench", "--out", str(dest), "--concurrency", "32",
            "--max-tokens", "16", "--no-progress", *(["--background"] if bg else [])]  # fmt: skip
    server.ask("reset")
    proc = subprocess.Popen(argv, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = dest / "notes.results.jsonl"
    last: dict[str, str] = {}
    offset, ok = 0, 0
    while proc.poll() is None:  # read the log as it grows; kill once half the replies are recorded
        if results.exists():
            recs, offset = _records(results, offset)
            for r in recs:
                if last.get(r["id"]) != "ok":
                    last[r["id"]] = r["status"]
                ok += r["status"] == "ok"
            if ok >= n // 2:
                break
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    proc.wait()
    for r in _records(results, offset)[0]:  # what the process wrote between the last read and the kill
        if last.get(r["id"]) != "ok":
            last[r["id"]] = r["status"]
    ok_at_kill = {i for i, st in last.items() if st == "ok"}
    no_reply_at_kill = {i for i, st in last.items() if st == "sent"}
    submitted_at_kill = {i for i, st in last.items() if st == "submitted"}
    time.sleep(0.5)
    done = subprocess.run(argv, env=ENV, cwd=ROOT, check=True, capture_output=True, text=True)
    st = server.ask("stats")
    dup_cases = {m.group(1) for p in server.ask("dups") if (m := re.search(r"Case (\d+):", p))}
    final = _records(results, 0)[0]
    case_of = {r["id"]: r["meta"]["source_id"].removeprefix("c") for r in final if r["status"] == "ok"}
    ok_records = len({r["id"] for r in final if r["status"] == "ok"})
    report = json.loads((dest / "notes.report.json").read_text(encoding="utf-8"))
    resent = report["runs"][-1]["usage"]["resent_after_interruption"]
    recovered = report["runs"][-1]["usage"].get("recovered_after_interruption", 0)
    dup = st["received"] - st["distinct"]
    return {"n": n, "signal": signal.Signals(sig).name, "background": bg, "recorded_at_kill": len(ok_at_kill),
            "submitted_no_reply_at_kill": len(submitted_at_kill),
            "duplicates_of_submitted": len(dup_cases & {case_of[i] for i in submitted_at_kill}),
            "recovered_by_id_reported": recovered,
            "marked_sent_no_reply_at_kill": len(no_reply_at_kill), "received": st["received"],
            "distinct": st["distinct"], "server_duplicates": dup, "server_duplicate_rate": dup / n,
            "duplicates_of_received_replies": len(dup_cases & {case_of[i] for i in ok_at_kill}),
            "duplicates_not_marked_sent": len(dup_cases - {case_of[i] for i in no_reply_at_kill}),
            "resent_after_interruption_reported": resent, "ok_records": ok_records,
            "summary_line": done.stdout.splitlines()[0] if done.stdout else ""}  # fmt: skip


def kills(server: Server, a: argparse.Namespace, out: Path) -> list[dict]:
    runs = [resume(server, a.n, out), resume(server, a.n, out, signal.SIGTERM)]
    if a.resume_big and a.big:
        runs.append(resume(server, a.big, out))
    for k in range(a.kills):
        runs.append(resume(server, a.n, out, bg=True, tag=f"-{k}"))
        print(f"background kill {k + 1}: {runs[-1]}", file=sys.stderr)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", type=float)
    ap.add_argument("--client", type=int)
    ap.add_argument("--base-url")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--out")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--big", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sequential-n", type=int, help="requests on the sequential side (default: --n, for real)")
    ap.add_argument("--no-durable", action="store_true", help="client mode: result log flushed, not fdatasync-ed")
    ap.add_argument("--background", action="store_true", help="client mode: background responses")
    ap.add_argument("--kills", type=int, default=2, help="SIGKILL/resume runs with --background (default 2)")
    ap.add_argument("--no-durability", action="store_true", help="skip the fdatasync on/off comparison")
    ap.add_argument("--only-resume", action="store_true", help="only the kill/resume cases")
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--resume-big", action="store_true", help="also run the kill/resume case at --big requests")
    a = ap.parse_args()
    if a.serve is not None:
        return serve(a.serve)
    if a.client is not None:
        return client(a.client, a.base_url, a.concurrency, Path(a.out), not a.no_durable, a.background)
    seq_n = a.sequential_n or a.n

    server = Server(a.delay)
    summary: dict = {"delay_s": a.delay, "n": a.n}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        try:
            if a.only_resume:
                summary["resume"] = kills(server, a, out)
                return
            conc, seq, bgs, polls = [], [], [], []
            seq_s = []
            for rep in range(a.repeats):  # interleaved: sequential, then concurrent (chat, background), each repeat
                s = run_client(server, seq_n, 1, out)
                c = run_client(server, a.n, 32, out)
                b = run_client(server, a.n, 32, out, bg=True)
                seq.append(seq_n / s["elapsed_s"])
                seq_s.append(s["elapsed_s"])
                conc.append(a.n / c["elapsed_s"])
                bgs.append(a.n / b["elapsed_s"])
                polls.append(b["polls"] / a.n)
                print(f"repeat {rep + 1}: sequential {seq_n} requests in {s['elapsed_s']:.1f} s ({seq[-1]:.2f} req/s), "
                      f"concurrency 32 {conc[-1]:.1f} req/s, background {bgs[-1]:.1f} req/s ({polls[-1]:.2f} polls "
                      f"per request), client peak RSS {c['peak_rss_mib']:.1f} MiB", file=sys.stderr)  # fmt: skip
            summary["throughput"] = {
                "sequential_n": seq_n,
                "sequential_measured_s_median": statistics.median(seq_s),
                "sequential_req_per_s_median": statistics.median(seq),
                "sequential_s_for_n": (a.n / statistics.median(seq)),
                "sequential_s_for_n_is": "measured" if seq_n == a.n else f"extrapolated from {seq_n} requests",
                "concurrent_req_per_s_median": statistics.median(conc),
                "concurrent_s_for_n_median": a.n / statistics.median(conc),
                "speedup_median": statistics.median(conc) / statistics.median(seq),
                "background_req_per_s_median": statistics.median(bgs),
                "background_speedup_median": statistics.median(bgs) / statistics.median(seq),
                "background_polls_per_request_median": statistics.median(polls),
                "sequential_repeats_req_per_s": seq,
                "concurrent_repeats_req_per_s": conc,
                "background_repeats_req_per_s": bgs,
                "repeats": a.repeats,
            }
            if not a.no_durability:
                on, off = [], []
                for rep in range(a.repeats):  # interleaved, alternating which side goes first
                    for durable in (True, False) if rep % 2 == 0 else (False, True):
                        r = run_client(server, a.n, 32, out, durable)
                        (on if durable else off).append(a.n / r["elapsed_s"])
                summary["durability"] = {
                    "fdatasync_req_per_s_median": statistics.median(on),
                    "flush_only_req_per_s_median": statistics.median(off),
                    "ratio_median": statistics.median(on) / statistics.median(off),
                    "fdatasync_repeats": on,
                    "flush_only_repeats": off,
                }
                print(f"durability: {summary['durability']}", file=sys.stderr)
            rss = {a.n: run_client(server, a.n, 32, out)["peak_rss_mib"]}
            if a.big:
                rss[a.big] = run_client(server, a.big, 32, out)["peak_rss_mib"]
            summary["peak_rss_mib"] = rss
            summary["resume"] = kills(server, a, out)
        finally:
            server.close()
            print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
