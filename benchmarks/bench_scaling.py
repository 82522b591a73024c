"""Scaling of the cytokine pulse fit with patients and analytes. Not a test.

Two series of the pulse model (M3 censoring, correlated amplitudes, peak coordinates), each fit in a
fresh process exactly as ``bench_fits.py`` does (same measurements), appended to
``results/scaling.csv``:

``patients``
    The core three cytokines (IL-6, IL-10, IFN-gamma; the ``cytokine-core`` spec) on virtual
    cohorts (``adult-exploratory`` preset, seed 1) of 50, 100, 200, 500 and 1,000 patients.
``analytes``
    36 patients, 1 to 6 analytes (IL-6, IL-10, IFN-gamma, then IL-2, TNF-alpha, granzyme B), the
    ``cytokine-core`` priors and options.

The table gives sampling time, min ESS/s and seconds per effective draw, and the log-log slope of
sampling time and of seconds per effective draw against the number of patients from 200 to 1,000
(the target: at most 1.1) and over the whole series.

    python benchmarks/bench_scaling.py --series patients --backend nutpie
    python benchmarks/bench_scaling.py --series analytes --repeats 1
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fits  # noqa: E402
from _common import RESULTS_DIR, append_csv, emit, load1, now, run_child  # noqa: E402

RESULTS = RESULTS_DIR / "scaling.csv"
COLUMNS = ["run_id", "created", "series", "x"] + [c for c in bench_fits.COLUMNS if c not in ("run_id", "created")]
PATIENTS = [50, 100, 200, 500, 1000]
ANALYTES = ["IL6", "IL10", "IFNG", "IL2", "TNFA", "GZMB"]


def _register() -> None:
    """Add the scaling configurations to ``bench_fits.CONFIGS`` (parent and child processes)."""
    from bayes_blina.spec import load_spec

    core = load_spec("cytokine-core")
    for n in PATIENTS:
        bench_fits.CONFIGS[f"scale-patients-{n}"] = ("cytokine-core", ("cohort", "adult-exploratory", n), None)
    for k in range(1, len(ANALYTES) + 1):
        spec = {"name": f"pulse-{k}-analytes", "family": "pulse",
                "options": {**core.options, "analytes": ANALYTES[:k]}, "priors": core.priors,
                "gate": core.gate.model_dump()}
        bench_fits.CONFIGS[f"scale-analytes-{k}"] = (spec, ("cohort", "adult-exploratory", 36), None)


def slope(x, y) -> float:
    """Least-squares slope of log y on log x."""
    import numpy as np

    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", action="append", choices=["patients", "analytes"])
    ap.add_argument("--backend", default="nutpie", choices=bench_fits.BACKENDS)
    ap.add_argument("--patients", type=int, action="append", help="patient counts (default 50 100 200 500 1000)")
    ap.add_argument("--analytes", type=int, action="append", help="analyte counts (default 1 to 6)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=7200.0)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _register()
    if args.child:
        cfg, backend = args.child.split(":")
        emit(bench_fits.run_one(cfg, backend, args.chains, args.draws, args.tune, args.seed))
        return
    run_id = now()
    todo = []
    for series in args.series or ["patients", "analytes"]:
        xs = (args.patients or PATIENTS) if series == "patients" else (args.analytes or list(range(1, 7)))
        todo += [(series, x, f"scale-{series}-{x}") for x in xs]
    print(f"run {run_id}: back end {args.backend}, {args.chains} chains, {args.tune} + {args.draws}")
    for rep in range(1, args.repeats + 1):
        for series, x, cfg in todo:
            l0 = load1()
            res, err, peak = run_child(
                [__file__, "--child", f"{cfg}:{args.backend}", "--chains", str(args.chains), "--draws",
                 str(args.draws), "--tune", str(args.tune), "--seed", str(args.seed + rep)], timeout=args.timeout)
            row = {"run_id": run_id, "created": now(), "series": series, "x": x, "config": cfg,
                   "backend": args.backend, "repeat": rep, "load1_start": l0, "load1_end": load1()}
            if res is None:
                print(f"{series:<9} {x:>5} rep {rep} FAILED: {err}")
                append_csv(RESULTS, COLUMNS, {**row, "note": f"failed: {err}"[:300]})
                continue
            row.update(res)
            row.update(peak_mem_mb=round(peak, 1), load1_end=load1())
            append_csv(RESULTS, COLUMNS, row)
            print(f"{series:<9} {x:>5} rep {rep}: load {l0}, compile {res['compile_s']} s, sampling "
                  f"{res['sampling_s']} s, min ESS {min(res['min_ess_bulk'], res['min_ess_tail'])}, R-hat "
                  f"{res['max_rhat']}, div {res['divergences']}, ESS/s {res['min_ess_per_s']}, "
                  f"{row['peak_mem_mb']} MB", flush=True)
    if not args.no_report:
        import report

        report.write_results_md()


if __name__ == "__main__":
    main()
