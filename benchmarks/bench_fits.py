"""Benchmark model fits against a Stan reference: wall time, ESS per second, peak memory. Not a test.

Every configuration (model spec x data) is fitted with each back end (PyMC's NUTS, nutpie, numpyro
through PyMC, and the Stan reference of ``benchmarks/stan/`` through pystan 3) on the same data with
the same chains, tuning and draws, ``--repeats`` times, each fit in a fresh subprocess whose whole
process tree is watched for peak memory. Repeats are interleaved (repeat 1 of every back end, then
repeat 2, ...) so that a change in the machine's load hits all back ends alike. One line per fit is
printed and appended to ``results/fits.csv``; then every back end's min ESS/s is divided by
Stan's (mean over the repeats of this invocation) and ``RESULTS.md`` is regenerated.

Figures per fit: ``compile_s`` (model compilation: numba for nutpie, C for PyMC, g++ for Stan, taken
from httpstan's cache after the first build; numpyro compiles inside sampling), ``sampling_s``
(tuning + draws), min bulk and tail ESS and max R-hat over every quantity that both the package's
model and the Stan program name (population parameters, per-patient quantities, derived
quantities), divergences, ``min_ess_per_s`` = min(bulk, tail ESS) / sampling_s, peak memory, and the
one-minute load average at the start and end (other processes on the machine).

    python benchmarks/bench_fits.py --suite main              # back ends against Stan
    python benchmarks/bench_fits.py --suite big               # 200 patients: nutpie and Stan
    python benchmarks/bench_fits.py --config response-2000 --backend nutpie --backend stan
    python benchmarks/bench_fits.py --list
    # a second Stan repeat added to an earlier run (the report shows each configuration's latest run)
    python benchmarks/bench_fits.py --config cytokine-core-200 --backend stan --repeats 1 \
        --first-repeat 2 --run-id 2026-11-21T14:31:28+00:00
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, REPO, append_csv, emit, load1, now, run_child  # noqa: E402

RESULTS = RESULTS_DIR / "fits.csv"
COLUMNS = ["run_id", "created", "config", "backend", "repeat", "chains", "tune", "draws", "n_subjects", "n_rows",
           "n_analytes", "load1_start", "load1_end", "compile_s", "sampling_s", "wall_s", "min_ess_bulk",
           "min_ess_tail", "max_rhat", "divergences", "min_ess_per_s", "peak_mem_mb", "passed", "n_quantities",
           "mean_steps", "us_per_grad", "worst", "device", "model_hash", "note"]
BACKENDS = ["pymc", "nutpie", "numpyro", "stan"]

#: name -> (spec, data recipe, spec file that must exist or None). Data recipes: ("response", n)
#: simulated patient-level CR data; ("cohort", preset, n) a virtual cohort; ("bundled", name).
CONFIGS: dict[str, tuple[object, tuple, str | None]] = {
    "response-published": ("response", ("bundled", "published"), None),
    "response-2000": ("response-patients", ("response", 2000), None),
    "cytokine-36": ("cytokine", ("cohort", "adult-exploratory", 36), None),
    "cytokine-core-36": ("cytokine-core", ("cohort", "adult-exploratory", 36), None),
    # the same spec with nutpie's diagonal mass matrix (the spec adapts a low-rank one)
    "cytokine-core-36-diag": ("cytokine-core+diag", ("cohort", "adult-exploratory", 36), None),
    "cytokine-core-200": ("cytokine-core", ("cohort", "adult-exploratory", 200), None),
    "cytokine-core-1000": ("cytokine-core", ("cohort", "adult-exploratory", 1000), None),
    # need their spec files (skipped with a message where one is missing)
    "tcell-200": ("tcell", ("cohort", "adult-exploratory", 200), "models/tcell.toml"),
    "joint-200": ("joint", ("cohort", "adult-exploratory", 200), "models/joint.toml"),
}

#: --suite name -> list of (configuration, back ends)
SUITES: dict[str, list[tuple[str, list[str]]]] = {
    "main": [("response-2000", BACKENDS), ("cytokine-core-36", BACKENDS)],
    # T-cell kinetics and the joint model: no Stan reference; the package default back end only
    "models": [("tcell-200", ["nutpie"]), ("joint-200", ["nutpie"])],
    # 200 patients: the package default against Stan (PyMC's and numpyro's NUTS take hours there);
    # the 1,000-patient fit (default back end) is the last point of bench_scaling.py's patient series
    "big": [("cytokine-core-200", ["nutpie", "stan"])],
    "quick": [("response-2000", BACKENDS), ("cytokine-core-36", BACKENDS)],
}


def _dataset(recipe):
    if recipe[0] == "bundled":
        from bayes_blina.data import read_dataset

        return read_dataset(recipe[1])
    if recipe[0] == "response":
        from bayes_blina.simulate import simulate_response_cohort

        return simulate_response_cohort(recipe[1], seed=1)[0]
    if recipe[0] == "cohort":
        from bayes_blina.simulate import simulate_cohort

        return simulate_cohort(recipe[1], recipe[2], seed=1)[0]
    raise ValueError(f"unknown data recipe {recipe}")


def _spec(name):
    """The spec a configuration names: a spec name, ``name+diag`` (that spec with the diagonal mass
    matrix) or ``response-patients``."""
    if isinstance(name, str) and name.endswith("+diag"):
        from bayes_blina.spec import load_spec

        return load_spec(name[: -len("+diag")]).with_sampler(mass_matrix="diag")
    if name == "response-patients":  # the response model on patient-level rows, one study
        return {"name": name, "family": "response",
                "options": {"factors": ["regimen", "age_group", "blast_burden"], "study_effect": False}}
    return name


def compared_quantities(family, prepared) -> list[str]:
    """The quantities whose ESS and R-hat are compared: those both implementations name."""
    if family.name == "response":
        out = ["p_typical", "alpha"]
        for f in family.options.factors:
            out += [f"sd_{f}", f"beta_{f}", f"p_{f}"]
        out.append("p_cell")
        if family.options.study_effect and len(prepared.coords["study"]) > 1:
            out += ["sd_study", "study_effect"]
        return out
    if family.name == "pulse":
        from bayes_blina.families.pulse import POPULATION_PARAMETERS

        out = list(POPULATION_PARAMETERS) + ["log_peak_c", "log_peak_i", "u_baseline", "log_baseline", "log_amp",
                                             "log_peak_first", "typical_peak"]
        import stan_ref

        mode = stan_ref.timing_mode(family)
        out += (["log_tpeak_i"] if mode else []) + (["v_tpeak"] if mode in (1, 2) else []) \
            + (["log_tpeak_c"] if mode == 1 else [])
        if not mode and "sd_log_tpeak" in out:
            out.remove("sd_log_tpeak")
        if family._correlated():
            out.append("corr_amp")
        return out
    return []  # every posterior variable


def model_hash(family, prepared) -> str:
    """Fingerprint of the model fitted: ``lp:`` + a hash of its log density (Jacobians included) at
    two fixed points and of its free variables' names and shapes. Other work may edit a family
    while a benchmark runs: rows of one configuration with different fingerprints are different
    models (an edit that leaves the density unchanged, e.g. of a docstring, keeps the fingerprint)."""
    import hashlib

    import numpy as np

    model = family.build(prepared)
    ip = model.initial_point()
    logp = model.compile_logp(jacobian=True)
    rng = np.random.default_rng(0)
    vals = []
    for shift in (0.0, 0.1):
        pt = {k: np.asarray(v, float) + shift * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
        vals.append(f"{float(logp(pt)):.6e}")
    sig = ";".join(f"{k}{np.shape(v)}" for k, v in sorted(ip.items())) + "|" + "|".join(vals)
    return "lp:" + hashlib.sha256(sig.encode()).hexdigest()[:10]


def run_one(config: str, backend: str, chains: int, draws: int, tune: int, seed: int) -> dict:
    """Fit one configuration in this process and return its measurements."""
    from bayes_blina.diagnostics import convergence_verdict
    from bayes_blina.families import get_family
    from bayes_blina.spec import load_spec

    spec_name, recipe, _ = CONFIGS[config]
    ds = _dataset(recipe)
    spec = load_spec(_spec(spec_name)).with_sampler(chains=chains, draws=draws, tune=tune, seed=seed)
    t0 = time.perf_counter()
    device = "cpu"
    if backend == "stan":
        import stan_ref

        family = get_family(spec.family)(spec.options, spec.priors)
        prepared = family.prepare(ds)
        kind = stan_ref.stan_kind(family)
        if kind is None:
            raise SystemExit(f"no Stan reference for family {family.name}")
        model, build_s = stan_ref.build(kind, stan_ref.stan_data(family, prepared), seed=seed)
        fit, sampling = stan_ref.sample(model, chains=chains, draws=draws, tune=tune,
                                        target_accept=spec.sampler.target_accept)
        idata = stan_ref.to_idata(kind, fit, family, prepared, chains=chains, draws=draws)
        compile_s = build_s
        used = "stan"
    else:
        from bayes_blina.inference import fit as do_fit

        res = do_fit(spec, ds, backend=backend)
        idata, family, prepared = res.idata, res.family, res.prepared
        sampling, compile_s, used = res.timing["sampling_s"], res.timing.get("compile_s", 0.0), res.backend
        device = res.timing.get("device", "cpu")
    wall = time.perf_counter() - t0
    names = [n for n in compared_quantities(family, prepared) if n in idata.posterior] or None
    v = convergence_verdict(idata, spec.gate, var_names=names)
    n_analytes = len(getattr(family.options, "analytes", []) or [])
    steps = float("nan")
    ss = getattr(idata, "sample_stats", None)
    if ss is not None and "n_steps" in ss:
        steps = float(ss["n_steps"].mean())
    # cost of one gradient: the chains share min(chains, 2) cores; tuning assumed as costly per draw
    us_per_grad = sampling * min(chains, 2) / (chains * (tune + draws) * steps) * 1e6 if steps > 0 else float("nan")
    return {
        "config": config, "backend": used, "chains": chains, "tune": tune, "draws": draws,
        "n_subjects": 0 if ds.subjects is None else len(ds.subjects),
        "n_rows": int(len(prepared.arrays.get("log_y", prepared.arrays.get("pat_y", [])))),
        "n_analytes": n_analytes,
        "compile_s": round(compile_s, 2), "sampling_s": round(sampling, 2), "wall_s": round(wall, 2),
        "min_ess_bulk": round(v.min_ess_bulk, 1), "min_ess_tail": round(v.min_ess_tail, 1),
        "max_rhat": round(v.max_rhat, 4), "divergences": v.n_divergent,
        "min_ess_per_s": round(min(v.min_ess_bulk, v.min_ess_tail) / max(sampling, 1e-9), 2),
        "passed": v.passed, "n_quantities": len(names or idata.posterior.data_vars), "device": device,
        "mean_steps": round(steps, 1), "us_per_grad": round(us_per_grad, 1),
        "worst": f"ESS {v.worst.get('ess_bulk', '')}/{v.worst.get('ess_tail', '')}, R-hat {v.worst.get('rhat', '')}",
        "model_hash": model_hash(family, prepared),
    }


def skip_reason(config: str, backend: str) -> str | None:
    """Why a (configuration, back end) cannot run here (None: it can)."""
    import importlib.util

    spec_name, recipe, needs = CONFIGS[config]
    if needs and not (REPO / needs).exists():
        return f"{needs} does not exist yet (placeholder until that model is written)"
    if backend == "stan":
        if importlib.util.find_spec("stan") is None:
            return "pystan is not installed (pip install 'bayes_blina[stan]')"
        if config == "response-published":
            return "the Stan reference takes patient-level data only (this dataset is aggregates)"
        if not str(spec_name).startswith(("response", "cytokine")):
            return "no Stan reference for this model"
    if backend == "numpyro" and importlib.util.find_spec("numpyro") is None:
        return "numpyro is not installed (pip install 'bayes_blina[numpyro]')"
    return None


def ratios_to_stan(rows: list[dict]) -> dict[str, float]:
    """Mean min ESS/s of each back end divided by Stan's mean (same invocation and configuration)."""
    import numpy as np

    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r["backend"], []).append(float(r["min_ess_per_s"]))
    if "stan" not in by:
        return {}
    ref = float(np.mean(by["stan"]))
    return {b: round(float(np.mean(v)) / ref, 2) for b, v in by.items()} if ref > 0 else {}


def _run_exists(run_id: str) -> bool:
    import csv

    if not RESULTS.exists():
        return False
    with open(RESULTS, newline="") as fh:
        return any(r.get("run_id") == run_id for r in csv.DictReader(fh))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), help="a named set of configurations and back ends")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="configuration(s) to run")
    ap.add_argument("--backend", action="append", choices=BACKENDS, help="back end(s)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--first-repeat", type=int, default=1,
                    help="number of the first repeat (its seed is --seed + repeat); with --run-id, adds "
                         "repeats to an earlier run")
    ap.add_argument("--run-id", help="append to this earlier run (its run_id in results/fits.csv) instead of "
                                     "starting a new one: RESULTS.md shows the latest run of each configuration")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per fit")
    ap.add_argument("--no-report", action="store_true", help="do not regenerate RESULTS.md")
    ap.add_argument("--list", action="store_true", help="list the configurations and suites")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.list:
        for k, (spec, recipe, needs) in CONFIGS.items():
            print(f"{k:<20} spec={str(spec):<18} data={recipe}" + (f"  (needs {needs})" if needs else ""))
        for k, items in SUITES.items():
            print(f"suite {k}: " + "; ".join(f"{c} x {', '.join(b)}" for c, b in items))
        return
    if args.child:  # one measurement, printed as JSON for the parent
        cfg, backend = args.child.split(":")
        emit(run_one(cfg, backend, args.chains, args.draws, args.tune, args.seed))
        return
    if args.suite:
        plan = [(c, list(args.backend or b)) for c, b in SUITES[args.suite] if not args.config or c in args.config]
    else:
        plan = [(c, list(args.backend or BACKENDS)) for c in (args.config or ["response-2000"])]
    run_id = args.run_id or now()
    if args.run_id and not _run_exists(args.run_id):
        raise SystemExit(f"--run-id {args.run_id}: no such run in {RESULTS}")
    print(f"run {run_id}: {args.chains} chains, {args.tune} tuning + {args.draws} draws, {args.repeats} repeats")
    print(f"{'config':<20} {'backend':<8} {'rep':>3} {'load':>5} {'compile_s':>9} {'sampling_s':>10} "
          f"{'minESS':>7} {'Rhat':>6} {'div':>4} {'ESS/s':>8} {'mem MB':>7}")
    for cfg, backends in plan:
        rows = []
        runnable = []
        for backend in backends:
            why = skip_reason(cfg, backend)
            if why:
                print(f"{cfg:<20} {backend:<8} SKIP: {why}")
            else:
                runnable.append(backend)
        for rep in range(args.first_repeat, args.first_repeat + args.repeats):
            for backend in runnable:
                l0 = load1()
                res, err, peak = run_child(
                    [__file__, "--child", f"{cfg}:{backend}", "--chains", str(args.chains), "--draws",
                     str(args.draws), "--tune", str(args.tune), "--seed", str(args.seed + rep)],
                    timeout=args.timeout)
                if res is None:
                    print(f"{cfg:<20} {backend:<8} {rep:>3} FAILED: {err}")
                    append_csv(RESULTS, COLUMNS, {"run_id": run_id, "created": now(), "config": cfg,
                                                  "backend": backend, "repeat": rep, "chains": args.chains,
                                                  "tune": args.tune, "draws": args.draws, "load1_start": l0,
                                                  "load1_end": load1(), "note": f"failed: {err}"[:300]})
                    continue
                res.update(run_id=run_id, created=now(), repeat=rep, load1_start=l0, load1_end=load1(),
                           peak_mem_mb=round(peak, 1))
                append_csv(RESULTS, COLUMNS, res)
                rows.append(res)
                print(f"{cfg:<20} {res['backend']:<8} {rep:>3} {l0:>5} {res['compile_s']:>9} {res['sampling_s']:>10} "
                      f"{min(res['min_ess_bulk'], res['min_ess_tail']):>7} {res['max_rhat']:>6} "
                      f"{res['divergences']:>4} {res['min_ess_per_s']:>8} {res['peak_mem_mb']:>7}", flush=True)
        ratios = ratios_to_stan(rows)
        if ratios:
            print(f"{cfg}: min ESS/s relative to Stan: " + ", ".join(f"{b} {r}" for b, r in ratios.items()))
    if not args.no_report:
        import report

        report.write_results_md()
        print(f"appended to {RESULTS}; wrote {report.RESULTS_MD}")


if __name__ == "__main__":
    main()
