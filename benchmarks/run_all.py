"""Run every benchmark and regenerate ``benchmarks/RESULTS.md``: the one command of issue 7.

    python benchmarks/run_all.py            # full: hours on 2 cores (the 1,000-patient fits dominate)
    python benchmarks/run_all.py --quick    # 2 chains x 300 + 300, small configurations only (minutes);
                                            # results in benchmarks/results-quick/ (RESULTS.md untouched)

Steps: the back-end comparison against Stan (``bench_fits.py --suite main``: response-2000 and
cytokine-core-36 with every back end), 200 patients against Stan (``--suite big``), the T-cell and
joint models (``--suite models``, default back end), the scaling series (``bench_scaling.py``, whose
last point is the 1,000-patient cytokine fit), the approximate mode against NUTS
(``bench_approx.py``), the operating characteristics (``bench_oc.py``) and the biomarker power
curve of issue 6 (``bench_biomarker_power.py``) and the inputs at scale of issue 21 (``bench_inputs.py``:
1,000 to 10,000 patients and a 1 GB ``observations.csv``). Each script appends to ``benchmarks/results/*.csv``; RESULTS.md
shows the latest run of each configuration.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings, to check that everything runs")
    args = ap.parse_args(argv)
    py = sys.executable
    if args.quick:  # a smoke run: its rows must not replace the real ones in RESULTS.md
        os.environ["BENCH_RESULTS_DIR"] = str(HERE / "results-quick")
        small = ["--chains", "2", "--draws", "300", "--tune", "300", "--repeats", "1", "--no-report"]
        steps = [
            [py, HERE / "bench_fits.py", "--suite", "quick", *small],
            [py, HERE / "bench_scaling.py", "--patients", "50", "--patients", "100", "--analytes", "1",
             "--analytes", "2", *small],
            [py, HERE / "bench_oc.py", "--repeats", "1", "--model-trials", "2", "--no-report"],
            [py, HERE / "bench_inputs.py", "--patients", "300", "--patients", "1000", "--no-report"],
        ]
    else:
        steps = [
            [py, HERE / "bench_fits.py", "--suite", "main", "--no-report"],
            [py, HERE / "bench_fits.py", "--suite", "big", "--no-report"],
            [py, HERE / "bench_fits.py", "--suite", "models", "--no-report"],
            [py, HERE / "bench_scaling.py", "--no-report"],
            [py, HERE / "bench_approx.py", "--no-report"],
            [py, HERE / "bench_oc.py", "--no-report"],
            [py, HERE / "bench_biomarker_power.py", "--no-report"],
            [py, HERE / "bench_inputs.py", "--gb", "1", "--no-report"],
        ]
    failed = 0
    for cmd in steps:
        print("$", " ".join(str(c) for c in cmd[1:]), flush=True)
        failed += subprocess.call([str(c) for c in cmd]) != 0
    sys.path.insert(0, str(HERE))
    import report

    print("wrote", report.write_results_md())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
