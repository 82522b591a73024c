"""Fitting: spec + dataset → model → MCMC → InferenceData with diagnostics.

The back end is chosen by the spec (``[sampler] backend``): ``nutpie`` (default when installed,
the fastest reliable sampler on these models), ``pymc`` (PyMC's NUTS) or ``numpyro``.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_blina.diagnostics import Verdict, convergence_verdict
from bayes_blina.errors import SpecError
from bayes_blina.families import get_family
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.spec import ModelSpec, SamplerConfig, load_spec

log = logging.getLogger("bayes_blina")


@dataclass
class FitResult:
    """A fitted model in memory (what :func:`bayes_blina.store.save_fit` writes)."""

    idata: Any
    spec: ModelSpec
    family: ModelFamily
    prepared: Prepared
    verdict: Verdict
    dataset_name: str
    dataset_origin: str
    data_sha256: str
    backend: str
    timing: dict[str, float] = field(default_factory=dict)


def resolve_backend(name: str) -> str:
    """The back end that ``name`` stands for on this machine (``auto`` → nutpie if installed)."""
    if name == "auto":
        return "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    if name in ("nutpie", "numpyro") and importlib.util.find_spec(name) is None:
        raise SpecError(f"sampler back end {name!r} is not installed (pip install {name}); "
                        "use backend = 'pymc' or 'auto'")
    return name


def sample_model(model, sampler: SamplerConfig, *, progress: bool = False) -> tuple[Any, str]:
    """Run NUTS on a PyMC model with the given settings; return (idata, back end used)."""
    import pymc as pm

    backend = resolve_backend(sampler.backend)
    cores = sampler.cores or min(sampler.chains, 2)
    kwargs: dict[str, Any] = dict(
        draws=sampler.draws, tune=sampler.tune, chains=sampler.chains, random_seed=sampler.seed,
        target_accept=sampler.target_accept, progressbar=progress, compute_convergence_checks=False,
        cores=cores,
    )
    if backend != "pymc":
        kwargs["nuts_sampler"] = backend
    from threadpoolctl import threadpool_limits

    # chains run in parallel (threads or processes): one BLAS thread each, or they fight for cores
    with model, threadpool_limits(limits=1, user_api="blas"):
        idata = pm.sample(**kwargs)
    for g in ("warmup_posterior", "warmup_sample_stats"):
        if g in idata.groups():
            del idata[g]
    transformed = [v for v in idata.posterior.data_vars if str(v).endswith("__")]
    if transformed:  # nutpie also stores the unconstrained values: not model quantities
        idata.posterior = idata.posterior.drop_vars(transformed)
    return idata, backend


def fit(spec: str | ModelSpec | dict, dataset, *, seed: int | None = None, chains: int | None = None,
        draws: int | None = None, tune: int | None = None, backend: str | None = None,
        progress: bool = False) -> FitResult:
    """Fit a model spec to a dataset by MCMC.

    Parameters
    ----------
    spec : str, ModelSpec or dict
        A spec name in ``models/``, a path to a TOML file, a dict, or a :class:`ModelSpec`.
    dataset : Dataset, str or path
        A validated dataset, or a folder / bundled name to read.
    seed, chains, draws, tune, backend : optional
        Override the spec's sampler settings.
    progress : bool
        Show the sampler's progress bar.

    Returns
    -------
    FitResult
        Posterior (with ``log_likelihood``, ``observed_data`` and ``constant_data``), the
        convergence verdict and everything :func:`~bayes_blina.store.save_fit` records.
    """
    from bayes_blina.data.dataset import Dataset

    spec = load_spec(spec).with_sampler(seed=seed, chains=chains, draws=draws, tune=tune, backend=backend)
    if not isinstance(dataset, Dataset):
        from bayes_blina.data.io import read_dataset

        dataset = read_dataset(dataset)
    family = get_family(spec.family)(spec.options, spec.priors)
    prepared = family.prepare(dataset)
    model = family.build(prepared)
    t0 = time.perf_counter()
    idata, used = sample_model(model, spec.sampler, progress=progress)
    t_sample = time.perf_counter() - t0
    _add_groups(idata, model, family, prepared)
    if spec.sampler.prior_draws:
        _add_prior(idata, model, spec.sampler)
    verdict = convergence_verdict(idata, spec.gate)
    log.info("%s", verdict)
    return FitResult(
        idata=idata, spec=spec, family=family, prepared=prepared, verdict=verdict,
        dataset_name=dataset.name, dataset_origin=dataset.origin, data_sha256=dataset.sha256(),
        backend=used, timing={"sampling_s": round(t_sample, 3)},
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
        if g in prior.groups():
            idata.add_groups({g: getattr(prior, g)})


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
        if "log_likelihood" in idata.groups():
            idata.log_likelihood = idata.log_likelihood.assign(extra)
        else:
            idata.add_groups(log_likelihood=xr.Dataset(extra))
    const = {k: xr.DataArray(np.asarray(v), dims=(f"{k}_dim",)) for k, v in prepared.arrays.items()}
    if "constant_data" in idata.groups():
        del idata["constant_data"]
    idata.add_groups(constant_data=xr.Dataset(const))
    obs_extra = {k: xr.DataArray(np.asarray(v), dims=(f"{k}_dim",)) for k, v in family.observed_arrays(prepared).items()}
    if "observed_data" in idata.groups():
        if obs_extra:
            idata.observed_data = idata.observed_data.assign(obs_extra)
    elif obs_extra:
        idata.add_groups(observed_data=xr.Dataset(obs_extra))
