"""Dose-escalation designs, each a rule from the data so far to the next dose level.

Every design sees the trial as counts per dose level (``n``, ``dlt``) and the current level, and
answers with the next level (or stops); at the end it names the selected MTD level (``None``: no
dose is acceptable). Doses are levels ``0 .. K-1`` in increasing order; results are known before
the next cohort is dosed (no accrual timing: the rolling six, which differs from 3+3 only through
patients enrolled while earlier results are pending, needs an accrual model and is not here yet).

* :class:`ThreePlusThree` - cohorts of 3: escalate after 0/3 or 1/6; stop after 2 or more DLTs at
  a level, the MTD being the level below (no expansion of that level to 6); escalating beyond the
  top level selects it.
* :class:`BOIN` - Liu & Yuan (2015): escalate when the observed rate at the current level is at
  most ``lambda_e``, de-escalate when at least ``lambda_d``, else stay; a level (and those above)
  is eliminated when P(p > target | data) > 0.95 under Beta(1, 1) with at least 3 patients; the MTD
  is the level whose isotonic estimate is closest to the target.
* :class:`CRM` - O'Quigley et al. (1990), power model ``p_k = skeleton_k ** exp(a)``,
  ``a ~ Normal(0, sd)``; the next level is the one whose posterior mean rate is closest to the
  target, escalating by at most one level; the posterior by quadrature on a fine grid.
* :class:`BlrmEwoc` - the dose-toxicity family's BLRM with escalation with overdose control, the
  posterior by the deterministic quadrature of :mod:`bayes_blina.safety.quadrature`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import override

import numpy as np
from scipy import stats

from bayes_blina.errors import BayesBlinaError


def boin_boundaries(target: float, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """BOIN's escalation and de-escalation boundaries ``(lambda_e, lambda_d)`` (Liu & Yuan 2015).

    ``low`` and ``high`` (defaults 0.6 and 1.4 times the target) are the highest rate deemed
    under-dosing and the lowest deemed overdosing.

    Examples
    --------
    The published boundaries for targets 0.2, 0.25 and 0.3:

    >>> [tuple(round(b, 4) for b in boin_boundaries(t)) for t in (0.2, 0.25, 0.3)]
    [(0.1572, 0.2385), (0.1968, 0.2984), (0.2365, 0.3585)]

    (published to three digits: 0.157/0.238, 0.197/0.298, 0.236/0.358.)
    """
    low = 0.6 * target if low is None else low
    high = 1.4 * target if high is None else high
    if not 0 < low < target < high < 1:
        raise BayesBlinaError(f"BOIN needs 0 < low < target < high < 1 (got {low:g}, {target:g}, {high:g})")
    lam_e = math.log((1 - low) / (1 - target)) / math.log(target * (1 - low) / (low * (1 - target)))
    lam_d = math.log((1 - target) / (1 - high)) / math.log(high * (1 - target) / (target * (1 - high)))
    return lam_e, lam_d


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression by pooling adjacent violators.

    Examples
    --------
    >>> isotonic(np.array([0.1, 0.4, 0.2, 0.5]), np.array([3.0, 3.0, 3.0, 3.0])).round(3).tolist()
    [0.1, 0.3, 0.3, 0.5]
    """
    blocks: list[list[float]] = []  # [value, weight, count]
    for v, w in zip(values.astype(float), weights.astype(float)):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return np.concatenate([[b[0]] * int(b[2]) for b in blocks])


@dataclass(frozen=True)
class Trial:
    """The outcome of one simulated trial: patients and DLTs per level, the selected MTD level
    (``None``: no acceptable dose) and whether it stopped before the maximum sample size."""

    n: np.ndarray
    dlt: np.ndarray
    selected: int | None
    stopped_early: bool


@dataclass(frozen=True)
class Design:
    """Base class: cohort size, maximum sample size and the simulation loop."""

    name: str = "design"
    cohort_size: int = 3
    max_n: int = 30

    def next_level(self, n, dlt, current) -> int | None:  # pragma: no cover - abstract
        """The dose level of the next cohort (``None``: stop the trial), from the cohort counts so far."""
        raise NotImplementedError

    def select(self, n, dlt) -> int | None:  # pragma: no cover - abstract
        """The dose level selected at the end (``None``: none is safe enough)."""
        raise NotImplementedError

    def run(self, true_p: np.ndarray, rng: np.random.Generator) -> Trial:
        """Simulate one trial with DLT probabilities ``true_p`` per level."""
        true_p = np.asarray(true_p, dtype=float)
        n = np.zeros(len(true_p), dtype=np.int64)
        dlt = np.zeros(len(true_p), dtype=np.int64)
        level: int | None = 0
        while level is not None and n.sum() + self.cohort_size <= self.max_n:
            n[level] += self.cohort_size
            dlt[level] += rng.binomial(self.cohort_size, true_p[level])
            level = self.next_level(n, dlt, level)
        stopped = level is None
        return Trial(n=n, dlt=dlt, selected=self.select(n, dlt), stopped_early=stopped and n.sum() < self.max_n)


@dataclass(frozen=True)
class ThreePlusThree(Design):
    """The 3+3 rule (see module docstring); ``max_n`` is only a cap."""

    name: str = "3+3"
    max_n: int = 1000

    @override
    def next_level(self, n, dlt, current):
        k = len(n)
        if dlt[current] >= 2:
            return None  # stop: the MTD is the level below
        if n[current] == 3 and dlt[current] == 1:
            return current
        if current + 1 >= k:  # escalating beyond the top: done, the top is the MTD
            return None
        return current + 1

    @override
    def select(self, n, dlt):
        tried = np.flatnonzero(n > 0)
        top = int(tried.max())
        if dlt[top] >= 2:
            return top - 1 if top > 0 else None
        return top


@dataclass(frozen=True)
class BOIN(Design):
    """Bayesian optimal interval design (see module docstring)."""

    name: str = "BOIN"
    target: float = 0.25
    eliminate: float = 0.95

    def _eliminated(self, n, dlt) -> int:
        """The lowest eliminated level (``len(n)`` when none)."""
        for j in range(len(n)):
            if n[j] >= 3 and stats.beta(1 + dlt[j], 1 + n[j] - dlt[j]).sf(self.target) > self.eliminate:
                return j
        return len(n)

    @override
    def next_level(self, n, dlt, current):
        lam_e, lam_d = boin_boundaries(self.target)
        top = self._eliminated(n, dlt)
        if top == 0:
            return None  # the lowest level is too toxic: stop, no MTD
        rate = dlt[current] / n[current]
        if rate <= lam_e:
            nxt = current + 1
        elif rate >= lam_d:
            nxt = current - 1
        else:
            nxt = current
        return int(min(max(nxt, 0), top - 1))

    @override
    def select(self, n, dlt):
        top = self._eliminated(n, dlt)
        tried = np.flatnonzero(n[:top] > 0)
        if top == 0 or len(tried) == 0:
            return None
        est = isotonic((dlt[tried] + 0.05) / (n[tried] + 0.1), n[tried].astype(float))
        est = est + 1e-10 * np.arange(len(est))  # ties: the higher estimate is the higher level
        dist = np.abs(est - self.target)
        best = np.flatnonzero(dist == dist.min())
        pick = best[0] if est[best[0]] > self.target else best[-1]
        return int(tried[pick])


@dataclass(frozen=True)
class CRM(Design):
    """Continual reassessment method with the one-parameter power model (see module docstring)."""

    name: str = "CRM"
    target: float = 0.25
    skeleton: tuple[float, ...] = (0.05, 0.12, 0.25, 0.40, 0.55)
    prior_sd: float = math.sqrt(1.34)
    grid: np.ndarray = field(default_factory=lambda: np.linspace(-6.0, 6.0, 1201), repr=False, compare=False)

    def posterior_rates(self, n, dlt) -> np.ndarray:
        """Posterior mean DLT rate per level."""
        sk = np.asarray(self.skeleton, dtype=float)
        if len(sk) != len(n):
            raise BayesBlinaError(f"the CRM skeleton has {len(sk)} levels; the trial has {len(n)}")
        a = self.grid
        p = np.clip(sk[None, :] ** np.exp(a)[:, None], 1e-300, 1.0 - 1e-16)
        logw = stats.norm(0.0, self.prior_sd).logpdf(a) + (dlt * np.log(p) + (n - dlt) * np.log1p(-p)).sum(axis=1)
        w = np.exp(logw - logw.max())
        return (w / w.sum()) @ p

    @override
    def next_level(self, n, dlt, current):
        rates = self.posterior_rates(n, dlt)
        best = int(np.argmin(np.abs(rates - self.target)))
        return min(best, current + 1)

    @override
    def select(self, n, dlt):
        return int(np.argmin(np.abs(self.posterior_rates(n, dlt) - self.target)))


@dataclass(frozen=True)
class BlrmEwoc(Design):
    """BLRM with escalation with overdose control, on the dose-toxicity family's model."""

    name: str = "BLRM-EWOC"
    doses: tuple[float, ...] = (5.0, 15.0, 30.0)
    reference_dose: float = 15.0
    target_low: float = 0.16
    target_high: float = 0.33
    max_overdose: float = 0.25
    grid_size: int = 101

    def _table(self, n, dlt):
        from bayes_blina.families.base import Prepared
        from bayes_blina.families.dose_toxicity import DoseToxicityModel
        from bayes_blina.safety import quadrature_table
        from bayes_blina.safety.escalation import EwocRule

        family = DoseToxicityModel({"reference_dose": self.reference_dose})
        used = n > 0
        prepared = Prepared(arrays=family.cohort_arrays(np.asarray(self.doses)[used], n[used], dlt[used]), coords={})
        rule = EwocRule(self.target_low, self.target_high, self.max_overdose, max_step=None)
        return quadrature_table(family, prepared, self.doses, rule, grid_size=self.grid_size, intervals=False)

    def _best(self, n, dlt, highest: int) -> int | None:
        t = self._table(n, dlt)
        ok = t["ewoc_ok"].to_numpy(dtype=bool) & (np.arange(len(t)) <= highest)
        if not ok.any():
            return None
        target = np.where(ok, t["p_target"].to_numpy(), -1.0)
        return int(np.argmax(target))

    @override
    def next_level(self, n, dlt, current):
        if len(self.doses) != len(n):
            raise BayesBlinaError(f"BLRM-EWOC has {len(self.doses)} doses; the trial has {len(n)} levels")
        return self._best(n, dlt, highest=current + 1)  # no skipping of untried levels

    @override
    def select(self, n, dlt):
        return self._best(n, dlt, highest=int(np.flatnonzero(n > 0).max()))
