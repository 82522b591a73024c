"""Censoring-aware visual predictive check (VPC) of trajectory fits.

For every analyte and time bin the VPC sets statistics of the observed data beside the same
statistics of data replicated from the posterior predictive distribution, censored at the same
assay limits as the data:

* the 10th, 50th and 90th percentiles (configurable) of the concentrations in the bin
  (interpolated between order statistics on the log scale);
* the fraction of results below their limit (LOD or LLOQ).

Censored percentiles
--------------------
A censored result is only known to lie below its limit. No value is substituted for it. Each
percentile is computed twice, once with every censored result at its limit (an upper bound, since a
percentile never decreases when a value increases) and once with every censored result at the lowest
value it can have: far below its limit (``limit * exp(-1000)``) when it is below the LOD or below a
single limit, at the LOD when it lies between the LOD and the LLOQ (interval-censored, reported
``'LLOQ'`` with a known LOD); that is a lower bound. When the two agree the percentile is determined
by uncensored results only and is reported as a number; otherwise it is only known to be below the
upper bound and is reported as ``"< bound"`` (``observed_censored`` true). The upper bound is a
statistic of the censored data, computed identically for the observed and for every replicated
data set, so comparing the observed bound with the predictive distribution of the replicated
bounds is a valid posterior predictive check; the table also gives the fraction of replicated
data sets whose percentile was censored.

No censored row is ever dropped: every row the model used falls in exactly one bin (explicit bin
edges that leave rows out are refused), the table counts the rows and the censored rows of each
bin, and :func:`check_vpc_accounting` checks those counts against the fit's record of the data it
used (``provenance["data"]["use"]``).

Replicated data
---------------
:func:`bayes_blina.checks.predictive.simulate_observations`: ``y_rep = exp(mu + sigma_obs * eps)``
with ``mu`` the family's noise-free log value of the row for a posterior draw
(``family.mean_log``), censored below the row's limit as the assay would have reported it (the
limit of a row observed uncensored comes from the dataset's ``lod``/``lloq`` when the dataset is
given, else from the censored rows of the same patient and analyte; ``attrs["limit_sources"]``
counts which rule gave each row's limit).
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError, SpecError

__all__ = ["TrajectoryRows", "VPC_COLUMNS", "check_vpc_accounting", "replicate", "stored_prepared", "time_bins",
           "trajectory_rows", "vpc_accounting", "vpc_from_fit", "vpc_table"]

#: Families whose fits have trajectory rows (``obs_*``, ``log_y``, ``log_limit``, ``is_censored``).
TRAJECTORY_ARRAYS = ("obs_analyte", "obs_time_h", "log_y", "log_limit", "is_censored")

#: Columns of :func:`vpc_table`.
VPC_COLUMNS = ["analyte", "bin", "time_lo", "time_hi", "time_mid", "n", "n_censored", "limit_min",
               "limit_max", "statistic", "observed", "observed_censored", "observed_label",
               "pred_lower", "pred_median", "pred_upper", "pred_censored_frac", "ppp", "outside"]

_FAR_BELOW = 1000.0  # log-scale offset of the lower bound of a censored value


@dataclass
class TrajectoryRows:
    """The observation rows of a trajectory fit, as the VPC needs them.

    Attributes
    ----------
    analytes : list of str
        Analyte codes, in the order of ``analyte_index``.
    analyte_index, subject_index : numpy.ndarray of int
        Per row.
    time_h : numpy.ndarray
        Hours since the patient's first infusion start.
    log_upper : numpy.ndarray
        ``log`` value of uncensored rows; ``log`` (upper) limit of censored rows.
    censored : numpy.ndarray of bool
    position : numpy.ndarray of int
        0-based row positions in the dataset's observations table.
    log_lower : numpy.ndarray, optional
        ``log`` LOD of interval-censored rows (between LOD and LLOQ), NaN elsewhere; None: none.
    """

    analytes: list[str]
    analyte_index: np.ndarray
    subject_index: np.ndarray
    time_h: np.ndarray
    log_upper: np.ndarray
    censored: np.ndarray
    position: np.ndarray
    log_lower: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.time_h)


# ------------------------------------------------------------------------------------------ bins
def time_bins(times: np.ndarray, bins: int | Sequence[float] = 10) -> tuple[np.ndarray, np.ndarray]:
    """Time bins: quantile bins that never split tied times, or explicit edges.

    Parameters
    ----------
    times : array
        Observation times (hours).
    bins : int or sequence of float
        Number of quantile bins (rows are grouped into about equally full bins; rows at the same
        time always share a bin, so there may be fewer bins than asked), or the bin edges
        (increasing; bins are ``[e_i, e_i+1)``, the last one closed).

    Returns
    -------
    edges : numpy.ndarray
    index : numpy.ndarray of int
        Bin of every time.

    Raises
    ------
    SpecError
        If edges are not increasing, or leave out any time (a row is never dropped silently).
    """
    t = np.asarray(times, dtype=float)
    if t.size == 0:
        raise SpecError("no observation times to bin")
    if np.ndim(bins) == 0:
        k = int(bins)
        if k < 1:
            raise SpecError(f"the number of time bins must be at least 1 (found {bins})")
        u, counts = np.unique(t, return_counts=True)
        cum = np.cumsum(counts)
        cuts = sorted({int(np.argmin(np.abs(cum[:-1] - j * t.size / k))) for j in range(1, k)} if len(u) > 1
                      else set())
        inner = [(u[c] + u[c + 1]) / 2 for c in cuts]
        edges = np.array([u[0], *inner, u[-1]], dtype=float)
        if len(edges) == 2 and edges[0] == edges[1]:
            edges[1] = edges[0] + 1.0
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0) or not np.isfinite(edges).all():
            raise SpecError(f"time bin edges must be at least two increasing finite numbers (found {list(bins)})")
        outside = (t < edges[0]) | (t > edges[-1])
        if outside.any():
            raise SpecError(
                f"time bin edges {edges[0]:g} to {edges[-1]:g} leave out {int(outside.sum())} observation rows "
                f"(times from {t.min():g} to {t.max():g} h); widen the edges so that every row is in a bin")
    index = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    return edges, index


# ----------------------------------------------------------------------------------- statistics
def _percentile_bound(upper: np.ndarray, censored: np.ndarray, q: float,
                      lower: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Upper bound of the ``q``-th percentile (last axis) and whether it is only a bound
    (``lower``: the lowest value of an interval-censored result, NaN for a left-censored one)."""
    hi = np.percentile(upper, q, axis=-1)
    floor = upper - _FAR_BELOW
    if lower is not None:
        floor = np.where(np.isfinite(lower), lower, floor)
    lo = np.percentile(np.where(censored, floor, upper), q, axis=-1)
    return hi, lo < hi - 1e-9


def _ppp(rep: np.ndarray, obs: float) -> float:
    return float(min(1.0, 2 * min((rep >= obs - 1e-12).mean(), (rep <= obs + 1e-12).mean())))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def vpc_table(rows: TrajectoryRows, replicated: dict, *, bins: int | Sequence[float] = 10,
              percentiles: Sequence[float] = (10, 50, 90), prob: float = 0.9) -> pd.DataFrame:
    """VPC statistics per analyte and time bin, observed against replicated (see the module notes).

    Parameters
    ----------
    rows : TrajectoryRows
        The observed rows.
    replicated : dict
        Replicated data as :func:`bayes_blina.checks.predictive.simulate_observations` returns them:
        ``latent_log_y`` (replicates, rows) before censoring, ``censored`` (replicates, rows),
        ``log_limit`` (rows; the limit a censored replicate is only known to be below) and, with two
        limits, ``interval`` (replicates, rows) and ``log_lower`` (rows): a replicate below
        ``log_lower`` is only known to be below it, one in ``[log_lower, log_limit)`` to lie there.
    bins : int or sequence of float
        Quantile bins per analyte, or explicit edges (see :func:`time_bins`).
    percentiles : sequence of float
        Percentiles (0 to 100) compared.
    prob : float
        Probability of the predictive intervals.

    Returns
    -------
    DataFrame
        Columns :data:`VPC_COLUMNS`, one row per (analyte, bin, statistic); ``statistic`` is
        ``pNN`` or ``below_limit``. Concentrations are on the natural scale. ``attrs`` hold the
        accounting (``rows`` and ``censored`` per analyte), ``prob``, ``percentiles`` and
        ``n_replicates``.
    """
    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    pct = [float(p) for p in percentiles]
    if not pct or any(not 0 <= p <= 100 for p in pct):
        raise SpecError(f"percentiles must lie between 0 and 100 (found {list(percentiles)})")
    latent = np.asarray(replicated["latent_log_y"], dtype=float)
    rep_cens = np.asarray(replicated["censored"], dtype=bool)
    if latent.ndim != 2 or latent.shape[1] != len(rows) or rep_cens.shape != latent.shape:
        raise SpecError(f"replicated data must have shape (replicates, {len(rows)}) (found {latent.shape})")
    from bayes_blina.checks.predictive import censored_row_limits

    rep_lim, rep_low = censored_row_limits(replicated)
    rep_upper = np.where(rep_cens, rep_lim, latent)
    obs_low = (np.full(len(rows), np.nan) if rows.log_lower is None
               else np.where(rows.censored, np.asarray(rows.log_lower, dtype=float), np.nan))
    q_lo, q_hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    out: list[dict[str, Any]] = []
    for j, analyte in enumerate(rows.analytes):
        sel = np.flatnonzero(rows.analyte_index == j)
        if sel.size == 0:
            continue
        edges, index = time_bins(rows.time_h[sel], bins)
        for b in range(len(edges) - 1):
            idx = sel[index == b]
            base = {"analyte": analyte, "bin": b, "time_lo": float(edges[b]), "time_hi": float(edges[b + 1]),
                    "time_mid": float(np.median(rows.time_h[idx])) if idx.size else float(edges[b:b + 2].mean()),
                    "n": int(idx.size), "n_censored": int(rows.censored[idx].sum())}
            cl = np.exp(rows.log_upper[idx][rows.censored[idx]])
            base["limit_min"] = float(cl.min()) if cl.size else np.nan
            base["limit_max"] = float(cl.max()) if cl.size else np.nan
            if idx.size == 0:
                for s in [f"p{p:g}" for p in pct] + ["below_limit"]:
                    out.append({**base, "statistic": s, "observed": np.nan, "observed_censored": False,
                                "observed_label": "no rows", "pred_lower": np.nan, "pred_median": np.nan,
                                "pred_upper": np.nan, "pred_censored_frac": np.nan, "ppp": np.nan,
                                "outside": False})
                continue
            o_up, o_c = rows.log_upper[idx], rows.censored[idx]
            r_up, r_c = rep_upper[:, idx], rep_cens[:, idx]
            for p in pct:
                ob, ob_c = _percentile_bound(o_up, o_c, p, obs_low[idx])
                rb, rb_c = _percentile_bound(r_up, r_c, p, rep_low[:, idx])
                ob, rb = float(np.exp(ob)), np.exp(rb)
                lo, med, hi = np.quantile(rb, [q_lo, 0.5, q_hi])
                out.append({**base, "statistic": f"p{p:g}", "observed": ob, "observed_censored": bool(ob_c),
                            "observed_label": ("< " if ob_c else "") + _fmt(ob), "pred_lower": float(lo),
                            "pred_median": float(med), "pred_upper": float(hi),
                            "pred_censored_frac": float(rb_c.mean()), "ppp": _ppp(rb, ob),
                            "outside": bool(ob < lo * (1 - 1e-9) or ob > hi * (1 + 1e-9))})
            frac = float(o_c.mean())
            rf = r_c.mean(axis=1)
            lo, med, hi = np.quantile(rf, [q_lo, 0.5, q_hi])
            out.append({**base, "statistic": "below_limit", "observed": frac, "observed_censored": False,
                        "observed_label": f"{frac:.2f}", "pred_lower": float(lo), "pred_median": float(med),
                        "pred_upper": float(hi), "pred_censored_frac": np.nan, "ppp": _ppp(rf, frac),
                        "outside": bool(frac < lo - 1e-12 or frac > hi + 1e-12)})
    df = pd.DataFrame(out, columns=VPC_COLUMNS)
    df.attrs.update({"prob": prob, "percentiles": pct, "n_replicates": int(latent.shape[0]),
                     "accounting": vpc_accounting(df).to_dict("records")})
    return df


def vpc_accounting(table: pd.DataFrame) -> pd.DataFrame:
    """Rows and censored rows per analyte in a VPC table (each bin counted once)."""
    per_bin = table.drop_duplicates(["analyte", "bin"])
    return (per_bin.groupby("analyte", sort=False)[["n", "n_censored"]].sum()
            .rename(columns={"n": "rows", "n_censored": "censored"}).reset_index())


def check_vpc_accounting(table: pd.DataFrame, data_use: dict) -> pd.DataFrame:
    """Check that every row the fit used, censored or not, is in the VPC table.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`vpc_table`.
    data_use : dict
        ``provenance["data"]["use"]`` of the fit (``censored``: rows and censored rows per analyte).

    Returns
    -------
    DataFrame
        ``analyte, rows, censored, rows_in_fit, censored_in_fit``.

    Raises
    ------
    BayesBlinaError
        If any count differs.
    """
    acc = vpc_accounting(table)
    fit = data_use.get("censored") or {}
    acc["rows_in_fit"] = [int(fit.get(a, {}).get("rows", -1)) for a in acc["analyte"]]
    acc["censored_in_fit"] = [int(fit.get(a, {}).get("censored", -1)) for a in acc["analyte"]]
    missing = [a for a in fit if a not in set(acc["analyte"]) and fit[a].get("rows", 0)]
    bad = acc[(acc.rows != acc.rows_in_fit) | (acc.censored != acc.censored_in_fit)]
    if len(bad) or missing:
        raise BayesBlinaError("VPC table does not account for every row the fit used: "
                              + "; ".join(f"{r.analyte}: {r.rows} rows ({r.censored} censored) in the table, "
                                          f"{r.rows_in_fit} ({r.censored_in_fit}) in the fit"
                                          for r in bad.itertuples())
                              + ("; analytes missing: " + ", ".join(missing) if missing else ""))
    return acc


# ------------------------------------------------------------------------------- from a fit
def stored_prepared(stored):
    """Family, prepared arrays (as stored in ``constant_data``) and posterior of a trajectory fit.

    Raises
    ------
    BayesBlinaError
        If the fit has no trajectory rows.
    """
    from bayes_blina.families.base import Prepared

    const = stored.idata.constant_data if "constant_data" in stored.idata.children else None
    if const is None or any(k not in const for k in TRAJECTORY_ARRAYS):
        raise BayesBlinaError(f"fit {stored.path} ({stored.family_name}) has no trajectory observations: "
                              "this check needs a trajectory family (e.g. pulse)")
    family = stored.family
    arrays = stored.prepared.arrays  # rebuilt from constant_data by the store
    post = as_dataset(stored.idata.posterior)
    subjects = [str(s) for s in post.coords["subject"].values] if "subject" in post.coords else []
    coords = {"analyte": list(stored.options.get("analytes", [])), "subject": subjects}
    return family, Prepared(arrays=arrays, coords=coords, data_use=stored.provenance["data"].get("use", {})), post


def mean_log_draws(family, prepared, draws) -> np.ndarray:
    """Noise-free ``log`` value of every row for each draw, shape (draws, rows)
    (:func:`bayes_blina.checks.predictive.mean_log`)."""
    from bayes_blina.checks.predictive import mean_log

    return mean_log(family, prepared, draws)


def trajectory_rows(stored, dataset=None):
    """Family, prepared arrays, observed rows and the matching posterior of a trajectory fit.

    The rows come from the fit itself (``constant_data`` holds the prepared arrays). With
    ``censoring = "half_lod"`` the stored rows hold substituted values, so the data are prepared
    again with the censored likelihood's row handling; that needs ``dataset``. With ``dataset``
    (checked against the fit's data hash) the limits of uncensored rows come from its rows when
    the data are replicated.

    Returns
    -------
    family, prepared, rows, posterior
        ``posterior`` is aligned with ``prepared`` (subjects by label).

    Raises
    ------
    BayesBlinaError
        If the fit has no trajectory rows, the dataset is not the fit's data, or a half-LOD fit
        comes without its dataset.
    """
    from bayes_blina.families import get_family

    prov = stored.provenance
    opts = dict(stored.options)
    family, prepared, _ = stored_prepared(stored)  # checks that the fit has trajectory rows
    if dataset is not None and dataset.sha256() != prov["data"]["sha256"]:
        raise BayesBlinaError(f"dataset {dataset.name!r} (sha256 {dataset.sha256()[:12]}) is not the data of fit "
                              f"{stored.path} (sha256 {prov['data']['sha256'][:12]})")
    resolved = prov["model"]["resolved"]
    if opts.get("censoring") == "half_lod":
        if dataset is None:
            raise BayesBlinaError(f"fit {stored.path} substituted half the limit for censored rows; the VPC needs "
                                  "the original censoring: pass its dataset (--data)")
        family = get_family(stored.family_name)({**opts, "censoring": "m3"}, resolved.get("priors"))
        prepared = family.prepare(dataset)
    A = prepared.arrays
    analytes = list(prepared.coords.get("analyte") or opts.get("analytes"))
    cens = A["is_censored"].astype(bool)
    log_upper = np.where(cens, A["log_limit"], A["log_y"]).astype(float)
    rows = TrajectoryRows(
        analytes=analytes, analyte_index=A["obs_analyte"].astype(int), subject_index=A["obs_subject"].astype(int),
        time_h=A["obs_time_h"].astype(float), log_upper=log_upper, censored=cens,
        position=A["obs_position"].astype(int) if "obs_position" in A else np.arange(len(cens)),
        log_lower=(np.where(cens, np.asarray(A["log_lower"], dtype=float), np.nan) if "log_lower" in A
                   else None))
    post = as_dataset(stored.idata.posterior)
    if "subject" in post.dims and prepared.coords.get("subject"):
        post = post.sel(subject=list(prepared.coords["subject"]))
    if "analyte" in post.dims:
        post = post.sel(analyte=analytes)
    return family, prepared, rows, post


def _thin(posterior, n_draws: int, rng: np.random.Generator):
    stacked = as_dataset(posterior).stack(sample=("chain", "draw")).transpose("sample", ...)
    total = stacked.sizes["sample"]
    if n_draws and n_draws < total:
        pick = np.sort(rng.choice(total, size=n_draws, replace=False))
        stacked = stacked.isel(sample=pick)
    return stacked


def replicate(family, prepared, posterior, *, n_draws: int = 500, seed: int = 0, dataset=None) -> dict:
    """Replicated data of every row, censored like the data, from ``n_draws`` posterior draws.

    Parameters
    ----------
    family : ModelFamily
    prepared : Prepared
    posterior : xarray.Dataset
        Posterior aligned with ``prepared`` (as returned by :func:`trajectory_rows`).
    n_draws : int
        Posterior draws used (a random subset when fewer than the posterior has; 0 = all).
    seed : int
    dataset : Dataset, optional
        The fit's data: limits of rows observed uncensored.

    Returns
    -------
    dict
        :func:`bayes_blina.checks.predictive.simulate_observations`.
    """
    from bayes_blina.checks.predictive import simulate_observations

    rng = np.random.default_rng(seed)
    draws = _thin(posterior, n_draws, rng)
    return simulate_observations(family, prepared, draws, rng, dataset=dataset)


def vpc_from_fit(stored, dataset=None, *, bins: int | Sequence[float] = 10,
                 percentiles: Sequence[float] = (10, 50, 90), prob: float = 0.9, n_draws: int = 500,
                 seed: int | None = None) -> pd.DataFrame:
    """Censoring-aware VPC table of a stored trajectory fit.

    Parameters
    ----------
    stored : Fit
    dataset : Dataset, optional
        The fit's data (checked by hash): the assay limits of uncensored rows; needed for
        ``censoring = "half_lod"`` fits.
    bins, percentiles, prob
        See :func:`vpc_table`.
    n_draws : int
        Replicated data sets (posterior draws).
    seed : int, optional
        Default: the fit's sampler seed.

    Returns
    -------
    DataFrame
        :func:`vpc_table`; ``attrs["accounting"]`` has been checked against the fit's data use
        (:func:`check_vpc_accounting`) and ``attrs["rows_left_out"]`` lists the rows the fit left
        out, with reasons.
    """
    family, prepared, rows, post = trajectory_rows(stored, dataset)
    seed = stored.spec.sampler.seed if seed is None else seed
    rep = replicate(family, prepared, post, n_draws=n_draws, seed=seed, dataset=dataset)
    table = vpc_table(rows, rep, bins=bins, percentiles=percentiles, prob=prob)
    from bayes_blina.checks.predictive import LIMIT_SOURCES

    src = np.asarray(rep.get("limit_source", []), dtype=int)
    table.attrs["limit_sources"] = {LIMIT_SOURCES[k]: int((src == k).sum()) for k in np.unique(src)}
    use = prepared.data_use or stored.provenance["data"].get("use", {})
    table.attrs["accounting"] = check_vpc_accounting(table, use).to_dict("records")
    table.attrs["rows_left_out"] = [{"reason": r["reason"], "n_rows": r["n_rows"]}
                                    for r in use.get("rows_left_out", [])]
    return table
