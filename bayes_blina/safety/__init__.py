"""Safety: dose-toxicity decisions from a fit of the ``dose-toxicity`` family.

:func:`escalate` turns a fit (in memory or stored) into the EWOC table of
:mod:`bayes_blina.safety.escalation`, with the posterior by deterministic quadrature
(:mod:`bayes_blina.safety.quadrature`; default) or from the fit's MCMC draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError
from bayes_blina.safety.escalation import COLUMNS, EwocRule, escalation_table, escalation_table_from_cdf, recommend


@dataclass(frozen=True)
class Escalation:
    """An EWOC table, the recommended next dose (None: stop) and how the posterior was computed."""

    table: pd.DataFrame
    recommended: float | None
    method: str
    rule: EwocRule


def _family_and_data(fit):
    from bayes_blina.families import DoseToxicityModel, require_family

    spec = fit.spec
    require_family(spec.family, DoseToxicityModel, "escalation", fit=getattr(fit, "path", None) and str(fit.path))
    return fit.family, fit.prepared


def quadrature_table(family, prepared, doses, rule: EwocRule = EwocRule(), *, grid_size: int = 401,
                     intervals: bool = True) -> pd.DataFrame:
    """The EWOC table of a dose-toxicity ``family`` on ``prepared`` cohorts, its posterior by
    deterministic quadrature (:func:`bayes_blina.safety.quadrature.grid_posterior`); ``intervals``
    as in :func:`~bayes_blina.safety.escalation.escalation_table_from_cdf`."""
    from bayes_blina.safety.quadrature import grid_posterior

    doses = np.asarray(doses, dtype=float)
    start = np.array([family.priors[k].params.get("mu", 0.0) for k in ("log_alpha", "log_beta")], dtype=float)
    post = grid_posterior(lambda a, b: family.log_posterior(a, b, prepared), start, size=grid_size)
    mean = post.expect(family.p_dlt(post.nodes[:, 0], post.nodes[:, 1], doses))
    return escalation_table_from_cdf(
        doses, mean, lambda c: post.prob_first_below(family.log_alpha_below(post.theta1, doses, c)), rule,
        intervals=intervals)


def escalate(fit, doses, rule: EwocRule = EwocRule(), *, current_dose: float | None = None,
             method: str = "quadrature", grid_size: int = 401) -> Escalation:
    """The EWOC table for ``doses`` and the recommended next dose, from a dose-toxicity fit.

    Parameters
    ----------
    fit : Fit
        A fit of the ``dose-toxicity`` family.
    doses : sequence of float
        Provisional doses (ug/m2/day).
    rule : EwocRule
        Intervals, overdose bound, escalation limit.
    current_dose : float, optional
        The dose of the last cohort, for the escalation limit.
    method : {"quadrature", "mcmc"}
        ``quadrature`` (default): the two-parameter posterior on a grid, recomputed from the fit's
        data and priors, without Monte Carlo error; ``mcmc``: the fit's draws.

    Raises
    ------
    BayesBlinaError
        For a fit of another family, an unknown method or a dose that is not positive.
    """
    doses = np.asarray(doses, dtype=float)
    if doses.ndim != 1 or len(doses) == 0 or not np.all(np.isfinite(doses) & (doses > 0)):
        raise BayesBlinaError(f"doses must be positive numbers (ug/m2/day); got {list(np.atleast_1d(doses))}")
    family, prepared = _family_and_data(fit)
    if method == "quadrature":
        table = quadrature_table(family, prepared, doses, rule, grid_size=grid_size)
    elif method == "mcmc":
        from bayes_blina._tree import as_dataset

        post = as_dataset(fit.idata.posterior)
        la = np.asarray(post["log_alpha"].values, dtype=float).ravel()
        lb = np.asarray(post["log_beta"].values, dtype=float).ravel()
        table = escalation_table(family.p_dlt(la, lb, doses), doses, rule)
    else:
        raise BayesBlinaError(f"unknown method {method!r}; use 'quadrature' or 'mcmc'")
    return Escalation(table=table, recommended=recommend(table, rule, current_dose), method=method, rule=rule)


__all__ = ["COLUMNS", "Escalation", "EwocRule", "escalate", "escalation_table", "escalation_table_from_cdf",
           "quadrature_table", "recommend"]
