"""Fast approximate inference for the inner loops of simulation studies (not MCMC).

A simulation study refits a model hundreds or thousands of times and uses only a few posterior
summaries of each fit (a subgroup rate, the posterior mean and SD of a log odds ratio, a
probability of exceeding a threshold). For that, an approximation of the posterior can be good
enough and is 10-100 times cheaper than MCMC. Methods (``[sampler] method`` of a spec, or
``fit(..., method=...)``):

``advi``
    Mean-field ADVI (PyMC's ``pm.fit``; ``approx_steps`` optimisation steps): a normal
    approximation with independent coordinates in the unconstrained space. Posterior means are
    usually good; SDs of correlated quantities are underestimated.
``fullrank_advi``
    ADVI with a full-rank normal (keeps correlations; slower per step, more steps needed).
``pathfinder``
    Multi-path Pathfinder (``pymc-extras``): quasi-Newton paths with importance resampling.
``laplace``
    Laplace approximation at the posterior mode (``pymc-extras``): a normal with the inverse
    Hessian as covariance, in the unconstrained space.

The result has the same groups and variables as an MCMC fit, with ``chains * draws`` independent
draws stored as **one** chain (there are no chains), and is marked approximate:
``posterior.attrs["approximate"] = 1``, ``posterior.attrs["inference"]`` names the method, and
``sample_stats`` holds a boolean ``approximate``. Its verdict (:func:`approximate_verdict`) fails the
convergence gate with the reason "not MCMC", so publication tables refuse it unless the caller
overrides; re-judged from a stored posterior, the single chain still fails the gate (R-hat needs
two chains). ``tests/test_approx.py`` checks the approximations against MCMC on the quantities
simulation studies use, with stated tolerances.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import importlib.util
import time
from typing import Any

import numpy as np

from bayes_blina.errors import SpecError
from bayes_blina.spec import APPROXIMATE_METHODS, GateConfig, SamplerConfig

__all__ = ["APPROXIMATE_METHODS", "approximate_method", "approximate_verdict", "fit_approximate"]


def _need_pymc_extras(method: str) -> None:
    if importlib.util.find_spec("pymc_extras") is None:
        raise SpecError(f"approximate method {method!r} needs pymc-extras, which is not installed "
                        "(pip install 'bayes_blina[approx]' or pip install pymc-extras); "
                        "use method = 'advi' or 'fullrank_advi'")


def fit_approximate(model, sampler: SamplerConfig, *, timing: dict[str, Any] | None = None,
                    progress: bool = False):
    """Fit an approximation of the posterior of ``model`` and draw from it.

    Parameters
    ----------
    model : pymc.Model
        The model.
    sampler : SamplerConfig
        ``method`` (one of :data:`~bayes_blina.spec.APPROXIMATE_METHODS`), ``chains * draws``
        draws in total, ``seed``, ``approx_steps`` (ADVI).
    timing : dict, optional
        Filled with ``compile_s`` (0: compilation is not separable here) and ``sampling_s``
        (optimisation and drawing).
    progress : bool
        Show the progress bar.

    Returns
    -------
    xarray.DataTree
        ``posterior`` with dimensions ``(chain=1, draw=chains*draws, ...)`` holding every free and
        deterministic variable (no transformed values), and ``sample_stats`` with ``approximate``.

    Raises
    ------
    SpecError
        If ``sampler.method`` is not an approximate method, or its package is missing.
    """
    import pymc as pm
    from threadpoolctl import threadpool_limits

    method = sampler.method
    if method not in APPROXIMATE_METHODS:
        raise SpecError(f"method {method!r} is not an approximate method; expected one of "
                        f"{', '.join(APPROXIMATE_METHODS)}")
    n_draws = sampler.chains * sampler.draws
    timing = {} if timing is None else timing
    t0 = time.perf_counter()
    with model, threadpool_limits(limits=1, user_api="blas"):
        if method in ("advi", "fullrank_advi"):
            approx = pm.fit(n=sampler.approx_steps, method=method, random_seed=sampler.seed,
                            progressbar=progress)
            idata = approx.sample(draws=n_draws, random_seed=sampler.seed + 1, return_inferencedata=True)
            extra = {"final_loss": float(np.mean(approx.hist[-max(1, len(approx.hist) // 20):]))}
        elif method == "pathfinder":
            _need_pymc_extras(method)
            import pymc_extras as pmx

            idata = pmx.fit_pathfinder(model=model, num_draws=n_draws, random_seed=sampler.seed,
                                       progressbar=progress, parallel=False)  # paths in this process
            extra = {}
        else:  # laplace
            _need_pymc_extras(method)
            import pymc_extras as pmx

            # freeze_model=False: models with initial values (flat peak coordinates) cannot be frozen
            idata = pmx.fit_laplace(model=model, draws=n_draws, random_seed=sampler.seed,
                                    progressbar=progress, include_transformed=False, freeze_model=False)
            extra = {}
    elapsed = time.perf_counter() - t0
    timing["compile_s"] = 0.0
    timing["sampling_s"] = round(elapsed, 3)
    return _normalise(idata, model, method, n_draws, extra)


def _normalise(idata, model, method: str, n_draws: int, extra: dict[str, float]):
    """One chain of ``n_draws`` draws of the model's named variables, marked approximate."""
    import xarray as xr

    post = as_dataset(idata.posterior)
    names = [v.name for v in model.free_RVs + model.deterministics if v.name in post]
    missing_det = [v.name for v in model.deterministics if v.name not in post]
    post = post[names]
    # fold all draws into one chain: approximate draws are independent, not a Markov chain
    stacked = post.stack(sample=("chain", "draw")).transpose("sample", ...)
    stacked = stacked.drop_vars(["sample", "chain", "draw"], errors="ignore").rename({"sample": "draw"})
    stacked = stacked.isel(draw=slice(0, n_draws)).expand_dims(chain=[0])
    stacked = stacked.assign_coords(draw=np.arange(stacked.sizes["draw"]))
    if missing_det:  # recompute deterministics that the method did not return
        stacked = _add_deterministics(stacked, model, missing_det)
    stacked.attrs = {"approximate": 1, "inference": f"{method} (approximate, not MCMC)",
                     **{k: v for k, v in extra.items()}}
    flag = xr.Dataset({"approximate": (("chain", "draw"), np.ones((1, stacked.sizes["draw"]), dtype=bool))},
                      coords={"chain": [0], "draw": stacked.coords["draw"].values})
    flag.attrs = {"approximate": 1, "method": method}
    return xr.DataTree.from_dict({"posterior": stacked, "sample_stats": flag})


def _add_deterministics(post, model, names: list[str]):
    """Evaluate the named deterministics of ``model`` at every draw of ``post`` (free variables)."""
    import pymc as pm

    ds = pm.compute_deterministics(post, var_names=names, model=model, merge_dataset=True,
                                   progressbar=False)
    return ds


def approximate_method(idata) -> str | None:
    """The approximate method that produced ``idata`` (None for MCMC or unmarked posteriors)."""
    post = getattr(idata, "posterior", None)
    if post is None or not post.attrs.get("approximate"):
        return None
    text = str(post.attrs.get("inference", "approximate"))
    return text.split(" ", 1)[0]


def approximate_verdict(idata, method: str, gate: GateConfig | None = None):
    """A failing convergence verdict that says the fit is approximate (not MCMC).

    The R-hat and ESS figures of the draws are reported for information (independent draws from
    the approximation have ESS close to their number); they say nothing about how close the
    approximation is to the posterior.
    """
    from bayes_blina.diagnostics import convergence_verdict

    import logging

    gate = gate or GateConfig()
    az_log = logging.getLogger("arviz")
    level = az_log.level
    az_log.setLevel(logging.ERROR)  # one chain: arviz logs that R-hat needs two; the verdict says so
    try:
        v = convergence_verdict(idata, gate)
    finally:
        az_log.setLevel(level)
    v.failures = [f"approximate inference ({method}): these draws are not MCMC, so the convergence "
                  "diagnostics do not apply; use NUTS for reported results (publication tables "
                  "refuse this fit unless overridden)"] + [
        f for f in v.failures if "2 chains" not in f and not f.startswith("R-hat")]
    v.passed = False
    return v
