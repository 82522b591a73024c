"""Fitting: spec + dataset → model → MCMC (or an approximation) → InferenceData with diagnostics.

The back end is chosen by the spec (``[sampler] backend``) or the caller:

``nutpie`` (``auto`` when installed)
    nutpie's NUTS on the model compiled with numba. The fastest back end measured on these models
    (``benchmarks/RESULTS.md``); its compilation (numba) takes tens of seconds, more on a busy
    machine, and is timed separately (``timing["compile_s"]``).
``pymc``
    PyMC's NUTS (pytensor's C back end); chains in parallel processes.
``numpyro``
    numpyro's NUTS through PyMC (JAX). On a GPU when JAX sees one (install ``jax[cuda12]``): the
    chains are then vectorised on the device; on a CPU they run in parallel (one host device per
    chain). Its ``sampling_s`` includes the JIT compilation.

Whatever the back end, chains run in parallel with one BLAS thread each: several BLAS threads per
chain on a busy machine make tiny matrix operations a thousand times slower (measured: a 3 x 3
triangular solve takes 14 ms instead of 15 µs).

``[sampler] method`` other than ``"nuts"`` fits an approximation instead (ADVI, Pathfinder or
Laplace; :mod:`bayes_blina.approx`), for the inner loops of simulation studies; such a fit is
marked as approximate and never passes the convergence gate.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any

import numpy as np

from bayes_blina.diagnostics import convergence_verdict
from bayes_blina.errors import SpecError
from bayes_blina.families import get_family
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.spec import ModelSpec, SamplerConfig, load_spec
from bayes_blina.store import Fit

log = logging.getLogger("bayes_blina")


def __getattr__(name: str):
    if name == "FitResult":  # the name of a fit in memory before issue 17 made fits one type
        import warnings

        warnings.warn("bayes_blina.inference.FitResult is bayes_blina.store.Fit", DeprecationWarning, stacklevel=2)
        return Fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_backend(name: str) -> str:
    """The back end that ``name`` stands for on this machine (``auto`` → nutpie if installed).

    Raises
    ------
    SpecError
        If the named back end (or, for numpyro, JAX) is not installed.
    """
    if name == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    if name not in ("nutpie", "pymc", "numpyro"):
        raise SpecError(f"unknown sampler back end {name!r}; expected one of auto, nutpie, pymc, numpyro")
    needed = {"nutpie": ["nutpie"], "numpyro": ["numpyro", "jax"]}.get(name, [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise SpecError(f"sampler back end {name!r} needs {', '.join(missing)}, which is not installed "
                        f"(pip install {' '.join(missing)}, or pip install 'bayes_blina[{name}]'); "
                        "use backend = 'pymc' or 'auto'")
    return name


def register_jax_erfcx() -> None:
    """Give pytensor's JAX back end an implementation of ``erfcx`` (idempotent).

    The censored likelihood's stable ``log Phi`` (:func:`bayes_blina.likelihood.log_ndtr`) uses
    ``erfcx``, which pytensor translates to JAX only through tensorflow-probability; JAX itself has
    it (``jax.scipy.special.erfcx``). Needed by the numpyro back end (and nutpie's JAX back end).
    """
    from pytensor.link.jax.dispatch import jax_funcify
    from pytensor.scalar.math import Erfcx

    if getattr(register_jax_erfcx, "_done", False):
        return

    @jax_funcify.register(Erfcx)
    def _jax_erfcx(op, **kwargs):  # pragma: no cover - called by pytensor's JAX linker
        import jax.scipy.special as jss

        def erfcx(x):
            return jss.erfcx(x)

        return erfcx

    register_jax_erfcx._done = True  # type: ignore[attr-defined]


def jax_device() -> str:
    """``"gpu"``, ``"tpu"`` or ``"cpu"``: where JAX (the numpyro back end) computes."""
    import jax

    return str(jax.default_backend())


def sample_model(model, sampler: SamplerConfig, *, progress: bool = False,
                 timing: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Run NUTS on a PyMC model with the given settings; return (idata, back end used).

    Parameters
    ----------
    model : pymc.Model
        The model.
    sampler : SamplerConfig
        Back end, chains, draws, tuning, target acceptance, seed, cores.
    progress : bool
        Show the sampler's progress bar.
    timing : dict, optional
        Filled with ``compile_s`` (model compilation before sampling; 0 for numpyro, whose JIT
        compilation happens inside sampling), ``sampling_s`` (tuning and draws) and, for numpyro,
        ``device``.

    Returns
    -------
    idata : arviz.InferenceData
        ``posterior`` (model quantities only) and ``sample_stats``; no warm-up groups.
    backend : str
        The back end used.
    """
    import pymc as pm
    from threadpoolctl import threadpool_limits

    backend = resolve_backend(sampler.backend)
    cores = sampler.cores or min(sampler.chains, 2)
    timing = {} if timing is None else timing
    # chains run in parallel (threads or processes): one BLAS thread each, or they fight for cores
    if sampler.mass_matrix != "diag" and backend != "nutpie":
        raise SpecError(f"sampler.mass_matrix = {sampler.mass_matrix!r} needs the nutpie back end "
                        f"(found backend {backend!r}); use mass_matrix = \"diag\"")
    with model, threadpool_limits(limits=1, user_api="blas"):
        if backend == "nutpie":
            idata = _sample_nutpie(model, sampler, cores, progress, timing)
        else:
            kwargs: dict[str, Any] = dict(
                draws=sampler.draws, tune=sampler.tune, chains=sampler.chains, random_seed=sampler.seed,
                target_accept=sampler.target_accept, progressbar=progress, compute_convergence_checks=False,
            )
            if backend == "numpyro":
                import pymc.sampling.jax  # noqa: F401  (asks for host devices before JAX starts)

                register_jax_erfcx()
                device = jax_device()
                n_dev = len(__import__("jax").devices())
                kwargs.update(nuts_sampler="numpyro", nuts={
                    "chain_method": "parallel" if n_dev >= sampler.chains else "vectorized"})
                timing["device"] = device
            else:  # PyMC's own NUTS: PyMC 6 would pick nutpie when it is installed
                kwargs.update(cores=cores, nuts_sampler="pymc")
            t0 = time.perf_counter()
            idata = pm.sample(**kwargs)
            total = time.perf_counter() - t0
            sampling = float(idata.posterior.attrs.get("sampling_time", total))
            timing["sampling_s"] = round(sampling, 3)
            timing["compile_s"] = round(max(total - sampling, 0.0), 3)
    for g in ("warmup_posterior", "warmup_sample_stats", "unconstrained_posterior"):
        if g in idata.children:
            del idata[g]
    transformed = [v for v in idata.posterior.data_vars if str(v).endswith("__")]
    if transformed:  # nutpie also stores the unconstrained values: not model quantities
        idata["posterior"] = idata.posterior.to_dataset().drop_vars(transformed)
    idata.posterior.attrs["inference"] = f"NUTS ({backend})"
    return idata, backend


def _sample_nutpie(model, sampler: SamplerConfig, cores: int, progress: bool, timing: dict) -> Any:
    """nutpie: compile (numba), then sample; both timed."""
    import nutpie
    import pymc as pm
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, dict_to_dataset, find_constants, find_observations

    t0 = time.perf_counter()
    from bayes_blina.families.base import unjittered_names

    fixed = unjittered_names(model)
    jitter = {rv for rv in model.free_RVs if rv.name not in fixed} if fixed else None
    compiled = nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=jitter)
    timing["compile_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    idata = nutpie.sample(compiled, draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
                          cores=cores, seed=sampler.seed, target_accept=sampler.target_accept,
                          progress_bar=progress, save_warmup=False,
                          adaptation="low_rank" if sampler.mass_matrix == "low_rank" else "diag")
    timing["sampling_s"] = round(time.perf_counter() - t0, 3)
    idata.posterior.attrs["sampling_time"] = timing["sampling_s"]
    coords, dims = coords_and_dims_for_inferencedata(model)
    groups = {}
    for name, values in (("constant_data", find_constants(model)), ("observed_data", find_observations(model))):
        if values:
            groups[name] = dict_to_dataset(values, inference_library=pm, coords=coords, dims=dims, sample_dims=[])
    for name, ds in groups.items():
        idata[name] = ds
    return idata


def fit(spec: str | ModelSpec | dict, dataset, *, seed: int | None = None, chains: int | None = None,
        draws: int | None = None, tune: int | None = None, backend: str | None = None,
        method: str | None = None, progress: bool = False) -> Fit:
    """Fit a model spec to a dataset by MCMC (or, with ``method``, by an approximation).

    Parameters
    ----------
    spec : str, ModelSpec or dict
        A spec name in ``models/``, a path to a TOML file, a dict, or a :class:`ModelSpec`.
    dataset : Dataset, str or path
        A validated dataset, or a folder / bundled name to read.
    seed, chains, draws, tune, backend : optional
        Override the spec's sampler settings.
    method : {"nuts", "advi", "fullrank_advi", "pathfinder", "laplace"}, optional
        Override the spec's ``[sampler] method``. Anything but ``"nuts"`` is approximate
        (:mod:`bayes_blina.approx`): fast, for simulation inner loops; the verdict then fails the
        gate with the reason "not MCMC", so publication tables refuse the fit unless overridden.
    progress : bool
        Show the sampler's progress bar.

    Returns
    -------
    Fit
        Posterior (with ``log_likelihood``, ``observed_data`` and ``constant_data``), the family
        and prepared data it was built from, the convergence verdict and the provenance record
        :func:`~bayes_blina.store.save_fit` writes: the same type as a fit read back with
        :func:`~bayes_blina.store.load_fit`. ``timing`` holds ``compile_s``, ``sampling_s`` and
        ``wall_s`` (model building included).
    """
    from bayes_blina.data.dataset import Dataset

    t_start = time.perf_counter()
    spec = load_spec(spec).with_sampler(seed=seed, chains=chains, draws=draws, tune=tune, backend=backend,
                                        method=method)
    if not isinstance(dataset, Dataset):
        from bayes_blina.data.io import read_dataset

        dataset = read_dataset(dataset)
    family = get_family(spec.family)(spec.options, spec.priors)
    prepared = family.prepare(dataset)
    model = family.build(prepared)
    timing: dict[str, Any] = {}
    if spec.sampler.approximate:
        from bayes_blina.approx import approximate_verdict, fit_approximate

        idata = fit_approximate(model, spec.sampler, timing=timing, progress=progress)
        used = spec.sampler.method
    else:
        idata, used = sample_model(model, spec.sampler, progress=progress, timing=timing)
    _add_groups(idata, model, family, prepared)
    if spec.sampler.prior_draws:
        _add_prior(idata, model, spec.sampler)
    if spec.sampler.approximate:
        verdict = approximate_verdict(idata, spec.sampler.method, spec.gate)
    else:
        verdict = convergence_verdict(idata, spec.gate)
    log.info("%s", verdict)
    timing["wall_s"] = round(time.perf_counter() - t_start, 3)
    return Fit.from_sampling(
        idata, spec=spec, family=family, prepared=prepared, verdict=verdict,
        dataset_name=dataset.name, dataset_origin=dataset.origin, data_sha256=dataset.sha256(),
        backend=used, timing=timing,
    )


def _add_prior(idata, model, sampler: SamplerConfig) -> None:
    """Draw from the prior (and prior predictive) and add the groups to ``idata``."""
    import warnings

    import pymc as pm

    with model, warnings.catch_warnings():
        # Potentials (weighted likelihood terms) do not shape the prior: that is what we want here
        warnings.filterwarnings("ignore", message=".*Potentials.*")
        prior = pm.sample_prior_predictive(draws=sampler.prior_draws, random_seed=sampler.seed)
    for g in ("prior", "prior_predictive"):
        if g in prior.children:
            idata[g] = prior[g].to_dataset()


def _array_dims(name: str, ndim: int) -> tuple[str, ...]:
    """Dimension names of a prepared array in ``constant_data`` (``<name>_dim``, ``<name>_dim_<k>``)."""
    return (f"{name}_dim",) if ndim == 1 else tuple(f"{name}_dim_{k}" for k in range(ndim))


def _add_groups(idata, model, family: ModelFamily, prepared: Prepared) -> None:
    """Add log_likelihood, observed_data and constant_data groups in a back-end-independent way."""
    import pymc as pm
    import xarray as xr

    observed = [rv.name for rv in model.observed_RVs]
    wanted = family.pointwise_observed()
    if wanted is not None:
        observed = [o for o in observed if o in wanted]
    if observed:
        pm.compute_log_likelihood(idata, var_names=observed, model=model, progressbar=False,
                                  extend_inferencedata=True)
    extra = family.log_likelihood(idata, prepared)
    if extra:
        if "log_likelihood" in idata.children:
            idata["log_likelihood"] = idata.log_likelihood.to_dataset().assign(extra)
        else:
            idata["log_likelihood"] = xr.Dataset(extra)
    const = {k: xr.DataArray(np.asarray(v), dims=_array_dims(k, np.ndim(v))) for k, v in prepared.arrays.items()}
    if "constant_data" in idata.children:
        del idata["constant_data"]
    idata["constant_data"] = xr.Dataset(const)
    obs_extra = {k: xr.DataArray(np.asarray(v), dims=(f"{k}_dim",)) for k, v in family.observed_arrays(prepared).items()}
    if "observed_data" in idata.children:
        if obs_extra:
            idata["observed_data"] = idata.observed_data.to_dataset().assign(obs_extra)
    elif obs_extra:
        idata["observed_data"] = xr.Dataset(obs_extra)
