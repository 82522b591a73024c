"""Simulation-based calibration (SBC) of a model spec, parallel over simulations with dask.

For simulation ``i`` of ``N`` (Talts et al. 2018, *Validating Bayesian inference algorithms with
simulation-based calibration*, arXiv:1804.06788):

1. ``theta_i``: the ``i``-th draw of one prior sample of size ``N`` (PyMC draws them one after the
   other from ``seed``, so ``theta_i`` does not depend on ``N``); families with flat sampling
   coordinates (``pulse``) are drawn in their plain form (``peak_coordinates = false``);
2. a data set simulated from ``theta_i`` on a fixed design (the dataset given, or
   :func:`builtin_design`) with :func:`bayes_blina.checks.predictive.simulate_observations`
   (censored like the design's assay), with seed ``seed + i``;
3. a fit of the spec as it is (its own parameterisation) by nutpie, with sampler seed ``seed + i``
   (``chains`` chains, ``tune`` tuning and ``draws`` kept draws per chain), thinned to
   ``rank_draws`` (``L``) evenly spaced draws;
4. for every scalar named quantity (the family's summary variables, one per element; the
   diagonal of correlation matrices left out), the rank of ``theta_i`` among the ``L`` draws: the
   number of draws below it (ties broken at random), in ``0 .. L``.

If the inference is correct, every quantity's ranks are uniform on ``0 .. L``. Each quantity is
tested with a chi-square test on ``B`` equal bins of ranks (``B`` divides ``L + 1``; at most 20 and
at least 5 expected ranks per bin) and with the largest distance between the ranks' ECDF and the
uniform CDF (its p-value simulated from uniform ranks). The verdict fails when any p-value is below
``alpha / (2 Q)`` (Bonferroni over ``Q`` quantities and the two tests; ``alpha = 0.01``).

Compiled once
-------------
Each model is compiled once per process (per dask worker) and reused: SBC builds the model with
:attr:`~bayes_blina.families.base.Prepared.swappable`, with which the families register their
observed arrays as ``pm.Data`` (``log_y``, ``log_limit``, ``log_lower``, ``is_censored``,
``cell_y``, ``agg_r``, ``cr_y``, with a part's prefix in the joint model; a fit has them as
constants); nutpie's ``with_data`` then puts a simulation's data in,
so a simulation costs one sampler run (well under a second for ``response`` on the built-in
design, seconds to a minute for a small ``pulse`` design) instead of a compilation (up to a minute
or more with numba). A family whose model lacks one of those data is refused with a clear error
(it would otherwise fit the design's data in every simulation). ``tests/test_sbc.py`` and
``tests/test_sbc_joint.py`` check that the swapped model's log density equals that of a model
built directly on the simulated data.

Joint model
-----------
Prior draws with the cytokine part in its plain form (``cytokines.peak_coordinates = false``); each
part's rows simulated by its own family (censored like the design), each CR patient's outcome
``Bernoulli(p_cr)``; the fit in the spec's own parameterisation. Ranked: the CR part (``p_typical``,
``alpha``, ``beta_<biomarker>``, ``sd_<factor>``, ``beta_<factor>``) and every prefixed summary
variable of the sub-models; ``or_<biomarker>`` and ``p_or_<biomarker>_gt_1`` are left out (a
monotone transform and the sign of ``beta_<biomarker>``: its ranks again). Built-in design: the
``adult-exploratory`` cohort with 20 patients.

Deliberate mis-specification (tests only)
-----------------------------------------
``misspecify = "prior_scale"`` fits with the scale of every prior halved (``sigma / 2``, a Gamma's
or Exponential's rate doubled; Beta and Uniform priors unchanged) while the data come from the
declared priors; ``"drop_lower_half"`` keeps only the posterior draws at or above each quantity's
posterior median (a sampler that never visits the lower half of the parameter's range). Both must
make SBC fail; they exist to show that it can.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import hashlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from bayes_blina.errors import SpecError
from bayes_blina.likelihood import censored_rows

__all__ = ["MISSPECIFICATIONS", "SBCResult", "SBCSettings", "builtin_design", "run_sbc", "uniformity"]

log = logging.getLogger("bayes_blina")

#: Test-only switches that make the inference deliberately wrong.
MISSPECIFICATIONS = ("prior_scale", "drop_lower_half")

#: Seed of the built-in trajectory design (a small virtual cohort).
DESIGN_SEED = 20170314


@dataclass(frozen=True)
class SBCSettings:
    """Settings of an SBC run (see the module docstring).

    Attributes
    ----------
    sims : int
        Number of simulations ``N``.
    chains, tune, draws : int
        Sampler: chains, tuning iterations and kept draws per chain.
    rank_draws : int
        ``L``: posterior draws each rank is computed against (evenly thinned from
        ``chains * draws``; must not exceed it).
    seed : int
        Base seed: the prior sample, and simulation ``i``'s data and sampler use ``seed + i``.
    target_accept : float
        NUTS target acceptance rate.
    compile_backend : {"auto", "numba", "jax"}
        nutpie's compiler; ``auto`` is numba (pytensor's JAX back end lacks ``erfcx``, which the
        censored likelihood uses).
    misspecify : str or None
        Test-only switch (:data:`MISSPECIFICATIONS`).
    alpha : float
        Family-wise level of the verdict.
    """

    sims: int = 100
    chains: int = 2
    tune: int = 300
    draws: int = 250
    rank_draws: int = 99
    seed: int = 20240501
    target_accept: float = 0.9
    compile_backend: Literal["auto", "numba", "jax"] = "auto"
    misspecify: str | None = None
    alpha: float = 0.01

    def __post_init__(self) -> None:
        if self.sims < 2:
            raise SpecError(f"SBC needs at least 2 simulations (found sims={self.sims})")
        if self.chains < 1 or self.draws < 1 or self.tune < 0:
            raise SpecError("SBC needs chains >= 1, draws >= 1 and tune >= 0")
        if not 1 <= self.rank_draws <= self.chains * self.draws:
            raise SpecError(f"rank_draws must be between 1 and chains * draws = {self.chains * self.draws} "
                            f"(found {self.rank_draws})")
        if self.misspecify is not None and self.misspecify not in MISSPECIFICATIONS:
            raise SpecError(f"unknown misspecify {self.misspecify!r}; expected one of {', '.join(MISSPECIFICATIONS)}")
        if self.compile_backend not in ("auto", "numba", "jax"):
            raise SpecError(f"compile_backend must be auto, numba or jax (found {self.compile_backend!r})")
        if not 0 < self.alpha < 1:
            raise SpecError(f"alpha must be between 0 and 1 (found {self.alpha})")


@dataclass
class SBCResult:
    """Result of :func:`run_sbc`.

    Attributes
    ----------
    spec_name, family, design : str
        What was calibrated, and on which design.
    settings : SBCSettings
    ranks : DataFrame
        ``sim, seed, quantity, prior_value, rank, posterior_mean, posterior_sd``.
    sims : DataFrame
        One row per simulation: ``sim, seed, wall_s`` (data simulation and fit), ``fit_s``,
        ``divergences``, ``max_rhat``, ``min_ess_bulk`` and a data summary.
    tests : DataFrame
        One row per quantity (:func:`uniformity`).
    passed : bool
    verdict : str
    wall_s : float
        Wall time of the whole run.
    """

    spec_name: str
    family: str
    design: str
    settings: SBCSettings
    ranks: pd.DataFrame
    sims: pd.DataFrame
    tests: pd.DataFrame
    passed: bool
    verdict: str
    wall_s: float
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# designs
# ------------------------------------------------------------------------------------------------


def _response_design(options: dict[str, Any], n: int = 60):
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.families.levels import FACTORS

    factors = options.get("factors", ["regimen", "age_group", "blast_burden"])
    study_effect = options.get("study_effect", True)
    extra = {"regimen": ["5-15", "15", "5-15-30"], "region": ["EU", "US"]}
    df = pd.DataFrame({"subject_id": [f"SBC{i:03d}" for i in range(n)]})
    df["study"] = [("A", "B", "C")[i % 3] if study_effect else "A" for i in range(n)]
    stride = 1
    for f in factors:  # a full factorial order: every combination of levels in turn
        levels = FACTORS.get(f) or extra[f]
        df[f] = [levels[(i // stride) % len(levels)] for i in range(n)]
        stride *= len(levels)
    if "prior_relapses" in factors:
        df = df.rename(columns={"prior_relapses": "prior_relapses_group"})
    df["response"] = pd.array(np.zeros(n, dtype=int), dtype="Int64")
    return Dataset(subjects=df, name=f"sbc-response-design-{n}", origin="bayes_blina.checks.sbc.builtin_design")


def builtin_design(spec, n: int | None = None):
    """The small fixed design SBC uses when no dataset is given.

    The family's :attr:`~bayes_blina.families.ModelFamily.outcome` decides. Binary outcomes
    (``response``): ``n = 60`` patients (the family's ``sbc_patients``) crossing every level of the
    spec's factors, in three studies when the spec has a study effect (one otherwise). Trajectory
    families: the ``adult-exploratory`` virtual cohort of ``n = 10`` patients (seed
    :data:`DESIGN_SEED`), whose sampling times, dosing and assay limits are used (its values are
    replaced by simulated ones); ``joint``: the same cohort with ``n = 20`` patients (their
    responses become the CR rows; the joint model uses cycle-1 data by default).

    Raises
    ------
    SpecError
        For a family no simulation-based check applies to (``subgroups``: fit it per partition).
    """
    from bayes_blina.families import get_family
    from bayes_blina.spec import load_spec

    spec = load_spec(spec)
    cls = get_family(spec.family)
    if cls.outcome == "binary":
        return _response_design(spec.options, n or cls.sbc_patients)
    if cls.outcome not in ("trajectory", "composite"):
        raise SpecError(f"SBC is not available for the {spec.family!r} family (it declares no outcome a "
                        "simulation-based check can replicate)")
    from bayes_blina.simulate import simulate_cohort

    ds, _ = simulate_cohort("adult-exploratory", n=n or cls.sbc_patients, seed=DESIGN_SEED)
    return ds


# ------------------------------------------------------------------------------------------------
# quantities, ranks, tests
# ------------------------------------------------------------------------------------------------


def _quantities(family, prior) -> list[tuple[str, str, tuple[int, ...]]]:
    """(label, variable, index) of every scalar quantity ranked."""
    out = []
    for v in family.summary_vars():
        if v not in prior:
            continue
        if family.derived_summary_prefixes and v.startswith(family.derived_summary_prefixes):
            continue  # a transform of another variable (an odds ratio): its ranks again
        da = prior[v]
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        shape = [da.sizes[d] for d in dims]
        for idx in np.ndindex(*shape) if shape else [()]:
            if v.startswith("corr") and len(idx) == 2 and idx[0] >= idx[1]:
                continue  # diagonal (constant 1) and the mirrored lower triangle
            labels = [str(da.coords[d].values[k]) if d in da.coords else str(k) for d, k in zip(dims, idx)]
            out.append((f"{v}[{','.join(labels)}]" if labels else v, v, tuple(int(k) for k in idx)))
    return out


def _rank(theta: float, draws: np.ndarray, rng: np.random.Generator) -> int:
    below = int(np.sum(draws < theta))
    ties = int(np.sum(draws == theta))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def _n_bins(n_sims: int, rank_draws: int, max_bins: int = 20) -> int:
    cands = [d for d in range(1, rank_draws + 2) if (rank_draws + 1) % d == 0 and d <= max_bins and n_sims / d >= 5]
    return max(cands) if cands else 1


def _ecdf_stat(ranks: np.ndarray, L: int) -> np.ndarray:
    """max_k |F_hat(k) - (k + 1) / (L + 1)| for each row of ``ranks`` (sets of ranks)."""
    ranks = np.atleast_2d(ranks)
    S, N = ranks.shape
    counts = np.bincount((ranks + (L + 1) * np.arange(S)[:, None]).ravel(), minlength=S * (L + 1)).reshape(S, L + 1)
    ecdf = np.cumsum(counts, axis=1) / N
    return np.abs(ecdf - np.arange(1, L + 2) / (L + 1)).max(axis=1)


def uniformity(ranks: np.ndarray, rank_draws: int, *, bins: int | None = None, n_ref: int = 20000,
               seed: int = 0) -> dict[str, float]:
    """Tests of uniformity of SBC ranks on ``0 .. rank_draws``.

    Parameters
    ----------
    ranks : array of int
        One rank per simulation.
    rank_draws : int
        ``L``.
    bins : int, optional
        Chi-square bins (must divide ``L + 1``); default: the largest divisor of ``L + 1`` up to 20
        with at least 5 expected ranks per bin.
    n_ref : int
        Simulated uniform rank sets behind the ECDF p-value.
    seed : int
        Seed of those sets.

    Returns
    -------
    dict
        ``n_sims, bins, chi2, df, p_chi2, ecdf_max_dev, p_ecdf``.
    """
    r = np.asarray(ranks, dtype=np.int64)
    L, N = int(rank_draws), len(r)
    if r.min() < 0 or r.max() > L:
        raise SpecError(f"ranks must lie in 0..{L}")
    B = bins or _n_bins(N, L)
    if (L + 1) % B:
        raise SpecError(f"bins ({B}) must divide rank_draws + 1 ({L + 1})")
    obs = np.bincount(r * B // (L + 1), minlength=B)
    exp = N / B
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p_chi2 = float(stats.chi2.sf(chi2, B - 1)) if B > 1 else 1.0
    d = float(_ecdf_stat(r[None, :], L)[0])
    ref = _ecdf_stat(np.random.default_rng(seed).integers(0, L + 1, size=(n_ref, N)), L)
    p_ecdf = float((1 + np.sum(ref >= d - 1e-12)) / (n_ref + 1))
    return {"n_sims": N, "bins": B, "chi2": chi2, "df": B - 1, "p_chi2": p_chi2, "ecdf_max_dev": d, "p_ecdf": p_ecdf}


# ------------------------------------------------------------------------------------------------
# mis-specified priors
# ------------------------------------------------------------------------------------------------


def _halved_scale(p):
    from bayes_blina.priors import Prior

    q = dict(p.params)
    if p.dist in ("Normal", "StudentT", "HalfNormal", "HalfStudentT", "LogNormal", "TruncatedNormal"):
        q["sigma"] = q["sigma"] / 2
    elif p.dist == "Gamma":
        q["beta"] = q["beta"] * 2
    elif p.dist == "Exponential":
        q["lam"] = q["lam"] * 2
    elif p.dist == "HalfCauchy":
        q["beta"] = q["beta"] / 2
    else:  # Beta, Uniform: no scale to halve without changing the support
        return None
    return Prior(p.dist, **q)


def _misspecification_term(model, priors):
    """``sum over priors of log p_wrong(x) - log p_declared(x)`` (scale-halved priors), or None."""
    import pymc as pm
    import pytensor.tensor as pt

    terms = []
    for name, pri in priors.items():
        wrong = _halved_scale(pri)
        if wrong is None or name not in model.named_vars:
            continue
        x = model[name]
        right_d = getattr(pm, pri.dist).dist(**pri.params)
        wrong_d = getattr(pm, wrong.dist).dist(**wrong.params)
        terms.append(pt.sum(pm.logp(wrong_d, x)) - pt.sum(pm.logp(right_d, x)))
    return pt.add(*terms) if len(terms) > 1 else (terms[0] if terms else None)


# ------------------------------------------------------------------------------------------------
# fitting (runs on the workers)
# ------------------------------------------------------------------------------------------------

#: Per-process cache of compiled models (one per worker process), keyed by the context token.
_COMPILED: dict[str, Any] = {}


def _backend(ctx: dict) -> str:
    b = ctx["settings"].compile_backend
    return "numba" if b == "auto" else b


#: Models compiled by this process (``fit_simulation`` reports how many each simulation needed).
COMPILATIONS = 0


def _compile(model, backend: str):
    import nutpie

    global COMPILATIONS
    COMPILATIONS += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backend == "jax":
            return nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax", freeze_model=False)
        return nutpie.compile_pymc_model(model)


def _fit_family(ctx: dict):
    from bayes_blina.families import get_family
    from bayes_blina.spec import load_spec

    spec = load_spec(ctx["spec"])
    return get_family(spec.family)(spec.options, spec.prior_objects())


def _add_switch(model, fam):
    """Add ``sbc_misspecify * (log p_wrong - log p_declared)`` (a shared switch, 0 = off)."""
    import pymc as pm
    import pytensor

    term = _misspecification_term(model, fam.priors)
    if term is not None:
        switch = pytensor.shared(np.float64(0.0), name="sbc_misspecify")
        with model:
            pm.Potential("sbc_misspecify_term", switch * term)


def _swappable_model(ctx: dict):
    """The spec's model on the design, built with every observed array as ``pm.Data``
    (:attr:`~bayes_blina.families.base.Prepared.swappable`), plus the misspecification switch."""
    fam = _fit_family(ctx)
    model = fam.build(replace(ctx["prepared"], swappable=True))
    _add_switch(model, fam)
    return model


def sim_rows(data: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """A simulation's censored rows of one trajectory part, as the likelihood takes them
    (:func:`~bayes_blina.likelihood.censored_rows`; ``is_censored`` as int8, the ``pm.Data`` type)."""
    rows = censored_rows(data[prefix + "log_y"], data[prefix + "log_limit"], data[prefix + "censored"],
                         data.get(prefix + "log_lower"))
    rows["is_censored"] = rows["is_censored"].astype(np.int8)
    return {prefix + k: v for k, v in rows.items()}


def _trajectory_prefixes(data: dict) -> list[str]:
    """Prefixes of the trajectory parts in a simulation's data (``<prefix>censored`` keys; ``""``
    for a single trajectory family, ``tcell_``/``cyt_`` for the joint model)."""
    return [k[:-len("censored")] for k in data if k.endswith("censored")]


def _data_updates(ctx: dict, data: dict) -> dict[str, np.ndarray]:
    """The model's ``pm.Data`` values for one simulation (names as the families register them)."""
    out: dict[str, np.ndarray] = {"sbc_misspecify": np.float64(1.0 if ctx["settings"].misspecify == "prior_scale"
                                                                else 0.0)}
    for key in ("cell_y", "agg_r", "cr_y"):  # counts and binary outcomes
        if key in data:
            out[key] = np.asarray(data[key]).astype(np.int64)
    for q in _trajectory_prefixes(data):
        out.update(sim_rows(data, q))
    return out


def _compiled_for(ctx: dict, data: dict):
    """The compiled model (once per process) with this simulation's data swapped in."""
    key = ctx["token"]
    if key not in _COMPILED:
        _COMPILED[key] = _compile(_swappable_model(ctx), _backend(ctx))
    compiled = _COMPILED[key]
    have = _shared_names(compiled)
    if ctx["settings"].misspecify == "prior_scale" and "sbc_misspecify" not in have:
        raise SpecError("misspecify = 'prior_scale': the spec has no prior with a scale to halve")
    updates = _data_updates(ctx, data)
    # data the model may lack: no rows (aggregates of a design without them), no finite lower limit
    missing = [k for k, v in updates.items() if k not in have and k != "sbc_misspecify" and np.size(v)
               and not (k.endswith("log_lower") and not np.isfinite(v).any())]
    if missing:
        # a model whose data cannot be swapped would fit the design's data in every simulation
        raise SpecError(f"the SBC model has no pm.Data named {', '.join(missing)} (it has {sorted(have)}); "
                        f"the family must register its observed arrays with pm.Data")
    return compiled.with_data(**{k: v for k, v in updates.items() if k in have})


def _shared_names(compiled) -> set[str]:
    """Names of the shared variables (data) of a compiled nutpie model."""
    keys = getattr(compiled, "shared_var_keys", None)  # nutpie >= 0.16.9: variable -> internal key
    if keys:
        return {str(v.name) for v in keys}
    return set(getattr(compiled, "shared_data", None) or {})


def _thin(x: np.ndarray, L: int) -> np.ndarray:
    return x[np.linspace(0, len(x) - 1, L).round().astype(np.int64)]


def fit_simulation(ctx: dict, i: int, data: dict) -> dict[str, Any]:
    """Fit simulation ``i`` (its data in ``data``) and return the thinned draws of every quantity.

    Runs on a dask worker (or in-process); compiled models are cached per process. A fit that
    raises is returned as ``{"sim": i, "seed": ..., "error": message}`` (the run reports it).
    """
    t0 = time.perf_counter()
    try:
        return _fit_simulation(ctx, i, data)
    except Exception as err:  # noqa: BLE001 - one failed fit must not lose the others
        return {"sim": i, "seed": ctx["settings"].seed + i, "error": f"{type(err).__name__}: {err}"[:500],
                "fit_s": time.perf_counter() - t0}


def _fit_simulation(ctx: dict, i: int, data: dict) -> dict[str, Any]:
    import arviz as az
    import nutpie
    from threadpoolctl import threadpool_limits

    s: SBCSettings = ctx["settings"]
    seed = s.seed + i
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = COMPILATIONS
        compiled = _compiled_for(ctx, data)
        compilations = COMPILATIONS - before
        t1 = time.perf_counter()
        trace = nutpie.sample(compiled, chains=s.chains, tune=s.tune, draws=s.draws, seed=seed,
                              cores=ctx["cores"], progress_bar=False, save_warmup=False,
                              target_accept=s.target_accept)
    t2 = time.perf_counter()
    post = as_dataset(trace.posterior)
    n = s.chains * s.draws
    out = np.empty((len(ctx["quantities"]), s.rank_draws))
    means, sds = np.empty(len(out)), np.empty(len(out))
    per_chain = {}
    for q, (_, var, idx) in enumerate(ctx["quantities"]):
        x = post[var].values[(slice(None), slice(None), *idx)]  # (chain, draw)
        per_chain[q] = x
        flat = x.reshape(n)
        means[q], sds[q] = flat.mean(), flat.std()
        if s.misspecify == "drop_lower_half":
            flat = flat[flat >= np.median(flat)]
        out[q] = _thin(flat, s.rank_draws)
    rhat, ess = [], []
    if s.chains > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for x in per_chain.values():
                if np.ptp(x) > 0:
                    rhat.append(float(az.rhat(x)))
                    ess.append(float(az.ess(x, method="bulk")))
    div = int(trace.sample_stats["diverging"].sum()) if "diverging" in trace.sample_stats else 0
    return {"sim": i, "seed": seed, "draws": out, "posterior_mean": means, "posterior_sd": sds,
            "fit_s": t2 - t0, "compile_s": t1 - t0, "compilations": compilations, "divergences": div,
            "max_rhat": max(rhat) if rhat else math.nan, "min_ess_bulk": min(ess) if ess else math.nan}


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------


def _simulate_data(family, prepared, theta: dict[str, np.ndarray], seed: int, design) -> tuple[dict, dict]:
    from bayes_blina.checks.predictive import censored_row_limits, simulate_observations

    rng = np.random.default_rng(seed)
    rep = simulate_observations(family, prepared, theta, rng, dataset=design)
    if family.outcome == "binary":
        data = {"cell_y": rep["cell_y"][0], "agg_r": rep["agg_r"][0]}
        n = len(prepared.arrays["pat_y"]) + int(prepared.arrays["agg_n"].sum())
        summary = {"responders": int(data["cell_y"].sum() + data["agg_r"].sum()), "patients": n}
    elif family.outcome == "composite":
        data, summary = {}, {}
        for q in rep["parts"]:
            lim, low = censored_row_limits(rep, q)  # below the LOD: its LOD; between LOD and LLOQ: both
            data.update({q + "log_y": rep[q + "log_y"][0], q + "censored": rep[q + "censored"][0],
                         q + "log_limit": lim[0], q + "log_lower": low[0]})
            summary[q + "censored_fraction"] = float(data[q + "censored"].mean())
        if "cr_y" in rep:
            data["cr_y"] = rep["cr_y"][0]
            summary.update({"responders": int(data["cr_y"].sum()), "patients": int(data["cr_y"].size)})
    else:
        lim, low = censored_row_limits(rep)  # below the LOD: its LOD; between LOD and LLOQ: both
        data = {"log_y": rep["log_y"][0], "censored": rep["censored"][0], "log_limit": lim[0], "log_lower": low[0]}
        summary = {"censored_fraction": float(data["censored"].mean())}
    return data, summary


def _report(progress, r: dict, done: int, total: int) -> None:
    msg = (f"SBC simulation {r['sim']} {'FAILED: ' + r['error'] if 'error' in r else 'done'} in "
           f"{r['fit_s']:.1f} s ({done} of {total})")
    log.info("%s", msg)
    if progress is not None:
        progress(msg)


def _run_tasks(ctx: dict, payloads: list[tuple[int, dict]], workers: int, scheduler: str | None,
               progress=None) -> list[dict]:
    if scheduler is None and workers <= 1:
        out = []
        for i, data in payloads:
            out.append(fit_simulation(ctx, i, data))
            _report(progress, out[-1], len(out), len(payloads))
        return out
    from dask.distributed import Client, LocalCluster, as_completed

    ctx = dict(ctx, cores=1)  # one thread per worker: chains one after the other
    cluster = None
    if scheduler is None:
        # compile here first: local workers then load the numba functions from the disk cache
        # instead of writing it at the same time (pytensor's numba cache is not safe when several
        # processes compile the same function at once)
        _compiled_for(ctx, payloads[0][1])
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        ctx_f = client.scatter(ctx, broadcast=True)
        futs = [client.submit(fit_simulation, ctx_f, i, data, key=f"sbc-{ctx['token'][:12]}-{ctx['run']}-{i}")
                for i, data in payloads]
        out = []
        for fut in as_completed(futs):
            out.append(fut.result())
            _report(progress, out[-1], len(out), len(futs))
        return out
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_sbc(spec, design=None, *, settings: SBCSettings | None = None, workers: int = 1,
            scheduler: str | None = None, progress=None) -> SBCResult:
    """Run simulation-based calibration of a model spec (module docstring).

    Parameters
    ----------
    spec : str, ModelSpec or dict
        The spec to calibrate (its family, options and priors; the sampler settings come from
        ``settings``).
    design : Dataset, str or path, optional
        Dataset whose design (patients, covariates, times, dosing, limits) is used; default
        :func:`builtin_design`.
    settings : SBCSettings, optional
        Number of simulations, sampler settings, seeds.
    workers : int
        ``1`` (and no scheduler): sequential, in this process. More: a ``dask.distributed``
        ``LocalCluster`` of that many single-threaded worker processes.
    scheduler : str, optional
        Address of an existing dask scheduler (``tcp://host:8786``); overrides ``workers``.
    progress : callable, optional
        Called with a one-line message as each simulation finishes.

    Returns
    -------
    SBCResult
    """
    from bayes_blina.checks.prior import prior_draws, prior_family
    from bayes_blina.checks.predictive import flatten_draws
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.spec import load_spec

    s = settings or SBCSettings()
    if int(workers) < 1:
        raise SpecError(f"workers must be at least 1 (found {workers})")
    t_start = time.perf_counter()
    spec = load_spec(spec)
    if design is None:
        design = builtin_design(spec)
    elif not isinstance(design, Dataset):
        from bayes_blina.data.io import read_dataset

        design = read_dataset(design)
    pfam = prior_family(spec)
    prepared = pfam.prepare(design)
    fit_fam = _fit_family({"spec": spec})
    prior = prior_draws(pfam, prepared, s.sims, s.seed)
    quantities = _quantities(fit_fam, prior)
    if not quantities:
        raise SpecError(f"model family {spec.family!r} names no quantities to calibrate")
    theta_all = flatten_draws(prior)

    token = hashlib.sha256(json.dumps({"spec": spec.to_toml_dict(), "design": design.sha256(),
                                       "backend": s.compile_backend}, sort_keys=True, default=str).encode()).hexdigest()
    ctx = {"spec": spec, "family": spec.family, "outcome": fit_fam.outcome, "prepared": prepared, "settings": s,
           "quantities": quantities, "token": token, "cores": min(s.chains, os.cpu_count() or 1),
           "run": hashlib.sha256(f"{time.time_ns()}".encode()).hexdigest()[:8]}

    payloads, summaries, sim_s = [], {}, {}
    for i in range(s.sims):
        t0 = time.perf_counter()
        theta = {k: v[i:i + 1] for k, v in theta_all.items()}
        data, summaries[i] = _simulate_data(pfam, prepared, theta, s.seed + i, design)
        sim_s[i] = time.perf_counter() - t0
        payloads.append((i, data))
    results = sorted(_run_tasks(ctx, payloads, int(workers), scheduler, progress), key=lambda r: r["sim"])

    rank_rows, sim_rows = [], []
    errors = [r for r in results if "error" in r]
    for r in errors:
        sim_rows.append({"sim": r["sim"], "seed": r["seed"], "wall_s": round(sim_s[r["sim"]] + r["fit_s"], 3),
                         "fit_s": round(r["fit_s"], 3), "error": r["error"], **summaries[r["sim"]]})
    for r in results:
        if "error" in r:
            continue
        i = r["sim"]
        rng = np.random.default_rng(s.seed + i)
        for q, (label, var, idx) in enumerate(quantities):
            theta = float(theta_all[var][(i, *idx)])
            rank_rows.append({"sim": i, "seed": r["seed"], "quantity": label, "prior_value": theta,
                              "rank": _rank(theta, r["draws"][q], rng),
                              "posterior_mean": float(r["posterior_mean"][q]), "posterior_sd": float(r["posterior_sd"][q])})
        sim_rows.append({"sim": i, "seed": r["seed"], "wall_s": round(sim_s[i] + r["fit_s"], 3),
                         "fit_s": round(r["fit_s"], 3), "compile_s": round(r["compile_s"], 3),
                         "compilations": r.get("compilations", 0),
                         "divergences": r["divergences"], "max_rhat": r["max_rhat"],
                         "min_ess_bulk": r["min_ess_bulk"], **summaries[i]})
    if len(errors) == len(results):
        raise SpecError(f"every SBC simulation failed to fit; the first: {errors[0]['error']}")
    ranks = pd.DataFrame(rank_rows)
    test_rows = []
    for k, (label, _, _) in enumerate(quantities):
        rr = ranks.loc[ranks["quantity"] == label, "rank"].to_numpy()
        test_rows.append({"quantity": label, **uniformity(rr, s.rank_draws, seed=s.seed + k)})
    tests = pd.DataFrame(test_rows)
    level = s.alpha / (2 * len(tests))
    tests["passed"] = (tests["p_chi2"] >= level) & (tests["p_ecdf"] >= level)
    failed = tests.loc[~tests["passed"], "quantity"].tolist()
    passed = not failed and not errors
    verdict = (f"SBC {'PASSED' if passed else 'FAILED'}: {len(tests)} quantities, {s.sims} simulations, "
               f"ranks against {s.rank_draws} draws; every chi-square and ECDF p-value must be >= "
               f"{level:.2g} (alpha {s.alpha:g} / {2 * len(tests)})"
               + (f"; non-uniform: {', '.join(failed)}" if failed else "")
               + (f"; {len(errors)} simulation(s) failed to fit (their ranks are missing, so the others are "
                  "not a fair sample): see sims.csv" if errors else ""))
    sims = pd.DataFrame(sim_rows).sort_values("sim").reset_index(drop=True)
    notes = []
    n_div = int((sims["divergences"] > 0).sum())
    if n_div:
        notes.append(f"{n_div} of {s.sims} simulations had divergent transitions "
                     f"({int(sims['divergences'].sum())} in all)")
    if s.misspecify:
        notes.append(f"deliberately mis-specified inference: misspecify = {s.misspecify!r} (tests only)")
    return SBCResult(spec_name=spec.name, family=spec.family, design=design.name, settings=s, ranks=ranks,
                     sims=sims, tests=tests, passed=passed, verdict=verdict,
                     wall_s=time.perf_counter() - t_start, notes=notes)
