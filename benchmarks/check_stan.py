"""Check that the Stan references are the package's models. Not a test (needs pystan and g++).

Two checks, each printed with a PASS/FAIL line:

1. Log density up to a constant. Where the Stan program samples in exactly PyMC's unconstrained
   coordinates (the response model; the pulse model with ``correlated = false``), the difference
   of the two log densities (Jacobians included) must be the same at every point: checked at
   ``--points`` random points around the initial point.
2. Posterior means (the correlated pulse model, whose correlation matrix Stan parameterises
   differently): population parameters of a small cohort fitted by both, compared with
   z = (mean_pymc - mean_stan) / sqrt(mcse_pymc^2 + mcse_stan^2).

    python benchmarks/check_stan.py               # all checks
    python benchmarks/check_stan.py --skip-posterior
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stan_ref  # noqa: E402
from _common import RESULTS_DIR, load1, now  # noqa: E402

LOG: list[str] = []


def say(text: str) -> None:
    """Print and keep for ``results/check_stan.txt``."""
    print(text, flush=True)
    LOG.append(text)


def _family(spec):
    from bayes_blina.families import get_family
    from bayes_blina.spec import load_spec

    sp = load_spec(spec)
    return sp, get_family(sp.family)(sp.options, sp.priors)


def _response_case():
    from bayes_blina.simulate import simulate_response_cohort

    ds = simulate_response_cohort(400, seed=11)[0]
    sp, fam = _family({"name": "r", "family": "response",
                       "options": {"factors": ["regimen", "age_group", "blast_burden"], "study_effect": False,
                                   # PyMC's coordinates are then Stan's (zero-sum transform, not rotated)
                                   "parameterization": "noncentered"}})
    return ds, fam


def _pulse_case(correlated: bool, n: int = 12, **options):
    from bayes_blina.simulate import simulate_cohort

    ds = simulate_cohort("adult-exploratory", n, seed=5)[0]
    sp, fam = _family("cytokine-core")
    # event_coordinates = false: PyMC's unconstrained coordinates are then Stan's (gamma_dose, ...)
    sp, fam = _family({"name": "c", "family": "pulse",
                       "options": {**sp.options, "correlated": correlated, "event_coordinates": False, **options},
                       "priors": sp.priors})
    return ds, fam


def _stan_vector(kind, fam, prepared, point: dict[str, np.ndarray]) -> np.ndarray:
    """PyMC's unconstrained point as Stan's unconstrained vector (declaration order, column-major)."""
    parts = []
    if kind == "response":
        parts.append(point["p_typical_logodds__"].ravel())
        parts.append(np.array([float(point[f"sd_{f}_log__"]) for f in fam.options.factors]))
        for f in fam.options.factors:
            for nm in (f"beta_{f}_raw",):
                if nm in point:
                    parts.append(point[nm].ravel())
        if "sd_study_log__" in point:
            parts += [point["sd_study_log__"].ravel(), point["study_effect_raw"].ravel()]
    else:
        mode = stan_ref.timing_mode(fam)
        names = ["log_baseline_mu", "sd_log_baseline_log__", "gamma_dose", "delta_reexposure", "kappa_cycle"]
        names += ([] if mode == 1 else ["log_tpeak"]) + ["k_shape_log__", "sigma_obs_log__", "sd_log_amp_log__",
                                                         "log_peak_c"]
        for nm in names:
            parts.append(point[nm].ravel())
        for nm in ("log_peak_i", "u_baseline"):
            parts.append(point[nm].ravel(order="F"))  # Stan matrices are column-major
        if mode:
            parts.append(point["sd_log_tpeak_log__"].ravel())
            if mode == 1:
                parts.append(point["log_tpeak_c"].ravel())
            parts.append(point["log_tpeak_i" if mode == 3 else "v_tpeak"].ravel(order="F"))
    return np.concatenate(parts)


def check_log_density(kind: str, ds, fam, points: int, seed: int) -> bool:
    prepared = fam.prepare(ds)
    model = fam.build(prepared)
    data = stan_ref.stan_data(fam, prepared)
    smodel, secs = stan_ref.build(kind, data)
    logp = model.compile_logp(jacobian=True)
    ip = model.initial_point()
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(points):
        pt = {k: np.asarray(v, dtype=float) + rng.normal(0.0, 0.3, np.shape(v)) for k, v in ip.items()}
        lp_pymc = float(logp(pt))
        lp_stan = float(smodel.log_prob(_stan_vector(kind, fam, prepared, pt).tolist(), adjust_transform=True))
        diffs.append(lp_stan - lp_pymc)
    diffs = np.array(diffs)
    spread = float(diffs.max() - diffs.min())
    ok = bool(np.isfinite(diffs).all() and spread < 1e-6 * max(1.0, float(np.abs(diffs).max())))
    opts = {k: getattr(fam.options, k) for k in ("correlated", "patient_timing", "timing_sampling")
            if hasattr(fam.options, k)}
    say(f"{'PASS' if ok else 'FAIL'} log density {kind} ({opts or 'study effect off'}): Stan - PyMC = {diffs.mean():.6f} at {points} points, "
          f"spread {spread:.2e} (build {secs:.1f} s)")
    return ok


def check_posterior_means(n: int, chains: int, draws: int, seed: int) -> bool:
    import arviz as az

    from bayes_blina.diagnostics import convergence_verdict
    from bayes_blina.families.pulse import POPULATION_PARAMETERS
    from bayes_blina.inference import sample_model
    from bayes_blina.spec import SamplerConfig

    ds, fam = _pulse_case(True, n)
    prepared = fam.prepare(ds)
    model = fam.build(prepared)
    idata_pm, used = sample_model(model, SamplerConfig(chains=chains, draws=draws, tune=draws, seed=seed))
    smodel, _ = stan_ref.build("pulse", stan_ref.stan_data(fam, prepared), seed=seed)
    fit, _ = stan_ref.sample(smodel, chains=chains, draws=draws, tune=draws)
    idata_st = stan_ref.to_idata("pulse", fit, fam, prepared, chains=chains, draws=draws)
    names = list(POPULATION_PARAMETERS) + ["corr_amp"]
    zs = []
    lines = []
    for name in names:
        a, b = idata_pm.posterior[name], idata_st.posterior[name]
        ma, mb = a.mean(("chain", "draw")).values.ravel(), b.mean(("chain", "draw")).values.ravel()
        sa = az.mcse(as_dataset(idata_pm.posterior)[[name]], method="mean")[name].values.ravel()
        sb = az.mcse(as_dataset(idata_st.posterior)[[name]], method="mean")[name].values.ravel()
        keep = (sa > 0) & (sb > 0)  # the diagonal of corr_amp is constant
        z = (ma[keep] - mb[keep]) / np.sqrt(sa[keep] ** 2 + sb[keep] ** 2)
        zs.append(z)
        lines.append(f"  {name:<18} {used}: {np.round(ma[keep], 3)}  stan: {np.round(mb[keep], 3)}  z: {np.round(z, 1)}")
    z = np.concatenate(zs)
    vp = convergence_verdict(idata_pm, var_names=names)
    vs = convergence_verdict(idata_st, var_names=names)
    ok = bool(np.abs(z).max() < 4.0 and np.mean(np.abs(z) > 2.5) < 0.1)
    say("\n".join(lines))
    say(f"{'PASS' if ok else 'FAIL'} posterior means, pulse model (correlated, {n} patients, {chains}x{draws}): "
          f"max |z| {np.abs(z).max():.2f} over {z.size} quantities; share |z| > 2.5: {np.mean(np.abs(z) > 2.5):.2f}; "
          f"max R-hat {used} {vp.max_rhat:.3f}, Stan {vs.max_rhat:.3f}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--skip-posterior", action="store_true")
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args(argv)
    ok = check_log_density("response", *_response_case(), args.points, args.seed)
    for opts in ({}, {"timing_sampling": "non_centred"}, {"timing_sampling": "centred"}, {"patient_timing": False}):
        ok &= check_log_density("pulse", *_pulse_case(False, **opts), args.points, args.seed)
    if not args.skip_posterior:
        ok &= check_posterior_means(args.patients, args.chains, args.draws, args.seed)
    out = RESULTS_DIR / ("check_stan_quick.txt" if args.skip_posterior else "check_stan.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"check_stan.py run {now()} (load {load1()}):\n" + "\n".join(LOG) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
