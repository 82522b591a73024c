"""Stan reference implementations of the response and pulse models, run through pystan 3.

Benchmarks only (not part of the package; CI does not install pystan). The Stan programs in
``benchmarks/stan/`` take exactly the arrays that the package's families prepare
(``family.prepare(dataset).arrays``) and the family's priors; :func:`to_idata` returns their draws
under the package's variable names, so that ESS, R-hat and divergences are computed by the same
code (:func:`bayes_blina.diagnostics.convergence_verdict`) for every back end.

    pip install "pystan>=3.9" "setuptools<81"     # or: pip install 'bayes_blina[stan]'

httpstan compiles each program once with the machine's g++ (about a minute) and caches it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
STAN_FILES = {"response": HERE / "stan" / "response.stan", "pulse": HERE / "stan" / "pulse.stan"}


def stan_kind(family) -> str | None:
    """Which Stan reference implements ``family`` (None: there is none)."""
    return {"response": "response", "pulse": "pulse"}.get(family.name)


def _prior(family, name: str, dist: str) -> dict[str, float]:
    p = family.priors[name]
    if p.dist != dist:
        raise ValueError(f"the Stan reference needs a {dist} prior for {name} (the spec has {p})")
    return p.params


# ------------------------------------------------------------------------------------------ data
def response_data(family, prepared) -> dict[str, Any]:
    """Stan data for ``stan/response.stan`` from a response model's prepared arrays."""
    A, opt = prepared.arrays, family.options
    if len(A["agg_r"]):
        raise ValueError("the Stan reference of the response model takes patient-level data only "
                         "(this dataset has aggregate rows)")
    factors = list(opt.factors)
    K = [len(prepared.coords[f]) for f in factors]
    S = len(prepared.coords["study"])
    use_study = int(opt.study_effect and S > 1)
    # the PyMC model centres each direction partially (weights in data_use); the Stan program
    # centres a factor's effects or not: centred where most of the weight is
    weights = prepared.data_use["centring_weights"]
    pt = _prior(family, "p_typical", "Beta")
    sd = [_prior(family, f"sd_{f}", "Gamma") for f in factors]
    data = {
        "C": int(len(A["cell_n"])), "cell_n": A["cell_n"].astype(int).tolist(),
        "cell_y": A["cell_y"].astype(int).tolist(),
        "F": len(factors), "K": K,
        "cell_level": [(A[f"cell_{f}"] + 1).astype(int).tolist() for f in factors],  # -1 -> 0 unknown
        "centered": [int(len(weights[f]) > 0 and float(np.mean(weights[f])) > 0.5) for f in factors],
        "S": S, "cell_study": (A["cell_study"] + 1).astype(int).tolist(), "use_study": use_study,
        "p_typical_alpha": pt["alpha"], "p_typical_beta": pt["beta"],
        "sd_alpha": [p["alpha"] for p in sd], "sd_beta": [p["beta"] for p in sd],
        "sd_study_sigma": _prior(family, "sd_study", "HalfNormal")["sigma"] if use_study else 1.0,
    }
    return data


TIMING_MODES = {"patient_mean": 1, "non_centred": 2, "centred": 3}


def timing_mode(family) -> int:
    """The Stan program's ``timing_mode`` for a pulse family's options (0: no patient timing)."""
    opt = family.options
    if not getattr(opt, "patient_timing", False):
        return 0
    how = getattr(opt, "timing_sampling", None)
    if how is None:  # the option's first form
        how = "centred" if getattr(opt, "timing_centred", False) else "non_centred"
    if how not in TIMING_MODES:
        raise ValueError(f"the Stan reference does not know timing_sampling = {how!r}")
    return TIMING_MODES[how]


def _analyte_prior(family, name: str, dist: str, n: int) -> dict[str, list[float]]:
    """Per-analyte parameters of a pulse prior (the family may give analytes their own priors)."""
    if hasattr(family, "analyte_prior"):
        got, params = family.analyte_prior(name)
    else:
        got, params = family.priors[name].dist, family.priors[name].params
    if got != dist:
        raise ValueError(f"the Stan reference needs a {dist} prior for {name} (the spec has {got})")
    return {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)).tolist() for k, v in params.items()}


def pulse_data(family, prepared) -> dict[str, Any]:
    """Stan data for ``stan/pulse.stan`` from a pulse model's prepared arrays."""
    from bayes_blina.families.pulse import SCENARIOS

    A, opt = prepared.arrays, family.options
    if opt.covariates:
        raise ValueError("the Stan reference of the pulse model has no covariates (options.covariates = [])")
    if not opt.peak_coordinates:
        raise ValueError("the Stan reference of the pulse model samples in peak coordinates "
                         "(options.peak_coordinates = true)")
    cens = A["is_censored"].astype(bool)
    n_unc = int((~cens).sum())
    if cens[:n_unc].any():
        raise ValueError("the pulse model's rows are not ordered uncensored first")
    if "log_lower" in A and np.isfinite(np.asarray(A["log_lower"], dtype=float)[cens]).any():
        raise ValueError("the Stan reference of the pulse model has no interval-censored rows "
                         "(below = 'LLOQ' with a known lod)")
    n_ana = len(opt.analytes)
    data = {
        "N": int(len(cens)), "N_unc": n_unc, "S": len(prepared.coords["subject"]), "A": n_ana,
        "obs_subject": (A["obs_subject"] + 1).tolist(), "obs_analyte": (A["obs_analyte"] + 1).tolist(),
        "log_y": A["log_y"].tolist(), "log_limit": A["log_limit"].tolist(),
        "P": int(len(A["pair_obs"])), "pair_obs": (A["pair_obs"] + 1).tolist(),
        "pair_subject": (A["pair_subject"] + 1).tolist(), "pair_analyte": (A["pair_analyte"] + 1).tolist(),
        "pair_lag": A["pair_lag"].tolist(), "pair_log_dose": A["pair_log_dose"].tolist(),
        "pair_reexposure": A["pair_reexposure"].tolist(), "pair_cycle_m1": A["pair_cycle_m1"].tolist(),
        "first_log_dose": A["first_log_dose"].tolist(), "first_cycle_m1": A["first_cycle_m1"].tolist(),
        "event_centre": A["event_centre"].tolist(),
        "correlated": int(family._correlated()), "lkj_eta": float(opt.lkj_eta),
        "timing_mode": timing_mode(family),
        "n_scenario": len(SCENARIOS), "scenario": [list(v) for v in SCENARIOS.values()],
    }
    for name, dist, keys in (
        ("log_baseline_mu", "Normal", ("mu", "sigma")), ("sd_log_baseline", "Gamma", ("alpha", "beta")),
        ("log_amp_mu", "Normal", ("mu", "sigma")), ("sd_log_amp", "Gamma", ("alpha", "beta")),
        ("gamma_dose", "Normal", ("mu", "sigma")), ("delta_reexposure", "Normal", ("mu", "sigma")),
        ("kappa_cycle", "Normal", ("mu", "sigma")), ("log_tpeak", "Normal", ("mu", "sigma")),
        ("k_shape", "LogNormal", ("mu", "sigma")), ("sigma_obs", "HalfNormal", ("sigma",)),
    ):
        p = _analyte_prior(family, name, dist, n_ana)
        for k in keys:
            data[f"{name}_{k}"] = p[k]
    if data["timing_mode"]:
        p = _analyte_prior(family, "sd_log_tpeak", "Gamma", n_ana)
        data["sd_log_tpeak_alpha"], data["sd_log_tpeak_beta"] = p["alpha"], p["beta"]
    else:  # not in the model
        data["sd_log_tpeak_alpha"] = data["sd_log_tpeak_beta"] = [1.0] * n_ana
    return data


def stan_data(family, prepared) -> dict[str, Any]:
    """Stan data for whichever reference implements ``family``."""
    kind = stan_kind(family)
    if kind is None:
        raise ValueError(f"no Stan reference for model family {family.name!r}")
    return response_data(family, prepared) if kind == "response" else pulse_data(family, prepared)


# ------------------------------------------------------------------------------------------ run
def build(kind: str, data: dict[str, Any], seed: int = 1):
    """Compile (or take from httpstan's cache) and instantiate a Stan reference; returns (model, seconds)."""
    import stan

    code = STAN_FILES[kind].read_text(encoding="utf-8")
    t0 = time.perf_counter()
    model = stan.build(code, data=data, random_seed=int(seed))
    return model, time.perf_counter() - t0


def sample(model, *, chains: int, draws: int, tune: int, target_accept: float = 0.95):
    """NUTS with Stan's default adaptation; returns (fit, sampling seconds)."""
    t0 = time.perf_counter()
    fit = model.sample(num_chains=chains, num_samples=draws, num_warmup=tune, delta=target_accept)
    return fit, time.perf_counter() - t0


def _draws(fit, name: str, chains: int, draws: int) -> np.ndarray:
    """(chain, draw, *dims) array of a Stan quantity."""
    x = np.asarray(fit[name])
    dims = list(fit.dims[fit.param_names.index(name)]) if name in fit.param_names else []
    if not dims:
        x = x.reshape(-1)
    x = np.moveaxis(x, -1, 0)  # (chains * draws, *dims), chain-major
    return x.reshape(chains, draws, *x.shape[1:])


def to_idata(kind: str, fit, family, prepared, *, chains: int, draws: int):
    """The Stan draws as InferenceData with the package's variable names and dimensions."""
    import arviz as az

    c = prepared.coords
    post: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    if kind == "response":
        post["p_typical"] = _draws(fit, "p_typical", chains, draws)
        post["alpha"] = _draws(fit, "alpha", chains, draws)
        sd = _draws(fit, "sd_f", chains, draws)
        beta = _draws(fit, "beta_all", chains, draws)
        p_all = _draws(fit, "p_all", chains, draws)
        pos = 0
        for k, f in enumerate(family.options.factors):
            n = len(c[f])
            post[f"sd_{f}"] = sd[..., k]
            post[f"beta_{f}"] = beta[..., pos:pos + n]
            post[f"p_{f}"] = p_all[..., pos:pos + n]
            dims[f"beta_{f}"] = dims[f"p_{f}"] = [f]
            pos += n
        post["p_cell"] = _draws(fit, "p_cell", chains, draws)
        dims["p_cell"] = ["cell"]
        if family.options.study_effect and len(c["study"]) > 1:
            sds = _draws(fit, "sd_study", chains, draws)[..., 0]
            post["sd_study"] = sds
            post["study_effect"] = _draws(fit, "u_study", chains, draws)
            dims["study_effect"] = ["study"]
    else:
        mode = timing_mode(family)
        names = ("log_baseline_mu", "sd_log_baseline", "log_amp_mu", "sd_log_amp", "gamma_dose", "delta_reexposure",
                 "kappa_cycle", "log_tpeak", "k_shape", "sigma_obs", "log_peak_c")
        names += (("sd_log_tpeak",) if mode else ()) + (("log_tpeak_c",) if mode == 1 else ())
        for name in names:
            post[name] = _draws(fit, name, chains, draws)
            dims[name] = ["analyte"]
        for name in ("log_peak_i", "u_baseline", "log_baseline", "log_amp", "log_peak_first"):
            post[name] = _draws(fit, name, chains, draws)
            dims[name] = ["subject", "analyte"]
        if mode:
            post["log_tpeak_i"] = _draws(fit, "log_tpeak_i", chains, draws)
            dims["log_tpeak_i"] = ["subject", "analyte"]
            if mode in (1, 2):
                post["v_tpeak"] = _draws(fit, "v_tpeak", chains, draws)
                dims["v_tpeak"] = ["subject", "analyte"]
        post["typical_peak"] = _draws(fit, "typical_peak", chains, draws)
        dims["typical_peak"] = ["analyte", "scenario"]
        if family._correlated():
            post["corr_amp"] = _draws(fit, "corr_amp", chains, draws)
            dims["corr_amp"] = ["analyte", "analyte_b"]
    stats = {
        "diverging": _draws(fit, "divergent__", chains, draws).astype(bool),
        "energy": _draws(fit, "energy__", chains, draws),
        "n_steps": _draws(fit, "n_leapfrog__", chains, draws),
        "tree_depth": _draws(fit, "treedepth__", chains, draws),
        "lp": _draws(fit, "lp__", chains, draws),
        "step_size": _draws(fit, "stepsize__", chains, draws),
    }
    coords = {k: v for k, v in c.items() if any(k in d for d in dims.values())}
    idata = az.from_dict({"posterior": post, "sample_stats": stats}, coords=coords, dims=dims)
    idata.posterior.attrs["inference"] = "NUTS (Stan, pystan 3)"
    return idata
