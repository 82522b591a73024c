"""PSIS-LOO with Pareto-k diagnostics, comparison of fits on the same data, and LOO-PIT
(leave-one-out probability integral transform) values with their calibration plot."""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import warnings

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError


def loo_table(fits: dict[str, object], var_name: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSIS-LOO of each fit and their comparison.

    Parameters
    ----------
    fits : dict of name -> Fit
        Fits of the same data (same ``data.sha256`` in provenance), e.g. with and without a factor.
    var_name : str, optional
        The ``log_likelihood`` variable to use (default: the only one, or ``y``).

    Returns
    -------
    per_fit : DataFrame
        ``fit, elpd_loo, se, p_loo, n_obs, k_good, k_ok, k_bad, k_very_bad`` (Pareto-k counts in
        (-inf, 0.5], (0.5, 0.7], (0.7, 1], (1, inf)); ``k_bad + k_very_bad > 0`` means the LOO
        estimate is unreliable for those observations.
    comparison : DataFrame
        ArviZ's comparison (rank, elpd difference and its SE, weight), empty for a single fit.

    Raises
    ------
    BayesBlinaError
        If a fit has no pointwise log-likelihood, or the fits were made on different data.
    """
    import arviz as az

    hashes = {name: f.provenance["data"]["sha256"] for name, f in fits.items()}
    if len(set(hashes.values())) > 1:
        raise BayesBlinaError("LOO comparison needs fits of the same data; data hashes differ: "
                              + ", ".join(f"{k} {v[:12]}" for k, v in hashes.items()))
    loos, rows = {}, []
    for name, f in fits.items():
        idata = f.idata
        if "log_likelihood" not in idata.children or not idata.log_likelihood.data_vars:
            raise BayesBlinaError(f"fit {name} has no pointwise log-likelihood")
        names = list(idata.log_likelihood.data_vars)
        v = var_name or ("y" if "y" in names else names[0] if len(names) == 1 else None)
        if v is None:
            raise BayesBlinaError(f"fit {name} has several log-likelihood variables {names}; choose one")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto-k warning is reported in the table instead
            res = az.loo(idata, var_name=v, pointwise=True)
        k = np.asarray(res.pareto_k).ravel()
        loos[name] = res
        rows.append({"fit": name, "elpd_loo": float(res.elpd), "se": float(res.se), "p_loo": float(res.p),
                     "n_obs": int(k.size), "k_good": int((k <= 0.5).sum()), "k_ok": int(((k > 0.5) & (k <= 0.7)).sum()),
                     "k_bad": int(((k > 0.7) & (k <= 1)).sum()), "k_very_bad": int((k > 1).sum())})
    comparison = pd.DataFrame()
    if len(loos) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = az.compare(loos).reset_index(names="fit")
    return pd.DataFrame(rows), comparison


# ---------------------------------------------------------------------------------------- LOO-PIT
def _reff(idata) -> float:
    """Relative MCMC efficiency of the posterior, as :func:`arviz.loo` computes it."""
    import arviz as az

    post = as_dataset(idata.posterior)
    n = post.sizes["chain"] * post.sizes["draw"]
    if post.sizes["chain"] == 1:
        return 1.0
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(post, method="mean")
    vals = np.hstack([np.asarray(ess[v].values, dtype=float).ravel() for v in ess.data_vars])
    vals = vals[np.isfinite(vals)]
    return float(vals.mean() / n) if vals.size else 1.0


def _stack(da) -> np.ndarray:
    """(chain, draw, ...) -> (sample, ...)."""
    v = np.asarray(da.values if hasattr(da, "values") else da, dtype=float)
    return v.reshape(-1, *v.shape[2:])


def _trajectory_cdf(stored) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predictive CDF (sample, obs) of a trajectory fit at each stored row's value, or at its (upper)
    limit when censored; the CDF at the lower limit (LOD) of interval-censored rows (0 on the other
    rows); the censoring flags; the interval flags. Uses the rows as stored (the data the
    log-likelihood was computed on)."""
    from scipy import special

    from bayes_blina.checks.vpc import mean_log_draws, stored_prepared

    family, prepared, post = stored_prepared(stored)
    A = prepared.arrays
    draws = post.stack(sample=("chain", "draw")).transpose("sample", ...)
    mu = mean_log_draws(family, prepared, draws)
    sigma = np.asarray(draws[getattr(family, "sigma_name", "sigma_obs")].values,
                       dtype=float)[:, A["obs_analyte"].astype(int)]
    cens = A["is_censored"].astype(bool)
    point = np.where(cens, A["log_limit"], A["log_y"])
    lower = np.asarray(A["log_lower"], dtype=float) if "log_lower" in A else np.full(len(cens), np.nan)
    inter = cens & np.isfinite(lower)
    f_lo = np.where(inter, special.ndtr((np.where(inter, lower, 0.0) - mu) / sigma), 0.0)
    return special.ndtr((point - mu) / sigma), f_lo, cens, inter


def loo_pit(stored, *, var_name: str | None = None, seed: int | None = None) -> pd.DataFrame:
    """Leave-one-out probability integral transform (LOO-PIT) of every observation.

    ``PIT_i = sum_s w_is F(y_i | theta_s)`` with ``w_is`` the Pareto-smoothed importance weights of
    leaving observation ``i`` out (PSIS log weights from arviz-stats) and ``F`` the
    observation's predictive CDF, in closed form (no replicated data needed). For a well-calibrated
    model the values are uniform on (0, 1): too many near 0 and 1 means the predictive
    distributions are too narrow, too many near 0.5 too wide, a slope means bias.

    Censored and discrete observations have no single PIT value; they get randomised PIT values
    (uniform over the range of PIT values consistent with the observation): ``u * F(limit)`` for a
    result below a limit, ``F(LOD) + u * (F(LLOQ) - F(LOD))`` for a result between the LOD and the
    LLOQ (interval-censored), ``F(y - 1) + u * (F(y) - F(y - 1))`` for a count. These are uniform
    under a calibrated model too.

    Parameters
    ----------
    stored : Fit
        A trajectory fit (pulse: log-normal with M3 censoring) or a response fit (binomial
        aggregate rows ``y_agg``, Bernoulli patients ``y``).
    var_name : str, optional
        Response fits: the ``log_likelihood`` variable (default ``y`` if present, else ``y_agg``).
    seed : int, optional
        Seed of the randomisation (default: the fit's sampler seed).

    Returns
    -------
    DataFrame
        ``obs, pit, kind, pareto_k`` (``kind``: ``observed``, ``censored``, ``interval`` or
        ``discrete``);
        ``attrs``: ``var_name``, ``n_randomised``.

    Raises
    ------
    BayesBlinaError
        If the fit has no pointwise log-likelihood or its family has no predictive CDF here.
    """
    from arviz_stats.base import array_stats
    from scipy import stats

    idata = stored.idata
    if "log_likelihood" not in idata.children or not idata.log_likelihood.data_vars:
        raise BayesBlinaError(f"fit {stored.path} has no pointwise log-likelihood: LOO-PIT needs one")
    seed = stored.spec.sampler.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    names = list(idata.log_likelihood.data_vars)
    post = as_dataset(idata.posterior)
    from bayes_blina.families import family_class

    if family_class(stored.family_name).outcome == "binary":
        v = var_name or ("y" if "y" in names else "y_agg")
        if v not in names:
            raise BayesBlinaError(f"fit {stored.path} has no log-likelihood variable {v!r} (has {names})")
        if v == "y_agg":
            p = _stack(post["p_agg"])
            r = idata.observed_data["agg_r"].values
            n = idata.observed_data["agg_n"].values
            hi, lo = stats.binom.cdf(r, n, p), stats.binom.cdf(r - 1, n, p)
            labels = [str(x) for x in post["p_agg"].coords["agg_row"].values]
        else:
            const = as_dataset(idata.constant_data)
            p = _stack(post["p_cell"])[:, const["pat_cell"].values.astype(int)]
            y = const["pat_y"].values
            hi = np.where(y >= 1, 1.0, 1 - p)
            lo = np.where(y >= 1, 1 - p, 0.0)
            labels = [str(i) for i in range(len(y))]
        kind = np.full(hi.shape[1], "discrete", dtype=object)
        randomise = np.ones(hi.shape[1], dtype=bool)
    else:
        v = var_name or ("y" if "y" in names else names[0])
        hi, lo, randomise, inter = _trajectory_cdf(stored)  # below a limit: PIT uniform on (0, F(limit));
        # between LOD and LLOQ: uniform on (F(LOD), F(LLOQ))
        kind = np.where(inter, "interval", np.where(randomise, "censored", "observed")).astype(object)
        labels = ([str(x) for x in idata.log_likelihood[v].coords["obs"].values]
                  if "obs" in idata.log_likelihood[v].coords else [str(i) for i in range(hi.shape[1])])
    ll = _stack(idata.log_likelihood[v])
    ll = ll.reshape(ll.shape[0], -1)
    if ll.shape[1] != hi.shape[1]:
        raise BayesBlinaError(f"log-likelihood {v!r} has {ll.shape[1]} observations, the predictive CDF "
                              f"{hi.shape[1]}: the fit's stored arrays do not match")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # arviz-stats takes the log-likelihood itself (the log ratios are its negative); (obs, sample)
        lw, k = array_stats.psislw(ll.T, r_eff=_reff(idata), axis=-1)
    w = np.exp(lw)
    f_hi = np.einsum("os,so->o", w, hi)
    f_lo = np.einsum("os,so->o", w, lo)
    u = rng.random(len(f_hi))
    pit = np.where(randomise, f_lo + u * (f_hi - f_lo), f_hi)
    df = pd.DataFrame({"obs": labels, "pit": np.clip(pit, 0.0, 1.0), "kind": kind,
                       "pareto_k": np.asarray(k, dtype=float)})
    df.attrs.update({"var_name": v, "n_randomised": int(np.sum(randomise))})
    return df
