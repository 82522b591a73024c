"""Simon's two-stage designs for single-arm phase II trials (Simon 1989), by exact enumeration.

Stage 1 treats ``n1`` patients and stops for futility if ``r1`` or fewer respond; otherwise
``n - n1`` more are treated and the treatment is declared promising if more than ``r`` of all
``n`` respond. With ``X1 ~ Bin(n1, p)``, ``X2 ~ Bin(n - n1, p)``::

    PET(p)    = P(X1 <= r1)                                     (probability of early termination)
    P(reject) = sum_{x1 = r1+1}^{n1} P(X1 = x1) P(X2 > r - x1)
    EN(p)     = n1 + (1 - PET(p)) (n - n1)

A design is admissible if ``P(reject | p0) <= alpha`` and ``P(reject | p1) >= 1 - beta``. The
*optimal* design minimises ``EN(p0)``; the *minimax* design minimises ``n`` and, among those,
``EN(p0)``. Every ``(n, n1, r1, r)`` with ``n <= n_max`` is examined; for each ``(n, n1)`` all
``(r1, r)`` are evaluated at once with array operations.

Reference
---------
Simon R. Optimal two-stage designs for phase II clinical trials. Controlled Clinical Trials
1989;10:1-10 (Tables 1 and 2).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from bayes_blina.plan.mixture import PlanError, _check_count, _check_rate


@dataclass(frozen=True)
class SimonDesign:
    """A Simon two-stage design.

    Attributes
    ----------
    kind : str
        ``"optimal"`` or ``"minimax"``.
    p0, p1, alpha, beta : float
        The planning inputs.
    r1, n1 : int
        Stop after stage 1 if at most ``r1`` of ``n1`` respond.
    r, n : int
        Declare the treatment promising if more than ``r`` of ``n`` respond.
    en0 : float
        Expected sample size under ``p0``.
    pet0 : float
        Probability of early termination under ``p0``.
    actual_alpha, actual_power : float
        Exact type I error and power.
    """

    kind: str
    p0: float
    p1: float
    alpha: float
    beta: float
    r1: int
    n1: int
    r: int
    n: int
    en0: float
    pet0: float
    actual_alpha: float
    actual_power: float

    def to_dict(self) -> dict:
        """Plain-data form."""
        return asdict(self)

    def __str__(self) -> str:
        return (f"Simon {self.kind} design for p0={self.p0:g}, p1={self.p1:g}, alpha={self.alpha:g}, "
                f"beta={self.beta:g}: stage 1 r1/n1 = {self.r1}/{self.n1}, overall r/n = {self.r}/{self.n}, "
                f"EN(p0) = {self.en0:.1f}, PET(p0) = {self.pet0:.2f}, alpha = {self.actual_alpha:.4f}, "
                f"power = {self.actual_power:.4f}")


def simon_oc(r1: int, n1: int, r: int, n: int, p) -> dict[str, np.ndarray]:
    """Exact characteristics of a given two-stage design at response rate(s) ``p``.

    Returns
    -------
    dict
        ``reject`` (probability of declaring the treatment promising), ``pet`` and ``en``.
    """
    n = _check_count(n, "n", minimum=2)
    n1 = _check_count(n1, "n1", minimum=1)
    r1 = _check_count(r1, "r1")
    r = _check_count(r, "r")
    if not (n1 < n and r1 < n1 and r1 <= r < n):
        raise PlanError(f"need r1 < n1 < n and r1 <= r < n (found r1={r1}, n1={n1}, r={r}, n={n})")
    p = np.asarray(p, dtype=float)
    x1 = np.arange(r1 + 1, n1 + 1)
    pet = stats.binom.cdf(r1, n1, p)
    reject = np.sum(stats.binom.pmf(x1, n1, p[..., None]) * stats.binom.sf(r - x1, n - n1, p[..., None]), axis=-1)
    return {"reject": reject, "pet": pet, "en": n1 + (1 - pet) * (n - n1)}


def _scan(p0: float, p1: float, alpha: float, beta: float, n_min: int, n_max: int):
    """Yield (n, n1, r1, r, en0, pet0, alpha, power) of every admissible design, by n."""
    ks = np.arange(n_max + 1)
    pmf0 = {m: stats.binom.pmf(ks[: m + 1], m, p0) for m in range(1, n_max + 1)}
    pmf1 = {m: stats.binom.pmf(ks[: m + 1], m, p1) for m in range(1, n_max + 1)}
    cdf0 = {m: np.cumsum(v) for m, v in pmf0.items()}
    cdf1 = {m: np.cumsum(v) for m, v in pmf1.items()}
    for n in range(n_min, n_max + 1):
        found = []
        for n1 in range(1, n):
            n2 = n - n1
            rr = np.arange(n)                    # candidate r = 0..n-1
            x1 = np.arange(n1 + 1)
            # accept-region term M[x1, r] = P(X1 = x1) * P(X2 <= r - x1)
            k = rr[None, :] - x1[:, None]
            kk = np.clip(k, 0, n2)
            res = []
            for pmf, cdf in ((pmf0, cdf0), (pmf1, cdf1)):
                c2 = np.where(k < 0, 0.0, cdf[n2][kk])
                m = pmf[n1][:, None] * c2
                # tail[x, r] = sum_{x1 >= x} M[x1, r]
                tail = np.flip(np.cumsum(np.flip(m, axis=0), axis=0), axis=0)
                tail = np.vstack([tail, np.zeros((1, n))])
                # accept(r1, r) = F1(r1) + sum_{x1 > r1} M[x1, r]  for r1 = 0..n1-1
                acc = cdf[n1][:n1, None] + tail[1 : n1 + 1, :]
                res.append(1.0 - acc)        # P(reject), shape (n1, n)
            rej0, rej1 = res
            r1g, rg = np.meshgrid(np.arange(n1), rr, indexing="ij")
            ok = (rg >= r1g) & (rej0 <= alpha) & (rej1 >= 1 - beta)
            if not ok.any():
                continue
            pet0 = cdf0[n1][:n1]
            en0 = n1 + (1 - pet0) * n2
            i, j = np.nonzero(ok)
            for a, b in zip(i, j):
                found.append((n, n1, int(a), int(b), float(en0[a]), float(pet0[a]), float(rej0[a, b]),
                              float(rej1[a, b])))
        if found:
            yield n, found


def simon_design(p0: float, p1: float, alpha: float = 0.05, beta: float = 0.2, kind: str = "optimal",
                 n_max: int = 80) -> SimonDesign:
    """Simon's optimal or minimax two-stage design by exact enumeration.

    Parameters
    ----------
    p0 : float
        Response rate that is not of interest (null).
    p1 : float
        Response rate of interest (alternative), ``p1 > p0``.
    alpha : float
        Maximum type I error ``P(reject | p0)``.
    beta : float
        Maximum type II error ``1 - P(reject | p1)``.
    kind : {"optimal", "minimax"}
        Minimise the expected sample size under ``p0``, or the maximum sample size (ties broken by
        the expected sample size).
    n_max : int
        Largest total sample size examined.

    Returns
    -------
    SimonDesign

    Raises
    ------
    PlanError
        For invalid inputs, or if no admissible design has ``n <= n_max``.

    Examples
    --------
    >>> d = simon_design(0.05, 0.25, 0.05, 0.2)
    >>> (d.r1, d.n1, d.r, d.n, round(d.en0, 1))
    (0, 9, 2, 17, 12.0)
    """
    p0 = _check_rate(p0, "p0")
    p1 = _check_rate(p1, "p1")
    if p1 <= p0:
        raise PlanError(f"p1 must exceed p0 (found p0={p0:g}, p1={p1:g})")
    alpha = _check_rate(alpha, "alpha")
    beta = _check_rate(beta, "beta")
    if kind not in ("optimal", "minimax"):
        raise PlanError(f"kind must be 'optimal' or 'minimax' (found {kind!r})")
    n_max = _check_count(n_max, "n_max", minimum=2)
    if n_max > 300:
        raise PlanError(f"n_max above 300 is not supported (found {n_max})")
    best = None
    for n, found in _scan(p0, p1, alpha, beta, 2, n_max):
        cand = min(found, key=lambda d: (d[4], d[1], d[2]))
        if kind == "minimax":
            best = cand
            break
        if best is None or cand[4] < best[4] - 1e-12:
            best = cand
    if best is None:
        raise PlanError(f"no two-stage design with n <= {n_max} meets alpha={alpha:g} and power={1 - beta:g} "
                        f"for p0={p0:g}, p1={p1:g}; increase n_max")
    n, n1, r1, r, en0, pet0, a_act, pw = best
    return SimonDesign(kind=kind, p0=p0, p1=p1, alpha=alpha, beta=beta, r1=r1, n1=n1, r=r, n=n, en0=en0,
                       pet0=pet0, actual_alpha=a_act, actual_power=pw)
