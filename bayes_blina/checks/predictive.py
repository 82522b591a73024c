"""Predictive simulation: replicated data sets from posterior or prior draws, censored like the data.

One entry point, :func:`simulate_observations`, for every model family:

Trajectory families (any family with ``mean_log(draws, prepared)``; ``pulse`` also through
:func:`bayes_blina.families.pulse.pulse_log_mu` until it has that method)
    For every draw ``s`` and observation row ``o``::

        log y_rep[s, o] = mean_log[s, o] + sigma_obs[s, obs_analyte[o]] * eps[s, o],  eps ~ N(0, 1)

    and a replicate below its row's limit is censored, as the assay would have reported it: its
    value is NaN and ``censored`` is True. The limit of a row that is censored in the data is its
    own (``exp(log_limit)``, the LOD or LLOQ named by ``below``). Uncensored rows carry no limit in
    the prepared arrays of the existing families, so their limit is found, in this order, from

    1. ``prepared.arrays["row_log_limit"]`` (log of the limit below which the row would have been
       reported censored, NaN for none) when a family provides it;
    2. the ``dataset`` argument: the row's own ``lod``/``lloq`` column (through
       ``arrays["obs_position"]``), of the kind (LOD or LLOQ) most used by the analyte's censored
       rows (LOD when it has none), on the model's scale (divided by the same factor as the row's
       value, so ``relative_to_baseline`` is handled);
    3. otherwise the most common limit of the censored rows of the same patient and analyte, or of
       the analyte, never above the row's observed value (a value reported uncensored shows that
       its limit was not above it);
    4. no limit (the replicate is never censored) when none of these exists, e.g. an analyte
       without censored rows or a fit with ``censoring = "half_lod"``.

    ``limit_source`` in the result says which rule gave each row's limit.

    Two limits, as a lab reports them. An analyte with interval-censored rows in the data (flagged
    ``'LLOQ'`` with a known LOD: the lab reports results between the limits as ``'LLOQ'`` and
    those below the LOD as ``'LOD'``) is replicated the same way (:func:`row_log_lower_limits`):
    every row of it gets a lower limit (LOD) and an upper one (LLOQ); a replicate below the LOD is
    left-censored at the LOD (``'LOD'``), one in ``[LOD, LLOQ)`` is interval-censored
    (``interval`` True, ``'LLOQ'``), one at or above the LLOQ is a value. The limits of a row that
    is not itself interval-censored come from the dataset's ``lod``/``lloq`` (both given, ``lod <
    lloq``), else from the interval-censored rows of the same patient and analyte, or of the
    analyte. Analytes without interval rows are replicated with one limit as above.
    :func:`censored_row_limits` gives each censored replicate's limits as the likelihood takes them.

``response``
    Binary responses: each patient's replicate is ``Bernoulli(p_cell[pat_cell])``, each aggregate
    row's ``Binomial(agg_n, p_agg)`` (the same draws as
    :func:`bayes_blina.checks.response_ppc.response_ppc`), from the draws' ``p_cell`` and ``p_agg``.
``joint``
    Each trajectory part by its own family as above (its unprefixed arrays and draws; results keyed
    with the part's prefix), and each CR patient's outcome ``Bernoulli(p_cr)``
    (:func:`simulate_joint`).

``draws`` may be an ``xarray.Dataset`` with dimensions ``(chain, draw, ...)`` (``idata.posterior``
or ``idata.prior``), one with a single ``sample`` dimension, or a mapping of arrays whose first
axis is the draw. Results always have one leading draw axis of length ``chain * draw``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.errors import SpecError

__all__ = ["LIMIT_SOURCES", "censored_row_limits", "flatten_draws", "mean_log", "row_log_limits",
           "row_log_lower_limits", "simulate_observations", "simulate_joint", "simulate_responses",
           "simulate_trajectories"]

#: Codes of ``limit_source``: where each row's censoring limit came from.
LIMIT_SOURCES = ("own censored row", "row_log_limit array", "dataset lod/lloq", "patient-analyte",
                 "analyte", "none")


# ------------------------------------------------------------------------------------------------
# draws
# ------------------------------------------------------------------------------------------------


def _n_draws_xr(draws) -> int:
    if "chain" in draws.dims and "draw" in draws.dims:
        return int(draws.sizes["chain"] * draws.sizes["draw"])
    if "sample" in draws.dims:
        return int(draws.sizes["sample"])
    if "draw" in draws.dims:
        return int(draws.sizes["draw"])
    raise SpecError(f"draws need dimensions (chain, draw), (sample,) or (draw,); found {tuple(draws.dims)}")


def flatten_draws(draws, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays of draws with one leading draw axis.

    Parameters
    ----------
    draws : xarray.Dataset or mapping
        ``(chain, draw, ...)`` or ``(sample, ...)`` / ``(draw, ...)`` dataset, or a mapping of
        arrays whose first axis is the draw.
    names : list of str, optional
        Variables wanted (default: all). A missing name raises :class:`SpecError`.

    Returns
    -------
    dict of str to numpy.ndarray
        Each of shape ``(n_draws, ...)``.
    """
    have = list(draws.data_vars) if hasattr(draws, "data_vars") else list(draws)
    names = have if names is None else names
    missing = [n for n in names if n not in have]
    if missing:
        raise SpecError(f"the draws lack {', '.join(missing)} (have: {', '.join(map(str, have))})")
    out: dict[str, np.ndarray] = {}
    for n in names:
        v = draws[n]
        if hasattr(v, "dims"):
            if "chain" in v.dims and "draw" in v.dims:
                v = v.transpose("chain", "draw", ...)
                a = np.asarray(v.values)
                a = a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])
            else:
                lead = "sample" if "sample" in v.dims else "draw"
                a = np.asarray(v.transpose(lead, ...).values)
        else:
            a = np.asarray(v)
        out[str(n)] = a
    return out


def _n_draws(draws) -> int:
    if hasattr(draws, "data_vars"):
        return _n_draws_xr(draws)
    first = next(iter(draws.values()))
    return int(np.asarray(first).shape[0])


def mean_log(family, prepared, draws) -> np.ndarray:
    """Noise-free log value of every observation row for every draw, shape ``(n_draws, obs)``.

    Uses ``family.mean_log(draws, prepared)`` (every trajectory family implements it).

    Raises
    ------
    SpecError
        If the family has no way to compute the noise-free values.
    """
    n_obs = len(prepared.arrays["log_y"])
    if hasattr(family, "mean_log"):
        try:
            mu = np.asarray(family.mean_log(draws, prepared), dtype=float)
        except NotImplementedError as err:
            raise SpecError(str(err)) from None
    else:
        raise SpecError(f"model family {getattr(family, 'name', family)!r} has no mean_log(draws, prepared): "
                        "cannot simulate trajectories for it")
    return mu.reshape(-1, n_obs)


# ------------------------------------------------------------------------------------------------
# limits
# ------------------------------------------------------------------------------------------------


def _mode(values: np.ndarray) -> float:
    vals, counts = np.unique(np.round(values, 9), return_counts=True)
    return float(vals[np.argmax(counts)])


def row_log_limits(prepared, dataset=None) -> tuple[np.ndarray, np.ndarray]:
    """Log censoring limit of every observation row and where it came from (module docstring).

    Parameters
    ----------
    prepared : Prepared
        Prepared arrays of a trajectory family (``log_y``, ``log_limit``, ``is_censored``,
        ``obs_subject``, ``obs_analyte``; optionally ``row_log_limit`` and ``obs_position``).
    dataset : Dataset, optional
        The dataset the arrays were prepared from (for rows' own ``lod``/``lloq``).

    Returns
    -------
    log_limit : numpy.ndarray
        Shape (obs,); NaN where a row has no limit (never censored).
    source : numpy.ndarray of int
        Index into :data:`LIMIT_SOURCES` per row.
    """
    A = prepared.arrays
    cens = np.asarray(A["is_censored"]).astype(bool)
    log_y = np.asarray(A["log_y"], dtype=float)
    n = len(log_y)
    lim = np.full(n, np.nan)
    src = np.full(n, LIMIT_SOURCES.index("none"), dtype=np.int64)
    lim[cens] = np.asarray(A["log_limit"], dtype=float)[cens]
    src[cens] = LIMIT_SOURCES.index("own censored row")
    todo = ~cens

    if "row_log_limit" in A:
        rl = np.asarray(A["row_log_limit"], dtype=float)
        ok = todo & np.isfinite(rl)
        lim[ok], src[ok] = rl[ok], LIMIT_SOURCES.index("row_log_limit array")
        todo &= ~ok

    ana = np.asarray(A["obs_analyte"])
    sub = np.asarray(A["obs_subject"])
    if todo.any() and dataset is not None and "obs_position" in A and dataset.observations is not None:
        obs = dataset.observations.reset_index(drop=True)
        pos = np.asarray(A["obs_position"], dtype=np.int64)
        rows = obs.iloc[pos]
        below = (rows["below"].fillna("").astype(str).str.strip().str.upper().to_numpy()
                 if "below" in rows else np.full(n, ""))

        def col(name: str) -> np.ndarray:
            return (pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float) if name in rows
                    else np.full(n, np.nan))

        lod, lloq = col("lod"), col("lloq")
        value = col("value")
        # the model's scale: value / exp(log_y) (1 unless the family rescales, e.g. relative_to_baseline)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(todo & (value > 0), value / np.exp(log_y), np.nan)
        for j in np.unique(ana):
            sel = todo & (ana == j)
            kinds = below[cens & (ana == j)]
            kind = "LLOQ" if (kinds == "LLOQ").sum() > (kinds == "LOD").sum() else "LOD"
            raw = (lloq if kind == "LLOQ" else lod)[sel]
            with np.errstate(divide="ignore", invalid="ignore"):
                cand = np.log(raw / scale[sel])
            ok_j = np.isfinite(cand)
            idx = np.flatnonzero(sel)[ok_j]
            lim[idx], src[idx] = cand[ok_j], LIMIT_SOURCES.index("dataset lod/lloq")
            todo[idx] = False

    if todo.any() and cens.any():
        cell = sub.astype(np.int64) * (int(ana.max()) + 1) + ana
        by_cell = {c: _mode(lim[cens & (cell == c)]) for c in np.unique(cell[cens])}
        by_ana = {j: _mode(lim[cens & (ana == j)]) for j in np.unique(ana[cens])}
        for o in np.flatnonzero(todo):
            if cell[o] in by_cell:
                v, s = by_cell[cell[o]], "patient-analyte"
            elif ana[o] in by_ana:
                v, s = by_ana[ana[o]], "analyte"
            else:
                continue
            lim[o], src[o] = min(v, log_y[o]), LIMIT_SOURCES.index(s)
    return lim, src


def row_log_lower_limits(prepared, log_limit: np.ndarray, dataset=None) -> tuple[np.ndarray, np.ndarray]:
    """Lower (LOD) and upper (LLOQ) log limits of the rows of analytes reported with two limits.

    An analyte is reported with two limits when some of its rows in the data are interval-censored
    (``log_lower`` finite: flagged ``'LLOQ'`` with a known LOD). See the module docstring.

    Parameters
    ----------
    prepared : Prepared
        Prepared arrays of a trajectory family (``log_lower`` optional: without it, or without
        interval-censored rows, every row keeps one limit).
    log_limit : numpy.ndarray
        Each row's one limit, from :func:`row_log_limits`.
    dataset : Dataset, optional
        The dataset behind ``prepared`` (rows' own ``lod`` and ``lloq``).

    Returns
    -------
    log_upper : numpy.ndarray
        Shape (obs,): ``log_limit``, with the LLOQ for the rows of two-limit analytes.
    log_lower : numpy.ndarray
        Shape (obs,): the LOD of the rows of two-limit analytes, NaN elsewhere (one limit).
    """
    A = prepared.arrays
    upper = np.asarray(log_limit, dtype=float).copy()
    n = len(upper)
    lower = np.full(n, np.nan)
    if "log_lower" not in A:
        return upper, lower
    cens = np.asarray(A["is_censored"]).astype(bool)
    own_lo = np.asarray(A["log_lower"], dtype=float)
    inter = cens & np.isfinite(own_lo)
    if not inter.any():
        return upper, lower
    own_up = np.asarray(A["log_limit"], dtype=float)
    log_y = np.asarray(A["log_y"], dtype=float)
    ana = np.asarray(A["obs_analyte"]).astype(np.int64)
    sub = np.asarray(A["obs_subject"]).astype(np.int64)
    lower[inter], upper[inter] = own_lo[inter], own_up[inter]
    todo = np.isin(ana, np.unique(ana[inter])) & ~inter
    cand_lo, cand_up = np.full(n, np.nan), np.full(n, np.nan)
    if todo.any() and dataset is not None and "obs_position" in A and dataset.observations is not None:
        rows = dataset.observations.reset_index(drop=True).iloc[np.asarray(A["obs_position"], dtype=np.int64)]

        def col(name: str) -> np.ndarray:
            return (pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float) if name in rows
                    else np.full(n, np.nan))

        lod, lloq, value = col("lod"), col("lloq"), col("value")
        with np.errstate(divide="ignore", invalid="ignore"):
            # the model's scale (relative_to_baseline divides values and limits by the same factor)
            scale = np.where(cens, np.where(np.isfinite(lod) & (lod > 0), lod, lloq) / np.exp(own_up),
                             value / np.exp(log_y))
            ok = todo & (lod > 0) & (lod < lloq) & (scale > 0)
            cand_lo[ok], cand_up[ok] = np.log(lod[ok] / scale[ok]), np.log(lloq[ok] / scale[ok])
    rest = todo & ~np.isfinite(cand_lo)
    if rest.any():
        cell = sub * (int(ana.max()) + 1) + ana
        by_cell = {c: (_mode(own_lo[inter & (cell == c)]), _mode(own_up[inter & (cell == c)]))
                   for c in np.unique(cell[inter])}
        by_ana = {j: (_mode(own_lo[inter & (ana == j)]), _mode(own_up[inter & (ana == j)]))
                  for j in np.unique(ana[inter])}
        for o in np.flatnonzero(rest):
            got = by_cell.get(cell[o], by_ana.get(ana[o]))
            if got is not None:
                cand_lo[o], cand_up[o] = got
    for o in np.flatnonzero(todo & np.isfinite(cand_lo)):
        if cens[o]:  # below the LOD in the data: its own limit is the LOD
            lo, up = own_up[o], max(cand_up[o], own_up[o])
        else:  # a value reported by a two-limit lab is at or above the LLOQ
            up = min(cand_up[o], log_y[o])
            lo = cand_lo[o]
        if lo < up:
            lower[o], upper[o] = lo, up
    return upper, lower


def censored_row_limits(replicated: dict, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Each censored replicate's limits as the likelihood takes them.

    Parameters
    ----------
    replicated : dict
        :func:`simulate_trajectories` (or one part of :func:`simulate_joint`, with ``prefix``).
    prefix : str
        Key prefix of a joint model's part.

    Returns
    -------
    log_limit : numpy.ndarray
        (draw, obs): the upper limit of a censored replicate (the LOD of one below the LOD, the
        LLOQ of one between the limits), NaN on uncensored replicates.
    log_lower : numpy.ndarray
        (draw, obs): the LOD of an interval-censored replicate, NaN elsewhere.
    """
    cens = np.asarray(replicated[prefix + "censored"], dtype=bool)
    inter = np.asarray(replicated.get(prefix + "interval", np.zeros_like(cens)), dtype=bool)
    up = np.broadcast_to(np.asarray(replicated[prefix + "log_limit"], dtype=float), cens.shape)
    lo = np.broadcast_to(np.asarray(replicated.get(prefix + "log_lower", np.full(cens.shape[-1], np.nan)),
                                    dtype=float), cens.shape)
    log_limit = np.where(cens, np.where(inter | ~np.isfinite(lo), up, lo), np.nan)
    return log_limit, np.where(inter, lo, np.nan)


# ------------------------------------------------------------------------------------------------
# simulation
# ------------------------------------------------------------------------------------------------


def simulate_trajectories(family, prepared, draws, rng: np.random.Generator, *, dataset=None,
                          mu: np.ndarray | None = None) -> dict[str, Any]:
    """Replicated log values of a trajectory family, censored like the data (module docstring).

    Parameters
    ----------
    family : ModelFamily
        A trajectory family (``mean_log``, or ``pulse``).
    prepared : Prepared
        The family's prepared arrays.
    draws : xarray.Dataset or mapping
        Posterior or prior draws with the family's parameters and ``sigma_obs`` (..., analyte).
    rng : numpy.random.Generator
        Source of the measurement noise.
    dataset : Dataset, optional
        The dataset behind ``prepared`` (rows' own limits).
    mu : numpy.ndarray, optional
        Precomputed :func:`mean_log` (n_draws, obs).

    Returns
    -------
    dict
        ``log_y`` (draw, obs) replicated log values, NaN where censored; ``censored`` (draw, obs)
        bool (below the row's upper limit); ``interval`` (draw, obs) bool (censored between the
        row's two limits: reported ``'LLOQ'``); ``latent_log_y`` (draw, obs) the replicated log
        values before censoring (what the assay would have measured without limits); ``mean_log``
        (draw, obs); ``log_limit`` (obs,) the upper limit and ``limit_source`` (obs,) as
        :func:`row_log_limits` gives them (the LLOQ on rows of two-limit analytes); ``log_lower``
        (obs,) the LOD of rows of two-limit analytes, NaN elsewhere (:func:`row_log_lower_limits`).
    """
    A = prepared.arrays
    if mu is None:
        mu = mean_log(family, prepared, draws)
    sigma = flatten_draws(draws, ["sigma_obs"])["sigma_obs"].reshape(mu.shape[0], -1)
    sd = sigma[:, np.asarray(A["obs_analyte"])]
    log_rep = mu + sd * rng.standard_normal(mu.shape)
    lim, src = row_log_limits(prepared, dataset)
    lim, lower = row_log_lower_limits(prepared, lim, dataset)
    with np.errstate(invalid="ignore"):
        cens = np.isfinite(lim)[None, :] & (log_rep < lim[None, :])
        interval = cens & np.isfinite(lower)[None, :] & (log_rep >= lower[None, :])
    return {"log_y": np.where(cens, np.nan, log_rep), "censored": cens, "interval": interval,
            "latent_log_y": log_rep, "mean_log": mu, "log_limit": lim, "log_lower": lower, "limit_source": src}


def simulate_responses(prepared, draws, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Replicated responses of the response family.

    Parameters
    ----------
    prepared : Prepared
        Prepared arrays of :class:`~bayes_blina.families.response.ResponseModel`.
    draws : xarray.Dataset or mapping
        Draws with ``p_cell`` (..., cell) if there are patients and ``p_agg`` (..., agg_row) if
        there are aggregate rows (both are deterministics of the model, so also in prior draws).
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    dict
        ``pat_y`` (draw, patient) int8 Bernoulli replicates of each patient, ``cell_y`` (draw,
        cell) their sums per cell, ``agg_r`` (draw, agg_row) binomial replicates of the aggregate
        rows (empty arrays where the data have none).
    """
    A = prepared.arrays
    S = _n_draws(draws)
    out: dict[str, np.ndarray] = {}
    n_pat, n_cell = len(A["pat_y"]), len(A["cell_n"])
    if n_pat:
        p = flatten_draws(draws, ["p_cell"])["p_cell"].reshape(S, n_cell)
        pat = (rng.random((S, n_pat)) < p[:, A["pat_cell"]]).astype(np.int8)
        cell_y = np.zeros((S, n_cell), dtype=np.int64)
        np.add.at(cell_y, (slice(None), A["pat_cell"]), pat)
        out["pat_y"], out["cell_y"] = pat, cell_y
    else:
        out["pat_y"], out["cell_y"] = np.zeros((S, 0), np.int8), np.zeros((S, n_cell), np.int64)
    n_agg = len(A["agg_r"])
    if n_agg:
        p = flatten_draws(draws, ["p_agg"])["p_agg"].reshape(S, n_agg)
        out["agg_r"] = rng.binomial(A["agg_n"][None, :], p)
    else:
        out["agg_r"] = np.zeros((S, 0), np.int64)
    return out


def _part_draws(draws, prefix: str):
    """The draws of one part of a joint model, names (and dimensions) without ``prefix``."""
    if hasattr(draws, "data_vars"):
        from bayes_blina.families.trajectory import unprefixed

        return unprefixed(draws, prefix)
    return {k[len(prefix):]: v for k, v in draws.items() if k.startswith(prefix)}


def simulate_joint(family, prepared, draws, rng: np.random.Generator, *, dataset=None) -> dict[str, Any]:
    """Replicated data of the joint model: every trajectory part and the CR outcomes.

    Each part (:data:`bayes_blina.families.joint.PARTS`) is simulated by its own family with
    :func:`simulate_trajectories` on its unprefixed arrays (``family.sub_prepared``) and the
    unprefixed draws, censored like the data; the CR outcome of every patient of the CR part is
    ``Bernoulli(p_cr)`` (``p_cr`` (..., cr_patient), a deterministic of the model, so in prior
    draws too).

    Returns
    -------
    dict
        ``parts``: the prefixes of the parts (e.g. ``["tcell_", "cyt_"]``); for each part, every
        key of :func:`simulate_trajectories` with the part's prefix (``tcell_log_y``,
        ``tcell_censored``, ``tcell_log_limit``, ...); with a CR part, ``cr_y`` (draw, cr_patient)
        int8 and ``p_cr`` (draw, cr_patient).
    """
    from bayes_blina.families.joint import PARTS

    out: dict[str, Any] = {"parts": []}
    for part, fam in family.parts.items():
        prefix = PARTS[part][1]
        rep = simulate_trajectories(fam, family.sub_prepared(prepared, part), _part_draws(draws, prefix), rng,
                                    dataset=dataset)
        out["parts"].append(prefix)
        out.update({prefix + k: v for k, v in rep.items()})
    if "cr_y" in prepared.arrays:
        S = _n_draws(draws)
        n_cr = len(prepared.arrays["cr_y"])
        p = np.asarray(flatten_draws(draws, ["p_cr"])["p_cr"], dtype=float).reshape(S, n_cr)
        out["p_cr"] = p
        out["cr_y"] = (rng.random((S, n_cr)) < p).astype(np.int8)
    return out


def simulate_observations(family, prepared, draws, rng: np.random.Generator | int | None = None, *,
                          dataset=None) -> dict[str, Any]:
    """Replicated data from posterior or prior draws, for any family (module docstring).

    Parameters
    ----------
    family : ModelFamily
        The fitted family.
    prepared : Prepared
        Its prepared arrays (the design: patients, times, events, limits).
    draws : xarray.Dataset or mapping
        ``idata.posterior``, ``idata.prior`` or arrays with a leading draw axis.
    rng : numpy.random.Generator or int, optional
        Random source or seed.
    dataset : Dataset, optional
        Trajectory families: the dataset, for uncensored rows' own limits.

    Returns
    -------
    dict
        By the family's declared ``outcome``: ``"trajectory"``, see :func:`simulate_trajectories`;
        ``"binary"``, see :func:`simulate_responses`; ``"composite"``, see :func:`simulate_joint`.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    outcome = getattr(family, "outcome", "")
    if outcome == "binary":
        return simulate_responses(prepared, draws, rng)
    if outcome == "composite":
        return simulate_joint(family, prepared, draws, rng, dataset=dataset)
    if outcome == "trajectory" and "log_y" in prepared.arrays:
        return simulate_trajectories(family, prepared, draws, rng, dataset=dataset)
    raise SpecError(f"no predictive simulation for model family {getattr(family, 'name', family)!r}: "
                    "it declares no outcome this check simulates (ModelFamily.outcome: 'trajectory', "
                    "'binary' or 'composite')")
