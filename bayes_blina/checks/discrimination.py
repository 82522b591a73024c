"""Discrimination and calibration of probability predictions of a binary outcome (pure numpy).

``auc``
    Area under the ROC curve: the probability that a randomly chosen responder has a higher
    predicted probability than a randomly chosen nonresponder, ties counting one half (the
    Mann-Whitney statistic divided by ``n1 * n0``), computed from mid-ranks.
``brier``
    Mean squared difference between predicted probability and outcome (0 is perfect; always
    predicting the observed prevalence ``q`` scores ``q (1 - q)``).
``calibration_curve``
    Predictions grouped into bins (equal-width on [0, 1], or quantile bins); per bin the mean
    prediction, the observed fraction and its exact (Clopper-Pearson) interval.
``discrimination_table``
    AUC, Brier score, its scaled version (``1 - Brier / (q (1 - q))``) and the log score of several
    sets of predictions of the same outcomes, one row each.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError
from bayes_blina.stats import clopper_pearson

__all__ = ["auc", "brier", "log_score", "calibration_curve", "discrimination_table"]


def _check(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise BayesBlinaError(f"outcomes and predictions differ in length ({y.size} vs {p.size})")
    if y.size == 0:
        raise BayesBlinaError("no outcomes to evaluate predictions against")
    if not np.all((y == 0) | (y == 1)):
        bad = y[~((y == 0) | (y == 1))][0]
        raise BayesBlinaError(f"outcomes must be 0 or 1 (found {bad!r})")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        bad = p[~(np.isfinite(p) & (p >= 0) & (p <= 1))][0]
        raise BayesBlinaError(f"predicted probabilities must lie in [0, 1] (found {bad!r})")
    return y, p


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = len(x)
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]
    mid = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(n)
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def auc(y, p) -> float:
    """Area under the ROC curve (ties count one half).

    Parameters
    ----------
    y : array_like of {0, 1}
        Outcomes.
    p : array_like of float
        Predicted probabilities (or any score; only their order matters).

    Returns
    -------
    float
        ``(sum of responders' mid-ranks - n1 (n1 + 1) / 2) / (n1 n0)``; NaN when all outcomes are
        equal (AUC is undefined).
    """
    y, p = _check(y, p)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = _midranks(p)
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def brier(y, p) -> float:
    """Brier score: mean of ``(p - y)**2``."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2))


def log_score(y, p, eps: float = 1e-12) -> float:
    """Mean log predictive probability of the outcomes (higher is better; probabilities clipped
    to ``[eps, 1 - eps]``)."""
    y, p = _check(y, p)
    q = np.clip(p, eps, 1.0 - eps)
    return float(np.mean(y * np.log(q) + (1.0 - y) * np.log1p(-q)))


def calibration_curve(y, p, *, bins: int = 5, strategy: str = "quantile", prob: float = 0.9) -> pd.DataFrame:
    """Observed fraction against mean prediction, by bins of the prediction.

    Parameters
    ----------
    y, p : array_like
        Outcomes (0/1) and predicted probabilities.
    bins : int
        Number of bins (empty bins are dropped).
    strategy : {"quantile", "uniform"}
        Bins with (nearly) equal counts, or equal-width bins on [0, 1].
    prob : float
        Probability of the Clopper-Pearson interval of the observed fraction.

    Returns
    -------
    DataFrame
        ``bin, lower_edge, upper_edge, n, mean_predicted, observed, observed_lower,
        observed_upper``. Bins are closed on the right, the first also on the left.
    """
    y, p = _check(y, p)
    if int(bins) < 1:
        raise BayesBlinaError(f"bins must be at least 1 (found {bins})")
    if strategy == "quantile":
        edges = np.quantile(p, np.linspace(0.0, 1.0, int(bins) + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, int(bins) + 1)
    else:
        raise BayesBlinaError(f"strategy must be 'quantile' or 'uniform' (found {strategy!r})")
    edges = np.unique(edges)
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, edges.size - 2)
    rows = []
    for k in range(edges.size - 1):
        sel = idx == k
        n = int(sel.sum())
        if n == 0:
            continue
        r = int(y[sel].sum())
        lo, hi = clopper_pearson(r, n, prob)
        rows.append({"bin": k + 1, "lower_edge": float(edges[k]), "upper_edge": float(edges[k + 1]), "n": n,
                     "mean_predicted": float(p[sel].mean()), "observed": r / n,
                     "observed_lower": float(lo), "observed_upper": float(hi)})
    return pd.DataFrame(rows)


def discrimination_table(y, predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """AUC, Brier score, scaled Brier and log score of several prediction sets of the same outcomes.

    Parameters
    ----------
    y : array_like of {0, 1}
    predictions : mapping of name to array_like
        Predicted probabilities, one array per model (or landmark day), aligned with ``y``.

    Returns
    -------
    DataFrame
        ``model, n, responders, auc, brier, brier_scaled, log_score``; ``brier_scaled`` is
        ``1 - brier / (q (1 - q))`` with ``q`` the observed fraction (0: no better than always
        predicting ``q``; NaN if all outcomes are equal).
    """
    y = np.asarray(y, dtype=float).ravel()
    q = float(np.mean(y)) if y.size else float("nan")
    ref = q * (1.0 - q)
    rows = []
    for name, p in predictions.items():
        b = brier(y, p)
        rows.append({"model": str(name), "n": int(y.size), "responders": int(y.sum()), "auc": auc(y, p),
                     "brier": b, "brier_scaled": (1.0 - b / ref) if ref > 0 else float("nan"),
                     "log_score": log_score(y, p)})
    return pd.DataFrame(rows)
