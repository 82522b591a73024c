"""Escalation with overdose control (EWOC) from a posterior of the DLT rate per dose.

For each provisional dose, the posterior probabilities that its DLT rate lies in the under-dosing
interval ``[0, target_low)``, the target interval ``[target_low, target_high)`` and the overdosing
interval ``[target_high, 1]`` (defaults 0.16 and 0.33, Neuenschwander et al. 2008). A dose is
allowed when P(overdose) < ``max_overdose`` (default 0.25). The recommended next dose is, among
the allowed doses no higher than ``max_step`` times the current dose, the one with the largest
P(target) (ties: the lower dose), as in Neuenschwander et al. (2008); with no allowed dose the
recommendation is to stop (``None``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError
from bayes_blina.stats import weighted_quantiles

#: Columns of :func:`escalation_table`, in order.
COLUMNS = ("dose", "p_dlt_mean", "p_dlt_lower", "p_dlt_upper", "p_underdose", "p_target", "p_overdose",
           "ewoc_ok")


@dataclass(frozen=True)
class EwocRule:
    """The interval boundaries, the overdose bound and the escalation limit.

    Examples
    --------
    >>> EwocRule(target_low=0.2, target_high=0.35).max_overdose
    0.25
    >>> EwocRule(target_low=0.4, target_high=0.3)
    Traceback (most recent call last):
    ...
    bayes_blina.errors.BayesBlinaError: EWOC intervals need 0 < target_low < target_high < 1 (got 0.4 and 0.3)
    """

    target_low: float = 0.16
    target_high: float = 0.33
    max_overdose: float = 0.25
    #: Largest factor from the current dose to the next (2.0: at most doubling); None for no limit.
    max_step: float | None = 2.0
    #: Central credible interval of the DLT rate shown in the table.
    prob: float = 0.95

    def __post_init__(self):
        if not 0.0 < self.target_low < self.target_high < 1.0:
            raise BayesBlinaError(f"EWOC intervals need 0 < target_low < target_high < 1 (got {self.target_low:g} "
                                  f"and {self.target_high:g})")
        if not 0.0 < self.max_overdose <= 1.0:
            raise BayesBlinaError(f"the overdose bound must be in (0, 1] (got {self.max_overdose:g})")
        if self.max_step is not None and self.max_step < 1.0:
            raise BayesBlinaError(f"the escalation limit max_step is a factor >= 1 (got {self.max_step:g})")
        if not 0.0 < self.prob < 1.0:
            raise BayesBlinaError(f"the interval probability must be in (0, 1) (got {self.prob:g})")


def escalation_table(p_dlt: np.ndarray, doses, rule: EwocRule = EwocRule(), weights: np.ndarray | None = None
                     ) -> pd.DataFrame:
    """Interval probabilities and the EWOC verdict per dose.

    Parameters
    ----------
    p_dlt : numpy.ndarray
        Shape ``(m, dose)``: the DLT rate at each dose for ``m`` posterior draws or grid nodes.
    doses : sequence of float
        The provisional doses (column labels of ``p_dlt``).
    rule : EwocRule
    weights : numpy.ndarray, optional
        Posterior mass of each row (grid quadrature); equal weights (MCMC draws) by default.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one row per dose.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.05, 0.20, 0.40], [0.10, 0.30, 0.50]])
    >>> print(escalation_table(p, [1, 2, 4])[["dose", "p_target", "p_overdose", "ewoc_ok"]].to_string(index=False))
     dose  p_target  p_overdose  ewoc_ok
      1.0       0.0         0.0     True
      2.0       1.0         0.0     True
      4.0       0.0         1.0    False
    """
    p = np.asarray(p_dlt, dtype=float)
    doses = np.asarray(doses, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(doses):
        raise BayesBlinaError(f"p_dlt must have one column per dose ({len(doses)}); got shape {p.shape}")
    w = np.full(len(p), 1.0 / len(p)) if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    under = w @ (p < rule.target_low)
    over = w @ (p >= rule.target_high)
    lo, hi = (1 - rule.prob) / 2, 1 - (1 - rule.prob) / 2
    q = np.column_stack([weighted_quantiles(p[:, j], w, [lo, hi]) for j in range(len(doses))])
    return pd.DataFrame({"dose": doses, "p_dlt_mean": w @ p, "p_dlt_lower": q[0], "p_dlt_upper": q[1],
                         "p_underdose": under, "p_target": 1.0 - under - over, "p_overdose": over,
                         "ewoc_ok": over < rule.max_overdose}, columns=list(COLUMNS))


def escalation_table_from_cdf(doses, mean: np.ndarray, cdf, rule: EwocRule = EwocRule(), *,
                              intervals: bool = True) -> pd.DataFrame:
    """The table of :func:`escalation_table` from the posterior CDF of the DLT rate per dose.

    Parameters
    ----------
    doses : sequence of float
    mean : numpy.ndarray
        Posterior mean DLT rate per dose.
    cdf : callable
        ``cdf(c)``, with ``c`` of shape ``(dose,)``, returns ``P(pi(d) < c_d)`` for each dose
        (deterministic quadrature: :meth:`~bayes_blina.safety.quadrature.GridPosterior.prob_first_below`).
    rule : EwocRule
    intervals : bool, default True
        Compute ``p_dlt_lower`` and ``p_dlt_upper`` (by bisection); False leaves them NaN (what
        escalation decisions need is the rest, and trial simulations skip the cost).

    Examples
    --------
    A DLT rate uniform on (0, 1) at one dose:

    >>> import numpy as np
    >>> t = escalation_table_from_cdf([10.0], np.array([0.5]), lambda c: np.clip(c, 0, 1))
    >>> [round(float(t[c].iloc[0]), 4) for c in ("p_underdose", "p_target", "p_overdose", "p_dlt_lower")]
    [0.16, 0.17, 0.67, 0.025]
    """
    doses = np.asarray(doses, dtype=float)
    k = len(doses)
    under = np.asarray(cdf(np.full(k, rule.target_low)), dtype=float)
    over = 1.0 - np.asarray(cdf(np.full(k, rule.target_high)), dtype=float)

    def invert(q: float) -> np.ndarray:  # bisection on the logit scale, every dose at once
        lo, hi = np.full(k, -40.0), np.full(k, 40.0)
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            below = np.asarray(cdf(1.0 / (1.0 + np.exp(-mid))), dtype=float) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 1.0 / (1.0 + np.exp(-0.5 * (lo + hi)))

    a = (1 - rule.prob) / 2
    lower, upper = (invert(a), invert(1 - a)) if intervals else (np.full(k, np.nan), np.full(k, np.nan))
    return pd.DataFrame({"dose": doses, "p_dlt_mean": np.asarray(mean, dtype=float), "p_dlt_lower": lower,
                         "p_dlt_upper": upper, "p_underdose": under, "p_target": 1.0 - under - over,
                         "p_overdose": over, "ewoc_ok": over < rule.max_overdose}, columns=list(COLUMNS))


def recommend(table: pd.DataFrame, rule: EwocRule = EwocRule(), current_dose: float | None = None) -> float | None:
    """The recommended next dose of an :func:`escalation_table` (None: no dose is allowed, stop).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"dose": [5.0, 15.0, 30.0], "p_target": [0.1, 0.5, 0.6], "ewoc_ok": [True, True, False]})
    >>> recommend(t), recommend(t, current_dose=5.0)
    (15.0, 5.0)
    """
    allowed = table[table["ewoc_ok"].astype(bool)]
    if current_dose is not None and rule.max_step is not None:
        allowed = allowed[allowed["dose"] <= current_dose * rule.max_step * (1 + 1e-9)]
    if allowed.empty:
        return None
    best = allowed.sort_values(["p_target", "dose"], ascending=[False, True], kind="mergesort").iloc[0]
    return float(best["dose"])
