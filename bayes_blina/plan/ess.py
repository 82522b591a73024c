"""Prior effective sample size (ESS) of a beta mixture for a binomial rate.

Three definitions, as in RBesT's ``ess``:

``moment``
    Match the mixture's mean ``m`` and variance ``v`` by one Beta(a, b); the ESS is
    ``a + b = m (1 - m) / v - 1``. Conservative (small) for heavy-tailed mixtures.
``elir`` (expected local information ratio; Neuenschwander, Weber, Schmidli, O'Hagan 2020)
    ``ESS = E_p[ i_p(theta) / i_F(theta) ]`` where ``i_p = -d^2/dtheta^2 log p(theta)`` is the
    prior's local information and ``i_F(theta) = 1 / (theta (1 - theta))`` the Fisher information
    of one Bernoulli observation. The only one of the three that is predictively consistent. For
    one Beta(a, b) with a, b > 1 it is exactly ``a + b``. It needs every ``a, b >= 1``. Computed as
    ``sum_k w_k (a_k + b_k) - E_p[Var_r(g)(theta) theta (1 - theta)]`` (``r_k`` the component
    responsibilities, ``g_k`` the component scores; exact rearrangement of
    ``i_p = -sum_k r_k h_k - Var_r(g)``): the first part in closed form, the second, which vanishes
    for one component, by quadrature (so a single Beta gives ``a + b`` to rounding error).
``morita`` (Morita, Thall, Müller 2008, in the form of Neuenschwander et al. 2020, eq. 9)
    ``ESS = (i_p(t) - i_p0(t)) / E_Y1[ i_Y1(t) ]`` at the prior's mode ``t`` (RBesT evaluates at
    the mode, not at the mean as the original paper does), with the "flattened" reference prior
    ``p0 = Beta(t / s, (1 - t) / s)`` (``s = 100``) and the expected information of one
    observation ``E_Y1[i] = P(Y1 = 1) / t^2 + P(Y1 = 0) / (1 - t)^2`` under the prior predictive.
    For one Beta(a, b) it is close to ``a + b`` (equal after rounding for moderate a, b). It tends
    to be liberal (large) for mixtures: it only sees the curvature at the mode.

References
----------
Morita S, Thall PF, Müller P. Determining the effective sample size of a parametric prior.
Biometrics 2008;64:595-602.
Neuenschwander B, Weber S, Schmidli H, O'Hagan A. Predictively consistent prior effective sample
sizes. Biometrics 2020;76:578-587.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import integrate, special, stats

from bayes_blina.errors import BayesBlinaWarning
from bayes_blina.plan.mixture import BetaMixture, PlanError

METHODS = ("elir", "moment", "morita")


def _grad_hess(x, a, b):
    """First and second derivative of each component's log density at x (shape (..., K))."""
    g = (a - 1) / x - (b - 1) / (1 - x)
    h = -(a - 1) / x**2 - (b - 1) / (1 - x) ** 2
    return g, h


def _responsibilities(prior: BetaMixture, x) -> tuple[np.ndarray, np.ndarray]:
    """``x`` clipped into (0, 1) with a component axis, and the component responsibilities there."""
    x = np.clip(np.asarray(x, dtype=float), np.finfo(float).eps, 1 - np.finfo(float).eps)[..., None]
    with np.errstate(divide="ignore"):
        lc = np.log(prior.weights) + stats.beta.logpdf(x, prior.a, prior.b)
    return x, np.exp(lc - special.logsumexp(lc, axis=-1, keepdims=True))


def local_information(prior: BetaMixture, x) -> np.ndarray:
    """``-d^2/dx^2 log p(x)`` of the mixture density, computed stably from component terms.

    With component responsibilities ``r_k(x) = w_k p_k(x) / p(x)``, gradients ``g_k`` and
    Hessians ``h_k`` of ``log p_k``: ``i_p = (sum r_k g_k)^2 - sum r_k (h_k + g_k^2)``.
    """
    x, r = _responsibilities(prior, x)
    g, h = _grad_hess(x, prior.a, prior.b)
    return np.sum(r * g, axis=-1) ** 2 - np.sum(r * (h + g**2), axis=-1)


def _score_variance(prior: BetaMixture, x) -> np.ndarray:
    """Responsibility-weighted variance of the component scores ``d/dx log p_k(x)``."""
    x, r = _responsibilities(prior, x)
    g, _ = _grad_hess(x, prior.a, prior.b)
    gbar = np.sum(r * g, axis=-1, keepdims=True)
    return np.sum(r * (g - gbar) ** 2, axis=-1)


def _integrate_over(prior: BetaMixture, fn) -> float:
    """``E_p[fn(theta)]``: per component, integrate over the component's probability scale in logit
    space (accurate in both tails, also for densities unbounded at 0 or 1)."""
    total = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", integrate.IntegrationWarning)
        for w, a, b in prior.components():
            total += w * _integrate_component(a, b, fn)
    if any(issubclass(c.category, integrate.IntegrationWarning) for c in caught):
        warnings.warn("the numerical integral behind this ESS did not reach its tolerance; the value may be "
                      "inaccurate (components with a or b close to 1 are the usual cause)",
                      BayesBlinaWarning, stacklevel=3)
    return total


def _integrate_component(a: float, b: float, fn) -> float:
    """``E[fn(theta)]`` under one Beta(a, b), integrated over its probability scale in logit space."""

    def integrand(lg: float) -> float:
        u = special.expit(lg)
        x = special.betaincinv(a, b, u) if lg <= 0 else 1.0 - special.betaincinv(b, a, special.expit(-lg))
        if not (0.0 < x < 1.0):
            return 0.0
        return float(fn(x)) * u * (1 - u)

    val = 0.0
    for lo, hi in ((-60.0, -5.0), (-5.0, 0.0), (0.0, 5.0), (5.0, 60.0)):
        val += integrate.quad(integrand, lo, hi, epsabs=1e-10, epsrel=1e-10, limit=200)[0]
    return val


def ess(prior: BetaMixture, method: str = "elir", *, s: float = 100.0) -> float:
    """Effective sample size of a beta-mixture prior for a binomial rate.

    Parameters
    ----------
    prior : BetaMixture
        The prior.
    method : {"elir", "moment", "morita"}
        See the module docstring; ``elir`` is the default (as in RBesT).
    s : float
        Flattening constant of the Morita reference prior (RBesT's default 100).

    Returns
    -------
    float
        The ESS in patients (not rounded).

    Raises
    ------
    PlanError
        For an unknown method, or ``elir`` with a component parameter below 1 (the defining
        integral then diverges; fit mixtures with ``constrain_gt1=True``).

    Examples
    --------
    >>> round(ess(BetaMixture.beta(3, 12), "moment"), 6), round(ess(BetaMixture.beta(3, 12), "elir"), 6)
    (15.0, 15.0)
    """
    if not isinstance(prior, BetaMixture):
        raise PlanError(f"ess needs a BetaMixture (found {type(prior).__name__})")
    method = str(method).lower()
    if method not in METHODS:
        raise PlanError(f"unknown ESS method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "moment":
        m, v = prior.mean, prior.var
        return float(m * (1 - m) / v - 1)
    if method == "elir":
        if np.any(prior.a < 1) or np.any(prior.b < 1):
            raise PlanError("the ELIR ESS is undefined when a beta parameter is below 1 (the defining integral "
                            f"diverges): a={prior.a.tolist()}, b={prior.b.tolist()}; fit the mixture with "
                            "constrain_gt1=True or use method='moment'")
        # i_p = -sum_k r_k h_k - Var_r(g): the first part integrates in closed form per component
        # (E_k[-h_k theta (1 - theta)] = a_k + b_k for a_k, b_k > 1; a parameter exactly 1 contributes
        # nothing, as the integrand is then identically zero), the second numerically. For a single
        # Beta the second part is zero and the ESS is exactly a + b.
        per_component = np.where(prior.a > 1, prior.b, 0.0) + np.where(prior.b > 1, prior.a, 0.0)
        closed = float(np.sum(prior.weights * per_component))
        val = closed
        if prior.n_components > 1:
            val -= _integrate_over(prior, lambda x: _score_variance(prior, x) * x * (1 - x))
        if val < 0:
            warnings.warn("negative ELIR ESS: numerical integration of the local information ratio is unstable "
                          "for this mixture", BayesBlinaWarning, stacklevel=2)
        return float(val)
    # morita
    if not (np.isfinite(s) and s > 0):
        raise PlanError(f"s must be a positive number (found {s!r})")
    modes = prior.modes()
    if len(modes) > 1:
        warnings.warn(f"the prior has {len(modes)} modes; the Morita ESS is computed at the highest one and is "
                      "ill-defined for multi-modal priors", BayesBlinaWarning, stacklevel=2)
    t = prior.mode()
    if len(modes) == 0 or not (0.0 < t < 1.0):
        raise PlanError("the Morita ESS needs a prior with a mode inside (0, 1) (this prior's density is flat or "
                        "largest at 0 or 1); use method='elir' or 'moment'")
    info_prior = float(local_information(prior, t))
    a0, b0 = t / s, (1 - t) / s
    info_flat = (a0 - 1) / t**2 + (b0 - 1) / (1 - t) ** 2
    p1 = prior.mean  # P(Y1 = 1) under the prior predictive
    e_info = p1 / t**2 + (1 - p1) / (1 - t) ** 2
    return float((info_prior - info_flat) / e_info)


def ess_all(prior: BetaMixture) -> dict[str, float]:
    """ESS by every method: ``{"elir": ..., "moment": ..., "morita": ...}`` (``nan`` where undefined)."""
    out = {}
    for m in METHODS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BayesBlinaWarning)
                out[m] = ess(prior, m)
        except PlanError:
            out[m] = float("nan")
    return out
