"""Kaplan-Meier curves of a survival fit's data beside the model's predicted survival.

The check of a survival model that a reader of a trial report expects: per group (all patients, or
each level of one of the fit's covariates), the Kaplan-Meier estimate of the data with its 95%
confidence band (``scipy.stats.ecdf`` on right-censored data, log-log interval) and the model's
marginal survival curve of the same patients, ``mean_i S_i(t)`` over the group's patients with their
own covariates, with a posterior interval. A model that fits puts the Kaplan-Meier curve inside
its band at most times; systematic departures (a curve crossing the band at early times, say) show
a misspecified baseline hazard or non-proportional hazards.

Examples
--------
>>> import numpy as np
>>> t = kaplan_meier(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 1]), np.array([0.5, 1.0, 3.5]))
>>> np.round(t["km"], 3).tolist()
[1.0, 0.75, 0.375]
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError


def kaplan_meier(time: np.ndarray, event: np.ndarray, at: np.ndarray, *, confidence: float = 0.95) -> dict:
    """Kaplan-Meier estimate at ``at`` with a ``confidence`` band (scipy's log-log interval) and the
    number at risk. Returns ``{"km", "km_lower", "km_upper", "at_risk"}`` arrays."""
    from scipy import stats

    time, event, at = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(at, float)
    data = stats.CensoredData(uncensored=time[event], right=time[~event])
    res = stats.ecdf(data).sf
    km = res.evaluate(at)
    if event.sum() >= 1 and len(time) > 1:
        import warnings

        with warnings.catch_warnings():  # undefined where the estimate is 0 or 1: the band is the estimate there
            warnings.filterwarnings("ignore", message="The confidence interval is undefined", category=RuntimeWarning)
            ci = res.confidence_interval(confidence, method="log-log")
        lo, hi = ci.low.evaluate(at), ci.high.evaluate(at)
    else:
        lo = hi = np.full(len(at), np.nan)
    at_risk = (time[None, :] >= at[:, None]).sum(axis=1)
    return {"km": km, "km_lower": np.where(np.isnan(lo), km, lo), "km_upper": np.where(np.isnan(hi), km, hi),
            "at_risk": at_risk}


def survival_curve_table(stored, *, by: str | None = None, times=None, prob: float = 0.9, n_times: int = 49,
                         max_draws: int = 1000) -> pd.DataFrame:
    """Kaplan-Meier curves and predicted survival of a stored survival fit, per group.

    Parameters
    ----------
    stored : Fit
        A fit of the ``survival`` family.
    by : str, optional
        One of the fit's covariates (a factor or ``mrd_response``): one curve per level. Default:
        all patients together.
    times : sequence of float, optional
        Months at which to evaluate (default ``n_times`` points from 0 to the longest follow-up).
    prob : float
        Mass of the posterior interval of the predicted curve.
    max_draws : int
        Posterior draws used (evenly thinned).

    Returns
    -------
    DataFrame
        ``group, time_months, at_risk, km, km_lower, km_upper, predicted, predicted_lower,
        predicted_upper, inside`` (the Kaplan-Meier estimate inside the predicted interval; empty
        where nobody of the group is at risk any more).
    """
    from bayes_blina._tree import as_dataset
    from bayes_blina.families import SurvivalModel, require_family

    require_family(stored.family_name, SurvivalModel, "the survival curve check", fit=stored)
    family = stored.family
    post = as_dataset(stored.idata.posterior)
    n = post.sizes["chain"] * post.sizes["draw"]
    step = max(1, int(np.ceil(n / max_draws)))
    flat = post.stack(sample=("chain", "draw")).isel(sample=slice(None, None, step))
    thin = flat.drop_vars(["sample", "chain", "draw"], errors="ignore").expand_dims(chain=[0]).rename(sample="draw")
    thin = thin.transpose("chain", "draw", ...)
    prepared = family.stored_prepared(stored.idata.constant_data, post, stored.provenance["data"].get("use", {}))
    A = prepared.arrays
    t_obs, ev = A["time"].astype(float), A["event"].astype(int)
    at = np.linspace(0.0, float(t_obs.max()), n_times) if times is None else np.asarray(times, float)
    groups = _groups(family, prepared, by)
    S = family.survival_draws(thin, prepared, at)[0]  # (draw, patient, time)
    q = (1.0 - prob) / 2.0
    frames = []
    for label, mask in groups:
        km = kaplan_meier(t_obs[mask], ev[mask], at)
        curve = S[:, mask, :].mean(axis=1)  # the group's marginal survival, per draw
        lo, med, hi = np.quantile(curve, [q, 0.5, 1.0 - q], axis=0)
        frames.append(pd.DataFrame({"group": label, "time_months": at, "at_risk": km["at_risk"], "km": km["km"],
                                    "km_lower": km["km_lower"], "km_upper": km["km_upper"], "predicted": med,
                                    "predicted_lower": lo, "predicted_upper": hi,
                                    "inside": pd.array(np.where(km["at_risk"] > 0, (lo <= km["km"] + 1e-12)
                                                                & (km["km"] <= hi + 1e-12), None), dtype="boolean")}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update({"prob": prob, "by": by, "endpoint": family.options.endpoint})
    return out


def _groups(family, prepared, by):
    """``(label, patient mask)`` per group of ``by`` (all patients when None)."""
    A = prepared.arrays
    n = len(A["time"])
    if by is None:
        return [("all", np.ones(n, dtype=bool))]
    names = [f for f, _ in family.covariate_terms(prepared)]
    if by not in names:
        raise BayesBlinaError(f"--by {by!r} is not a covariate of this fit; its covariates are "
                              f"{', '.join(names) or '(none)'}")
    if by in family.options.numeric_covariates:
        raise BayesBlinaError(f"--by {by!r} is a numeric covariate; curves are drawn per level of a factor or of "
                              "mrd_response")
    x = A[f"x_{by}"]
    dim = f"{by}_contrast"
    if dim in prepared.coords:
        ref = (prepared.data_use.get("factors", {}).get(by) or {}).get("reference", "reference")
        labels = [str(ref), *prepared.coords[dim]]
        return [(f"{by} = {labels[i]}", x == i) for i in range(len(labels)) if (x == i).any()]
    return [(f"{by} = {int(v)}", x == v) for v in sorted(set(x.tolist()))]
