"""Prior and likelihood sensitivity of a fit by power scaling (Kallioinen et al. 2024).

Power-scaling a component of the posterior, ``p(theta | y) ∝ p(theta)^a p(y | theta)`` (or the
likelihood to the power ``a``), and measuring how much each parameter's posterior moves for ``a``
near 1 (cumulative Jensen-Shannon distance per unit log ``a``, by importance sampling of the
existing draws) tells whether the prior or the likelihood drives it. The computation is ArviZ's
:func:`arviz.psens`; the prior that is scaled is the model's declared (top-level) prior, the one a
spec can override (:meth:`bayes_blina.families.base.ModelFamily.log_prior`), and the likelihood is
the pointwise ``log_likelihood`` the fit stores.

Diagnosis per parameter (threshold 0.05, priorsense's):

* ``prior-data conflict``: sensitive to both the prior and the likelihood;
* ``prior-dominated``: sensitive to the prior and not to the likelihood (the data say little, so
  the prior speaks: state it, or collect data);
* ``""``: the likelihood dominates (the usual, good case).

Reference: N. Kallioinen, T. Paananen, P.-C. Bürkner, A. Vehtari (2024), Detecting and diagnosing
prior and likelihood sensitivity with power-scaling, *Statistics and Computing* 34:57.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import warnings
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.errors import SpecError

__all__ = ["SENSITIVITY_THRESHOLD", "diagnose", "power_scaling_sensitivity"]

#: Sensitivity above which a component is taken to drive a parameter (priorsense's default).
SENSITIVITY_THRESHOLD = 0.05


def diagnose(prior: float, likelihood: float, threshold: float = SENSITIVITY_THRESHOLD) -> str:
    """Words for one parameter's pair of sensitivities (see the module docstring).

    Examples
    --------
    >>> diagnose(0.12, 0.20), diagnose(0.12, 0.01), diagnose(0.01, 0.20)
    ('prior-data conflict', 'prior-dominated', '')
    """
    if prior >= threshold and likelihood >= threshold:
        return "prior-data conflict"
    if prior >= threshold:
        return "prior-dominated"
    return ""


def _family_of(fit):

    return fit.family


def power_scaling_sensitivity(fit, *, var_names: list[str] | None = None, delta: float = 0.01,
                              threshold: float = SENSITIVITY_THRESHOLD) -> pd.DataFrame:
    """Prior and likelihood power-scaling sensitivity of each summary parameter of a fit.

    Parameters
    ----------
    fit : Fit
        A fit in memory or loaded from the store (it needs a ``log_likelihood`` group).
    var_names : list of str, optional
        Posterior variables to assess (default: the family's summary variables).
    delta : float
        Finite-difference step of the power (ArviZ's default).
    threshold : float
        Sensitivity from which a component is said to drive a parameter.

    Returns
    -------
    pandas.DataFrame
        ``parameter, prior, likelihood, diagnosis`` (one row per scalar element) with
        ``attrs["scaled_priors"]``, the declared priors that were power-scaled.

    Raises
    ------
    SpecError
        If the fit has no pointwise log-likelihood or no declared prior is in its posterior.
    """
    import arviz as az
    import xarray as xr

    idata = fit.idata
    if "log_likelihood" not in idata.children:
        raise SpecError("the fit has no log_likelihood group: power-scaling the likelihood needs it "
                        "(fits written by bayes_blina store it)")
    family = _family_of(fit)
    post = as_dataset(idata.posterior)
    terms = family.log_prior(post)
    if not terms:
        raise SpecError("none of the model's declared priors is a posterior variable; nothing to power-scale")
    names = [v for v in (var_names or family.summary_vars()) if v in post]
    unknown = [v for v in (var_names or []) if v not in post]
    if unknown:
        raise SpecError(f"not in the posterior: {', '.join(unknown)}")
    log_prior = sum(terms.values())
    data = xr.DataTree.from_dict({"posterior": post[names],
                                  "log_likelihood": as_dataset(idata.log_likelihood),
                                  "log_prior": xr.Dataset({"log_prior": log_prior})})
    alphas = (1.0 - delta, 1.0 + delta)
    with warnings.catch_warnings():  # ArviZ warns about Pareto k of the importance weights per call
        warnings.simplefilter("ignore")
        s_like = az.psense(data, var_names=names, group="likelihood", alphas=alphas)
        if np.ptp(np.asarray(log_prior.values)) == 0:
            # a flat prior (constant density): power-scaling it leaves the posterior exactly as it is
            # (and Pareto smoothing of constant weights is undefined)
            s_prior = xr.zeros_like(s_like)
        else:
            s_prior = az.psense(data, var_names=names, group="prior", alphas=alphas)
    rows: list[dict[str, Any]] = []
    for v in names:
        a, b = s_prior[v], s_like[v]
        dims = list(a.dims)
        for idx in np.ndindex(*a.shape) if dims else [()]:
            labels = [str(a.coords[d].values[k]) if d in a.coords else str(k) for d, k in zip(dims, idx)]
            pr, lk = float(a.values[idx]), float(b.values[idx])
            rows.append({"parameter": f"{v}[{','.join(labels)}]" if labels else v, "prior": pr,
                         "likelihood": lk, "diagnosis": diagnose(pr, lk, threshold)})
    out = pd.DataFrame(rows, columns=["parameter", "prior", "likelihood", "diagnosis"])
    out.attrs["scaled_priors"] = sorted(terms)
    out.attrs["threshold"] = threshold
    return out
