"""Benchmark operating characteristics of simulated one-arm trials. Not a test.

Two measurements, each repeated ``--repeats`` times, appended to ``results/oc.csv``:

``oc-closed-form``
    ``bayes_blina.plan.simulate_oc_1s``: ``--trials`` simulated one-arm trials (binomial responders)
    at each of ``--rates`` true CR rates, each judged by the posterior of a robust beta-mixture prior
    (a three-component MAP-like mixture plus a vague component) and the rule
    ``P(theta > 0.3 | y) > 0.95``; conjugate, so exact per trial. Target: 10,000 trials in under
    30 seconds. Also the exact OC (``oc_1s``) at the same rates, for the Monte Carlo error check.
``oc-model-<method>``
    The same kind of trial analysed with the package's hierarchical response model (regimen x age
    group x blast burden, patient-level rows) fitted by ``--method`` (an approximate method:
    ``pathfinder``, ``advi``, ...; or ``nuts``) for ``--model-trials`` simulated trials: seconds per
    trial (wall time / trials), and the time 10,000 trials would take at that rate; with
    ``--scheduler tcp://host:8786`` the trials run on that dask.distributed cluster, in parallel
    over its worker threads.

    python benchmarks/bench_oc.py
    python benchmarks/bench_oc.py --model-trials 8 --method pathfinder --scheduler tcp://10.0.0.5:8786
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, append_csv, load1, now  # noqa: E402

RESULTS = RESULTS_DIR / "oc.csv"
COLUMNS = ["run_id", "created", "benchmark", "repeat", "trials", "n_rates", "n_per_trial", "load1_start", "seconds",
           "seconds_per_trial", "seconds_for_10000", "max_abs_error_vs_exact", "workers", "note"]


def prior():
    from bayes_blina.plan import BetaMixture

    # a MAP-like prior from three historical studies (CR about 0.35-0.45), robustified with 20% vague
    return BetaMixture([0.5, 0.3, 0.2], [14.0, 5.0, 2.2], [22.0, 7.5, 3.0]).robustify(0.2, mean=0.5, n=1.0)


def closed_form(trials: int, rates: np.ndarray, n: int, seed: int) -> dict:
    from bayes_blina.plan import decision_1s, oc_1s, simulate_oc_1s

    pri = prior()
    rule = decision_1s(0.95, 0.3)
    t0 = time.perf_counter()
    sim = simulate_oc_1s(pri, n, rule, rates, n_trials=trials, seed=seed)
    secs = time.perf_counter() - t0
    exact = oc_1s(pri, n, rule)(rates)
    total = trials * len(rates)
    return {"benchmark": "oc-closed-form", "trials": total, "n_rates": len(rates), "n_per_trial": n,
            "seconds": round(secs, 4), "seconds_per_trial": f"{secs / total:.3g}",
            "seconds_for_10000": round(secs / total * 10_000, 4),
            "max_abs_error_vs_exact": round(float(np.max(np.abs(sim["p_success"].to_numpy() - exact))), 4),
            "workers": 1, "note": f"{len(rates)} rates x {trials} trials; rule P(theta > 0.3) > 0.95; "
                                  f"max MC SE {sim['mc_se'].max():.4f}"}


def _model_trial(args):
    """Simulate one trial of ``n`` patients, fit the response model, return (P(CR rate > 0.3), secs)."""
    seed, n, method = args
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    from bayes_blina.families.response import subgroup_rates
    from bayes_blina.inference import fit
    from bayes_blina.simulate import simulate_response_cohort

    ds = simulate_response_cohort(n, seed=seed)[0]
    spec = {"name": "trial", "family": "response",
            "options": {"factors": ["regimen", "age_group", "blast_burden"], "study_effect": False},
            "sampler": {"chains": 2, "draws": 500, "tune": 500, "method": method, "seed": seed}}
    t0 = time.perf_counter()
    res = fit(spec, ds)
    rate = subgroup_rates(res.idata, ds.subjects, factors=["regimen", "age_group", "blast_burden"],
                          by="blast_burden").mean(axis=1)  # overall standardised rate per draw
    return float((rate > 0.3).mean()), time.perf_counter() - t0


def model_loop(trials: int, n: int, method: str, seed: int, scheduler: str | None) -> dict:
    jobs = [(seed + k, n, method) for k in range(trials)]
    t0 = time.perf_counter()
    workers = 1
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler) as client:
            workers = sum(client.nthreads().values())
            out = client.gather(client.map(_model_trial, jobs, pure=False))
    else:
        out = [_model_trial(j) for j in jobs]
    secs = time.perf_counter() - t0
    per = secs / trials
    return {"benchmark": f"oc-model-{method}", "trials": trials, "n_rates": 1, "n_per_trial": n,
            "seconds": round(secs, 2), "seconds_per_trial": round(per, 3),
            "seconds_for_10000": round(per * 10_000, 0), "workers": workers,
            "note": f"response model fitted by {method} per trial (2 x 500 draws), build and compile included; "
                    f"mean fit {np.mean([o[1] for o in out]):.2f} s; P(rate > 0.3) of trial 1 {out[0][0]:.3f}"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000, help="simulated trials per true rate (closed form)")
    ap.add_argument("--rates", type=int, default=12, help="number of true rates, 0.1 to 0.65")
    ap.add_argument("--n", type=int, default=40, help="patients per trial")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model-trials", type=int, default=4, help="trials analysed with the response model (0: skip)")
    ap.add_argument("--method", default="pathfinder", help="fit method of the model loop (an approximate method or nuts)")
    ap.add_argument("--scheduler", help="dask.distributed scheduler address for the model loop")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    run_id = now()
    rates = np.linspace(0.1, 0.65, args.rates)
    for rep in range(1, args.repeats + 1):
        l0 = load1()
        r = closed_form(args.trials, rates, args.n, args.seed + rep)
        r.update(run_id=run_id, created=now(), repeat=rep, load1_start=l0)
        append_csv(RESULTS, COLUMNS, r)
        print(f"{r['benchmark']:<22} rep {rep}: {r['trials']} trials in {r['seconds']} s "
              f"(10,000 trials: {r['seconds_for_10000']} s); max |sim - exact| {r['max_abs_error_vs_exact']}")
    if args.model_trials:
        for rep in range(1, args.repeats + 1):
            l0 = load1()
            r = model_loop(args.model_trials, args.n, args.method, 1000 * rep + args.seed, args.scheduler)
            r.update(run_id=run_id, created=now(), repeat=rep, load1_start=l0)
            append_csv(RESULTS, COLUMNS, r)
            print(f"{r['benchmark']:<22} rep {rep}: {r['seconds_per_trial']} s per trial on {r['workers']} worker(s) "
                  f"(10,000 trials: {r['seconds_for_10000']:.0f} s)")
    if not args.no_report:
        import report

        report.write_results_md()


if __name__ == "__main__":
    main()
