"""Censored (M3) log-normal likelihood shared by the trajectory families.

Biomarker concentrations are modelled on the log scale: ``log y ~ Normal(mu_log, sigma)``. A result
reported below a limit (``below`` = ``'LOD'`` or ``'LLOQ'`` in the observations table) enters with
the probability of being below that limit, Beal's method M3::

    observed row :  log N(log y     | mu_log, sigma)
    censored row :  log Phi((log limit - mu_log) / sigma)

The limit of a censored row is its ``lod`` when ``below == 'LOD'`` and its ``lloq`` when
``below == 'LLOQ'`` (:func:`censoring_limits`).

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

When the censoring flags are data (a numpy array), each branch is computed on its own rows only;
a trajectory family that orders its rows uncensored-first gets two contiguous slices.
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
    "censoring_limits",
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


def censored_lognormal_logp(mu_log, sigma, log_y, log_limit, is_censored):
    """Elementwise M3 log-likelihood of log-normal observations (pytensor).

    Parameters
    ----------
    mu_log : tensor_like
        Mean of ``log y`` per row (vector), or a scalar.
    sigma : tensor_like
        Residual standard deviation of ``log y`` per row (> 0), or a scalar.
    log_y : array_like
        ``log`` of the observed value; ignored on censored rows (any finite number, e.g. 0).
    log_limit : array_like
        ``log`` of the censoring limit; ignored on observed rows (any finite number).
    is_censored : array_like of bool
        True where the row is below its limit. A numpy array (data, the usual case) lets each
        branch be computed on its own rows only; a symbolic tensor computes both on every row.

    Returns
    -------
    pytensor.tensor.TensorVariable
        Per row: ``log N(log_y | mu_log, sigma)`` (density of ``log y``, no Jacobian; see the module
        docstring) or ``log Phi((log_limit - mu_log) / sigma)``.
    """
    import pytensor.tensor as pt

    log_y = np.asarray(log_y, dtype=float)
    log_limit = np.asarray(log_limit, dtype=float)
    mu_log = pt.as_tensor_variable(mu_log)
    sigma = pt.as_tensor_variable(sigma)
    if isinstance(is_censored, pt.TensorVariable):  # symbolic flags: both branches everywhere
        cens = is_censored
        z_obs = (pt.where(cens, 0.0, log_y) - mu_log) / sigma
        observed = -0.5 * pt.sqr(z_obs) - pt.log(sigma) - _HALF_LOG_2PI
        censored = log_ndtr((pt.where(cens, log_limit, 0.0) - mu_log) / sigma)
        return pt.switch(cens, censored, observed)

    cens = np.asarray(is_censored, dtype=bool).ravel()
    n = cens.size
    mu_v = mu_log if mu_log.ndim else pt.alloc(mu_log, n)
    sd_v = sigma if sigma.ndim else pt.alloc(sigma, n)
    io, ic = np.flatnonzero(~cens), np.flatnonzero(cens)
    if not cens[: len(io)].any():  # observed rows first, then censored: contiguous slices
        take = (lambda x, idx, lo, hi: x[lo:hi])
    else:
        take = (lambda x, idx, lo, hi: x[idx])
    k = len(io)
    mu_o, sd_o = take(mu_v, io, 0, k), take(sd_v, io, 0, k)
    mu_c, sd_c = take(mu_v, ic, k, n), take(sd_v, ic, k, n)
    observed = -0.5 * pt.sqr((log_y[io] - mu_o) / sd_o) - pt.log(sd_o) - _HALF_LOG_2PI
    censored = log_ndtr((log_limit[ic] - mu_c) / sd_c)
    out = pt.concatenate([observed, censored])
    if cens[: len(io)].any():
        out = out[np.argsort(np.r_[io, ic], kind="stable")]
    return out


def censored_lognormal_logp_np(mu_log, sigma, log_y, log_limit, is_censored) -> np.ndarray:
    """Numpy version of :func:`censored_lognormal_logp` (broadcasting over leading draw axes).

    Parameters
    ----------
    mu_log, sigma : array_like
        Broadcastable to the shape of the result (e.g. ``(chain, draw, obs)``).
    log_y, log_limit, is_censored : array_like
        Per row (last axis).

    Returns
    -------
    numpy.ndarray
        Elementwise log-likelihood.
    """
    mu_log = np.asarray(mu_log, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    cens = np.asarray(is_censored, dtype=bool)
    log_y = np.where(cens, 0.0, np.asarray(log_y, dtype=float))
    log_limit = np.where(cens, np.asarray(log_limit, dtype=float), 0.0)
    observed = -0.5 * ((log_y - mu_log) / sigma) ** 2 - np.log(sigma) - _HALF_LOG_2PI
    censored = special.log_ndtr((log_limit - mu_log) / sigma)
    return np.where(cens, censored, observed)


def censoring_limits(observations: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Censoring flag and limit of every row of a canonical observations table.

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
        ``lod`` for ``below == 'LOD'``, ``lloq`` for ``below == 'LLOQ'``, NaN elsewhere (and where
        the row lacks the limit).
    """
    n = len(observations)
    if "below" in observations.columns:
        below = observations["below"].fillna("").astype(str).str.strip().str.upper().to_numpy()
    else:
        below = np.full(n, "", dtype=object)
    limit = np.full(n, np.nan)
    for kind, col in CENSORING_KINDS.items():
        sel = below == kind
        if sel.any() and col in observations.columns:
            limit[sel] = pd.to_numeric(observations[col], errors="coerce").to_numpy(dtype=float)[sel]
    is_censored = np.isin(below, list(CENSORING_KINDS))
    return is_censored, limit
