"""Closed-form interval and posterior helpers."""
from __future__ import annotations

import numpy as np
from scipy import stats


def clopper_pearson(r, n, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) central interval for a binomial proportion.

    Parameters
    ----------
    r, n : int or array-like
        Responders and patients.
    prob : float
        Coverage (default 0.95).

    Returns
    -------
    lower, upper : ndarray
        0 when ``r == 0`` and 1 when ``r == n``, as conventionally reported.
    """
    r = np.asarray(r, dtype=float)
    n = np.asarray(n, dtype=float)
    a = (1 - prob) / 2
    with np.errstate(invalid="ignore"):
        lower = np.where(r > 0, stats.beta.ppf(a, r, n - r + 1), 0.0)
        upper = np.where(r < n, stats.beta.ppf(1 - a, r + 1, n - r), 1.0)
    return lower, upper


def beta_binomial_posterior(r, n, a: float = 1.0, b: float = 1.0):
    """Exact posterior of a binomial rate under a Beta(a, b) prior: ``Beta(a + r, b + n - r)``."""
    return stats.beta(a + np.asarray(r, float), b + np.asarray(n, float) - np.asarray(r, float))


def weighted_quantiles(values, weights, q) -> np.ndarray:
    """Quantiles ``q`` of ``values`` (1-D) under ``weights``: the weighted empirical distribution
    with each point's mass centred on it, interpolated linearly (grid nodes, or equally weighted
    draws).

    Examples
    --------
    >>> weighted_quantiles(np.array([0.0, 1.0, 2.0, 3.0]), np.ones(4), [0.5]).tolist()
    [1.5]
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    order = np.argsort(v, kind="mergesort")
    return np.interp(np.atleast_1d(np.asarray(q, dtype=float)), np.cumsum(w[order]) - 0.5 * w[order], v[order])
