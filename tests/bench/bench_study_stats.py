"""Study statistics and report benchmark (not collected by pytest; run it by hand).

    .venv/bin/python tests/bench/bench_study_stats.py             # 100 items x 2 arms, 3 raters, k = 2, 10 calibration
    .venv/bin/python tests/bench/bench_study_stats.py --items 500 --repeat 5

Measures, on a simulated study (scripted ratings; no log, no model):
- the project's ordinal alpha against ``krippendorff.alpha`` on the same matrix: equal to 1e-9, and the time
  of each side by side (a ratio: the project's code replaced the package in the app);
- ``study_stats`` (every statistic with its bootstrap intervals) and ``write_report`` (HTML, figures, CSVs)
  wall time, median of ``--repeat`` runs; the issue's budget for everything but answer generation is 10 s.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

import krippendorff
import numpy as np

from app.service.study_report import write_report
from app.store.agreement import study_stats
from app.store.estimates import ordinal_alpha
from tests.store.study_samples import simulated_study


def _median_s(f, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    data = simulated_study(items=args.items, judge=True)
    raters, answers = sorted(data.raters), sorted({r.answer for r in data.ratings})
    m = np.full((len(raters), len(answers)), np.nan)
    for r in data.ratings:
        m[raters.index(r.rater), answers.index(r.answer)] = r.score
    ours = ordinal_alpha(m)
    ref = krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4])
    assert abs(ours - ref) < 1e-9, (ours, ref)
    t_ours = _median_s(lambda: ordinal_alpha(m), 20)
    t_ref = _median_s(
        lambda: krippendorff.alpha(reliability_data=m, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4]), 20
    )
    t_stats = _median_s(lambda: study_stats(data), args.repeat)
    st = study_stats(data)
    assert st.alpha.alpha is not None and abs(st.alpha.alpha - ref) < 1e-9
    with tempfile.TemporaryDirectory() as tmp:
        write_report(data, Path(tmp) / "warm", st)  # first call imports matplotlib and builds its font cache
        t_report = _median_s(lambda: write_report(data, Path(tmp) / "r", st), args.repeat)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"machine: {platform.machine()}, {platform.python_version()}, load {load}")
    print(f"study: {args.items} items x 2 arms, 3 raters, k = 2, 10 calibration items: {len(data.ratings)} ratings")
    print(f"alpha {ours:.6f} (krippendorff {ref:.6f}); project {t_ours * 1e3:.2f} ms vs package {t_ref * 1e3:.2f} ms")
    print(f"  ratio project / package: {t_ours / t_ref:.2f}")
    print(f"study_stats (intervals: 2,000 resamples each, 1 judge): {t_stats:.2f} s (median of {args.repeat})")
    print(f"write_report (5 figures, 10 CSVs): {t_report:.2f} s (median of {args.repeat})")
    print(f"together: {t_stats + t_report:.2f} s (budget for everything but generation: 10 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
