"""Censored (M3) log-normal likelihood shared by the trajectory families.

Biomarker concentrations are modelled on the log scale: ``log y ~ Normal(mu_log, sigma)``. A result
reported below a limit (``below`` = ``'LOD'`` or ``'LLOQ'`` in the observations table) enters with
the probability of the range it is known to lie in, Beal's method M3 extended to intervals::

    observed row           :  log N(log y | mu_log, sigma)
    left-censored row      :  log Phi(b)                      b = (log upper - mu_log) / sigma
    interval-censored row  :  log(Phi(b) - Phi(a))            a = (log lower - mu_log) / sigma

The kinds of rows (:func:`censoring_limits`):

* ``below == 'LOD'``: below the LOD, left-censored at the row's ``lod``;
* ``below == 'LLOQ'`` with a known LOD (``0 < lod < lloq`` on the row): detected but not
  quantifiable, so in ``[lod, lloq)``: interval-censored. Treating such a row as merely below the
  LLOQ is not an ignorable coarsening: it puts probability on values below the LOD, which the lab
  would have flagged ``'LOD'``, and pulls the fitted curves down (``docs/recovery.md``: on a
  30-patient IL-6/IL-10 cohort reported with both flags the typical curve came out about 40% too
  low, against 10 to 15% with the interval, as with the values themselves);
* ``below == 'LLOQ'`` without a known LOD (no ``lod``, or ``lod >= lloq``): left-censored at the
  row's ``lloq`` (nothing is known about a lower limit; e.g. a PK assay that reports only an LLOQ).

Jacobian
--------
Observed rows contribute the density of ``log y``, not of ``y``: the Jacobian term ``-log y`` of
the log-normal density is left out. It does not depend on any parameter, so posteriors are
unaffected, and pointwise log-likelihoods (LOO, WAIC) are comparable between models fitted to the
same ``log y``; to compare with a model of ``y`` itself, subtract ``log y`` from the observed rows.
Censored rows are probabilities, to which no Jacobian applies.

Numerical stability
-------------------
``log Phi(z)`` is computed with the scaled complementary error function for ``z < -1``::

    log Phi(z) = log(erfcx(-z / sqrt 2) / 2) - z**2 / 2

and with ``log1p(-erfc(z / sqrt 2) / 2)`` otherwise. The two branches are evaluated at arguments
clipped to their own half-line, so neither produces an infinity or NaN whose gradient a ``switch``
would multiply by zero (NaN * 0 is NaN). Value and gradient are finite and accurate from
``z = -40`` (log Phi = -804.6) to ``z = 10`` and beyond; ``log(erfc(...))`` would give ``-inf``
below about ``z = -38``. (pytensor 2.38 has no ``log_ndtr``; PyMC's ``normal_lcdf`` uses the same
formula but an unclipped ``switch``.) The numpy version uses :func:`scipy.special.log_ndtr`.

``log(Phi(b) - Phi(a))`` (:func:`log_diff_ndtr`, ``a < b``) is computed as::

    log Phi(hi) + log1mexp(log Phi(lo) - log Phi(hi))

with ``(lo, hi) = (a, b)`` when ``a + b <= 0`` and ``(lo, hi) = (-b, -a)`` otherwise (by symmetry
``Phi(b) - Phi(a) = Phi(-a) - Phi(-b)``). Then ``lo <= 0``, so ``Phi(lo) <= 1/2`` and the
difference never cancels catastrophically: an interval far in either tail (``a, b`` near ``-40``
or near ``+40``) keeps a finite, accurate value and gradient. The inputs are swapped before the
one evaluation (no ``switch`` between two evaluated branches), so no branch sees arguments it
was not written for.

When the censoring flags are data (a numpy array), each branch is computed on its own rows only;
a trajectory family that orders its rows observed, then left-censored, then interval-censored
(:func:`bayes_blina.families.trajectory.prepare_trajectory`) gets three contiguous slices.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

__all__ = [
    "CENSORING_KINDS",
    "censored_lognormal_logp",
    "censored_lognormal_logp_np",
    "censored_rows",
    "censoring_limits",
    "log_diff_ndtr",
    "log_diff_ndtr_np",
    "log_ndtr",
]

#: Values of ``below`` that mark a censored row, and the column holding each one's limit.
CENSORING_KINDS: dict[str, str] = {"LOD": "lod", "LLOQ": "lloq"}

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)


def log_ndtr(z):
    """Numerically stable ``log Phi(z)`` (standard normal log-CDF) for pytensor tensors.

    Parameters
    ----------
    z : tensor_like
        Standardised values.

    Returns
    -------
    pytensor.tensor.TensorVariable
        Elementwise ``log Phi(z)``, with a finite gradient for every finite ``z``.
    """
    import pytensor.tensor as pt

    z = pt.as_tensor_variable(z)
    z_lo = pt.minimum(z, -1.0)  # lower-tail branch, only used where z < -1
    z_hi = pt.maximum(z, -1.0)  # central/upper branch, only used where z >= -1
    lower = pt.log(pt.erfcx(-z_lo / _SQRT2) / 2.0) - 0.5 * pt.sqr(z_lo)
    upper = pt.log1p(-pt.erfc(z_hi / _SQRT2) / 2.0)
    return pt.switch(pt.lt(z, -1.0), lower, upper)


def log_diff_ndtr(a, b):
    """Numerically stable ``log(Phi(b) - Phi(a))`` for ``a < b`` (pytensor).

    Parameters
    ----------
    a, b : tensor_like
        Standardised lower and upper limits, ``a < b`` elementwise (finite).

    Returns
    -------
    pytensor.tensor.TensorVariable
        Elementwise log probability of the interval ``(a, b)`` of a standard normal, with finite
        value and gradient in both tails (module docstring).
    """
    import pytensor.tensor as pt

    a, b = pt.as_tensor_variable(a), pt.as_tensor_variable(b)
    left = pt.le(a + b, 0.0)
    lo = pt.switch(left, a, -b)
    hi = pt.switch(left, b, -a)
    log_hi = log_ndtr(hi)
    return log_hi + pt.log1mexp(log_ndtr(lo) - log_hi)


def log_diff_ndtr_np(a, b) -> np.ndarray:
    """Numpy version of :func:`log_diff_ndtr` (:func:`scipy.special.log_ndtr`)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    left = a + b <= 0.0
    lo, hi = np.where(left, a, -b), np.where(left, b, -a)
    log_hi = special.log_ndtr(hi)
    x = special.log_ndtr(lo) - log_hi
    with np.errstate(divide="ignore", invalid="ignore"):
        return log_hi + np.where(x < -math.log(2.0), np.log1p(-np.exp(x)), np.log(-np.expm1(x)))


def _has_lower(log_lower, cens):
    """Numpy: True where a censored row has a finite lower limit (interval-censored)."""
    if log_lower is None:
        return np.zeros_like(cens)
    lo = np.asarray(log_lower, dtype=float)
    with np.errstate(invalid="ignore"):
        return cens & np.isfinite(lo)


def censored_rows(log_y, log_limit, is_censored, log_lower=None) -> dict[str, np.ndarray]:
    """The likelihood's observed arrays, each row's unused entries neutral.

    The one preparation of the arrays :func:`censored_lognormal_logp` takes, used for a fit's data
    and for each simulation that calibration swaps in.

    Parameters
    ----------
    log_y, log_limit : array_like
        Log value of each row, log limit (LOD or LLOQ) of each row; NaN where not applicable.
    is_censored : array_like of bool
        Rows below their limit.
    log_lower : array_like, optional
        Log lower limit of interval-censored rows (a result between the LOD and the LLOQ).

    Returns
    -------
    dict
        ``log_y`` (0 on censored rows), ``log_limit`` (0 on observed rows), ``is_censored``
        (bool) and ``log_lower`` (-inf where a row is not interval-censored, every row when
        ``log_lower`` is not given).

    Examples
    --------
    >>> rows = censored_rows([1.0, np.nan, np.nan], [np.nan, 2.0, 2.0], [False, True, True],
    ...                      [np.nan, np.nan, 0.5])
    >>> rows["log_y"].tolist(), rows["log_limit"].tolist(), rows["log_lower"].tolist()
    ([1.0, 0.0, 0.0], [0.0, 2.0, 2.0], [-inf, -inf, 0.5])
    """
    cens = np.asarray(is_censored, dtype=bool)
    lo = np.full(cens.shape, -np.inf) if log_lower is None else np.asarray(log_lower, dtype=float)
    with np.errstate(invalid="ignore"):
        lo = np.where(cens & np.isfinite(lo), lo, -np.inf)
    return {"log_y": np.where(cens, 0.0, np.asarray(log_y, dtype=float)),
            "log_limit": np.where(cens, np.asarray(log_limit, dtype=float), 0.0),
            "is_censored": cens, "log_lower": lo}


def censored_lognormal_logp(mu_log, sigma, log_y, log_limit, is_censored, log_lower=None):
    """Elementwise M3 log-likelihood of log-normal observations (pytensor).

    Parameters
    ----------
    mu_log : tensor_like
        Mean of ``log y`` per row (vector), or a scalar.
    sigma : tensor_like
        Residual standard deviation of ``log y`` per row (> 0), or a scalar.
    log_y : array_like or tensor
        ``log`` of the observed value; ignored on censored rows (any finite number, e.g. 0).
        Numpy data or a tensor (a model's ``pm.Data``).
    log_limit : array_like or tensor
        ``log`` of the (upper) censoring limit; ignored on observed rows (any finite number).
    is_censored : array_like of bool or tensor
        True where the row is censored. A numpy array (the usual case) lets each branch be
        computed on its own rows only; a symbolic tensor (``pm.Data`` that simulation-based
        calibration swaps) computes every branch on every row.
    log_lower : array_like or tensor, optional
        ``log`` of the lower limit of interval-censored rows: a censored row with a finite
        ``log_lower`` lies in ``[exp(log_lower), exp(log_limit))``; ``-inf`` or NaN (and ``None``
        for every row) means left-censored. Must be below ``log_limit`` where finite. Numpy data
        with numpy flags (which rows are interval-censored is then fixed when the graph is
        built); a tensor only with symbolic flags.

    Returns
    -------
    pytensor.tensor.TensorVariable
        Per row: ``log N(log_y | mu_log, sigma)`` (density of ``log y``, no Jacobian; see the module
        docstring), ``log Phi(b)`` or ``log(Phi(b) - Phi(a))`` with ``b = (log_limit - mu_log) /
        sigma`` and ``a = (log_lower - mu_log) / sigma``.
    """
    import pytensor.tensor as pt

    log_y = log_y if isinstance(log_y, pt.Variable) else np.asarray(log_y, dtype=float)
    log_limit = log_limit if isinstance(log_limit, pt.Variable) else np.asarray(log_limit, dtype=float)
    mu_log = pt.as_tensor_variable(mu_log)
    sigma = pt.as_tensor_variable(sigma)
    if isinstance(is_censored, pt.TensorVariable):  # symbolic flags: every branch everywhere
        cens = is_censored
        z_obs = (pt.where(cens, 0.0, log_y) - mu_log) / sigma
        observed = -0.5 * pt.sqr(z_obs) - pt.log(sigma) - _HALF_LOG_2PI
        lim = pt.where(cens, log_limit, 0.0)
        b = (lim - mu_log) / sigma
        left = log_ndtr(b)
        if log_lower is None or (not isinstance(log_lower, pt.Variable)
                                 and not np.isfinite(np.asarray(log_lower, dtype=float)).any()):
            return pt.switch(cens, left, observed)
        lo = pt.as_tensor_variable(np.asarray(log_lower, dtype=float) if not isinstance(log_lower, pt.Variable)
                                   else log_lower)
        interval = pt.and_(pt.cast(cens, "bool"), pt.gt(lo, -np.inf))  # False for -inf and NaN
        # a dummy lower limit 1 below the upper one on the other rows keeps the branch finite
        a = (pt.where(interval, lo, lim - 1.0) - mu_log) / sigma
        censored = pt.switch(interval, log_diff_ndtr(a, b), left)
        return pt.switch(cens, censored, observed)

    cens = np.asarray(is_censored, dtype=bool).ravel()
    inter = _has_lower(log_lower, cens).ravel()
    n = cens.size
    mu_v = mu_log if mu_log.ndim else pt.alloc(mu_log, n)
    sd_v = sigma if sigma.ndim else pt.alloc(sigma, n)
    io, ic, ii = np.flatnonzero(~cens), np.flatnonzero(cens & ~inter), np.flatnonzero(inter)
    order = np.r_[io, ic, ii]
    contiguous = bool(np.array_equal(order, np.arange(n)))  # observed, left-, interval-censored
    bounds = np.cumsum([0, len(io), len(ic), len(ii)])

    def take(x, idx, k):
        return x[bounds[k]:bounds[k + 1]] if contiguous else x[idx]

    parts = []
    if len(io):
        mu_o, sd_o = take(mu_v, io, 0), take(sd_v, io, 0)
        parts.append(-0.5 * pt.sqr((log_y[io] - mu_o) / sd_o) - pt.log(sd_o) - _HALF_LOG_2PI)
    if len(ic):
        mu_c, sd_c = take(mu_v, ic, 1), take(sd_v, ic, 1)
        parts.append(log_ndtr((log_limit[ic] - mu_c) / sd_c))
    if len(ii):
        mu_i, sd_i = take(mu_v, ii, 2), take(sd_v, ii, 2)
        lower = np.asarray(log_lower, dtype=float).ravel()[ii]
        parts.append(log_diff_ndtr((lower - mu_i) / sd_i, (log_limit[ii] - mu_i) / sd_i))
    out = pt.concatenate(parts) if len(parts) > 1 else parts[0] if parts else pt.zeros(0)
    if not contiguous:
        out = out[np.argsort(order, kind="stable")]
    return out


def censored_lognormal_logp_np(mu_log, sigma, log_y, log_limit, is_censored, log_lower=None) -> np.ndarray:
    """Numpy version of :func:`censored_lognormal_logp` (broadcasting over leading draw axes).

    Parameters
    ----------
    mu_log, sigma : array_like
        Broadcastable to the shape of the result (e.g. ``(chain, draw, obs)``).
    log_y, log_limit, is_censored : array_like
        Per row (last axis).
    log_lower : array_like, optional
        Per row: ``log`` lower limit of interval-censored rows (-inf or NaN: none).

    Returns
    -------
    numpy.ndarray
        Elementwise log-likelihood.
    """
    mu_log = np.asarray(mu_log, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    cens = np.asarray(is_censored, dtype=bool)
    inter = _has_lower(log_lower, cens)
    log_y = np.where(cens, 0.0, np.asarray(log_y, dtype=float))
    log_limit = np.where(cens, np.asarray(log_limit, dtype=float), 0.0)
    observed = -0.5 * ((log_y - mu_log) / sigma) ** 2 - np.log(sigma) - _HALF_LOG_2PI
    b = (log_limit - mu_log) / sigma
    censored = special.log_ndtr(b)
    if inter.any():
        lower = np.where(inter, np.asarray(log_lower, dtype=float), log_limit - 1.0)
        censored = np.where(inter, log_diff_ndtr_np((lower - mu_log) / sigma, b), censored)
    return np.where(cens, censored, observed)


def censoring_limits(observations: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Censoring flag, (upper) limit and lower limit of every row of a canonical observations table.

    Parameters
    ----------
    observations : pandas.DataFrame
        Canonical observations (``below`` in ``{'', 'LOD', 'LLOQ'}``, ``lod``, ``lloq``); missing
        ``below``/``lod``/``lloq`` columns mean no censoring / no limit.

    Returns
    -------
    is_censored : numpy.ndarray of bool
        True where ``below`` is ``'LOD'`` or ``'LLOQ'``.
    limit : numpy.ndarray of float
        The upper limit of a censored row: ``lod`` for ``below == 'LOD'``, ``lloq`` for
        ``below == 'LLOQ'``; NaN elsewhere (and where the row lacks the limit).
    lower : numpy.ndarray of float
        The row's ``lod`` where ``below == 'LLOQ'`` and ``0 < lod < lloq`` (the row is then
        interval-censored in ``[lod, lloq)``); NaN elsewhere (left-censored at ``limit``, or not
        censored).
    """
    n = len(observations)
    if "below" in observations.columns:
        below = observations["below"].fillna("").astype(str).str.strip().str.upper().to_numpy()
    else:
        below = np.full(n, "", dtype=object)

    def col(name: str) -> np.ndarray:
        if name not in observations.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(observations[name], errors="coerce").to_numpy(dtype=float)

    limit = np.full(n, np.nan)
    for kind, name in CENSORING_KINDS.items():
        sel = below == kind
        if sel.any():
            limit[sel] = col(name)[sel]
    is_censored = np.isin(below, list(CENSORING_KINDS))
    lod = col("lod")
    with np.errstate(invalid="ignore"):
        interval = (below == "LLOQ") & (lod > 0) & (lod < limit)
    lower = np.where(interval, lod, np.nan)
    return is_censored, limit, lower
