"""Benchmark the biomarker power curve (issue 6): virtual studies from a joint fit, refitted on dask.
Not a test.

From a stored joint-model fit (default: fit ``models/joint.toml`` to a 200-patient
``adult-exploratory`` virtual cohort first, stored under ``benchmarks/results/joint-fit`` and
reused), :func:`bayes_blina.plan.biomarker.biomarker_power` simulates ``--sims`` studies at each of
``--sizes`` and refits each with the measurement-error CR model (nutpie, 2 chains), on a local
``dask.distributed`` cluster of ``--workers`` single-threaded processes (or ``--scheduler ADDRESS``).
Appended to ``results/biomarker_power.csv``: one row per size (power of each link and its Monte
Carlo SE, failed refits, mean seconds per refit) with the wall time of the whole curve, the
load average at the start and the peak resident memory of the measured process and its dask workers
(``_common.run_child``).

    python benchmarks/bench_biomarker_power.py                      # 4 sizes x 100 studies
    python benchmarks/bench_biomarker_power.py --fit fits/demo-joint --sims 20
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, append_csv, emit, load1, machine, now, run_child  # noqa: E402

RESULTS = RESULTS_DIR / "biomarker_power.csv"
FIT_DIR = RESULTS_DIR / "joint-fit"
COLUMNS = ["run_id", "created", "fit", "fit_gate", "n", "sims", "workers", "draws", "load1_start", "wall_s_curve",
           "peak_mb", "power_tcell_expansion", "se_tcell_expansion", "power_il10_peak", "se_il10_peak",
           "failed", "mean_refit_s", "machine"]  # failed: refits with R-hat >= 1.05 or divergences


def _joint_fit(path: Path, n: int, seed: int) -> Path:
    """The stored joint fit at ``path``, fitting it first when absent."""
    from bayes_blina.inference import fit
    from bayes_blina.simulate import simulate_cohort
    from bayes_blina.store import save_fit

    if (path / "posterior.nc").exists():
        return path
    ds, _ = simulate_cohort("adult-exploratory", n, seed=seed)
    res = fit("joint", ds)
    print(res.verdict, file=sys.stderr)
    save_fit(res, path)
    return path


def _curve(args) -> dict:
    """The child's work: gate check, source, power curve (result for :func:`emit`)."""
    from bayes_blina.errors import BayesBlinaError
    from bayes_blina.plan.biomarker import biomarker_power, source_from_joint
    from bayes_blina.report.tables import gate_or_raise
    from bayes_blina.store import load_fit

    fit_dir = args.fit or _joint_fit(FIT_DIR, args.cohort_n, seed=3)
    stored = load_fit(fit_dir)
    verdict = stored.verdict
    try:
        gate_or_raise(verdict, args.allow_unconverged)
    except BayesBlinaError as err:
        return {"error": str(err)}
    res = biomarker_power(source_from_joint(stored), [int(s) for s in args.sizes.split(",")], sims=args.sims,
                          workers=args.workers, scheduler=args.scheduler, draws=args.draws, tune=args.draws,
                          seed=args.seed)
    return {"fit": str(fit_dir), "fit_gate": "passed" if verdict.passed else "FAILED",
            "wall_s": res.wall_s, "table": res.table.to_dict("records")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=Path, help="stored joint fit (default: fit one, see the docstring)")
    ap.add_argument("--cohort-n", type=int, default=200, help="patients of the default joint fit's cohort")
    ap.add_argument("--sizes", default="50,100,200,400")
    ap.add_argument("--sims", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--allow-unconverged", action="store_true",
                    help="use a joint fit that fails its convergence gate (recorded in the CSV)")
    ap.add_argument("--no-report", action="store_true", help="do not regenerate RESULTS.md")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds for the whole curve")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # the measured process (its tree, dask workers included, is watched for memory)
        emit(_curve(args))
        return 0
    run_id, start_load = now(), load1()
    child = [str(Path(__file__).resolve()), "--child"] + [a for a in (argv if argv is not None else sys.argv[1:])
                                                           if a != "--no-report"]
    result, error, peak = run_child(child, args.timeout)
    if result is None or "error" in result:
        print(f"biomarker power curve failed: {error or result['error']}", file=sys.stderr)
        return 3
    table = result["table"]
    print(f"biomarker power curve: {len(table)} sizes x {args.sims} studies in {result['wall_s']:.1f} s "
          f"({args.workers} workers, load {start_load}, peak {peak:.0f} MiB)")
    for r in table:
        print("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
        row = {"run_id": run_id, "created": now(), "fit": result["fit"], "fit_gate": result["fit_gate"],
               "n": int(r["n"]), "sims": args.sims, "workers": args.workers, "draws": args.draws,
               "load1_start": start_load, "wall_s_curve": round(result["wall_s"], 1), "peak_mb": round(peak, 0),
               "failed": r.get("refits_not_converged"), "mean_refit_s": r.get("mean_refit_s"), "machine": machine()}
        for b in ("tcell_expansion", "il10_peak"):
            row[f"power_{b}"] = r.get(f"power_{b}")
            row[f"se_{b}"] = r.get(f"mcse_{b}")
        append_csv(RESULTS, COLUMNS, row)
    print(f"appended to {RESULTS}")
    if not args.no_report:
        import report

        print(report.write_results_md())
    return 0


if __name__ == "__main__":
    sys.exit(main())
