"""Benchmark the dose-escalation design simulation (issue 18): 1,000 trials per scenario. Not a test.

3+3, BOIN, CRM and BLRM-EWOC (the dose-toxicity model by quadrature, 101 x 101 grid) on three true
dose-toxicity scenarios over 5, 10, 15, 20, 30 ug/m2/day, cohorts of 3 up to 30 patients, on a local
dask cluster of ``--workers`` processes. Appends one row per scenario (wall time of all designs,
trials per second) to ``results/designs.csv`` and writes the operating characteristics to
``results/designs-oc.csv``. Target (issue 18): under a minute per scenario on 2 cores.

    python benchmarks/bench_designs.py --trials 1000 --workers 2
"""
from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"

SCENARIOS = {
    "target at 15": [0.03, 0.08, 0.22, 0.38, 0.55],
    "target at 20": [0.02, 0.05, 0.10, 0.25, 0.45],
    "toxic from 10": [0.10, 0.35, 0.50, 0.60, 0.70],
}


def main(argv=None) -> int:
    from bayes_blina.safety.designs import BOIN, CRM, BlrmEwoc, ThreePlusThree
    from bayes_blina.safety.trials import simulate_designs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    designs = [ThreePlusThree(), BOIN(target=0.25, max_n=30), CRM(target=0.25, max_n=30),
               BlrmEwoc(doses=(5.0, 10.0, 15.0, 20.0, 30.0), reference_dose=15.0, max_n=30)]
    rows, ocs = [], []
    for name, p in SCENARIOS.items():
        t0 = time.perf_counter()
        oc = simulate_designs(designs, {name: p}, trials=args.trials, workers=args.workers, seed=2026)
        wall = time.perf_counter() - t0
        rows.append({"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "scenario": name,
                     "trials": args.trials, "designs": len(designs), "workers": args.workers,
                     "wall_s": round(wall, 1), "trials_per_s": round(args.trials * len(designs) / wall, 1),
                     "machine": f"{platform.machine()} {platform.python_version()}"})
        ocs.append(oc.table)
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "designs.csv"
    pd.DataFrame(rows).to_csv(out, mode="a", header=not out.exists(), index=False)
    pd.concat(ocs, ignore_index=True).to_csv(RESULTS / "designs-oc.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
