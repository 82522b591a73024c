"""Beta mixtures: the conjugate prior family of a binomial response rate.

A :class:`BetaMixture` ``sum_k w_k Beta(a_k, b_k)`` is what a meta-analytic-predictive (MAP) prior
is approximated by, what a robustified prior is, and what every posterior of such a prior is after
binomial data: with ``r`` responders in ``n`` patients each component becomes
``Beta(a_k + r, b_k + n - r)`` and its weight is multiplied by the component's beta-binomial
marginal likelihood of the data (and renormalised). Everything here is closed form or
one-dimensional numerics; there is no MCMC in this module.

Also here: :class:`BetaBinomialMixture` (the prior predictive distribution of the number of
responders in ``n`` new patients), the EM fit of a beta mixture to samples
(:func:`fit_mixture_em`) and the automatic choice of the number of components
(:func:`auto_mixture`), as RBesT's ``mixfit``/``automixfit`` do.

Examples
--------
>>> prior = BetaMixture([0.5, 0.5], [4, 1], [10, 1])
>>> post = prior.posterior(r=18, n=20)
>>> [round(float(w), 5) for w in post.weights]
[0.00267, 0.99733]
>>> post.a.tolist(), post.b.tolist()
([22.0, 19.0], [12.0, 3.0])
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import special, stats

from bayes_blina.errors import BayesBlinaError

#: JSON schema name and version written by :meth:`BetaMixture.to_json`.
SCHEMA = "bayes_blina.beta_mixture"
SCHEMA_VERSION = 1

_WEIGHT_TOL = 1e-6


class PlanError(BayesBlinaError, ValueError):
    """Invalid input to a planning function (a mixture, a design, a decision rule, a file)."""


def _as_1d(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(x, dtype=float))
    except (TypeError, ValueError):
        raise PlanError(f"{name} must be numbers (found {x!r})") from None
    if arr.ndim != 1:
        raise PlanError(f"{name} must be a flat list of numbers (found shape {arr.shape})")
    return arr


def _check_rate(x: float, name: str, *, open_: bool = True) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise PlanError(f"{name} must be a number (found {x!r})") from None
    ok = (0.0 < v < 1.0) if open_ else (0.0 <= v <= 1.0)
    if not ok:
        raise PlanError(f"{name} must lie in {'(0, 1)' if open_ else '[0, 1]'} (found {x!r})")
    return v


def _check_count(x: Any, name: str, *, minimum: int = 0) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) and not (
            isinstance(x, (float, np.floating)) and float(x).is_integer()):
        raise PlanError(f"{name} must be a whole number (found {x!r})")
    v = int(x)
    if v < minimum:
        raise PlanError(f"{name} must be at least {minimum} (found {v})")
    return v


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return special.logsumexp(x, axis=axis)


def _clip01(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0)


class BetaMixture:
    """An immutable mixture of beta distributions, ``sum_k w_k Beta(a_k, b_k)``.

    Parameters
    ----------
    weights : sequence of float
        Non-negative component weights summing to one (a deviation up to 1e-6 is renormalised).
    a, b : sequence of float
        Positive shape parameters, one per component.

    Raises
    ------
    PlanError
        If the lengths differ, there is no component, a value is not finite, a weight is negative,
        the weights do not sum to one, or a shape parameter is not positive.

    Examples
    --------
    >>> m = BetaMixture.beta(2, 8)
    >>> round(m.mean, 3), round(float(m.cdf(0.2)), 4)
    (0.2, 0.5638)
    """

    __slots__ = ("_w", "_a", "_b")

    def __init__(self, weights: Sequence[float], a: Sequence[float], b: Sequence[float]):
        w = _as_1d(weights, "weights")
        aa = _as_1d(a, "a")
        bb = _as_1d(b, "b")
        if not (w.size == aa.size == bb.size):
            raise PlanError(f"weights, a and b must have the same length (found {w.size}, {aa.size}, {bb.size})")
        if w.size == 0:
            raise PlanError("a beta mixture needs at least one component")
        for name, arr in (("weights", w), ("a", aa), ("b", bb)):
            if not np.all(np.isfinite(arr)):
                raise PlanError(f"{name} must be finite numbers (found {arr.tolist()})")
        if np.any(w < 0):
            raise PlanError(f"weights must not be negative (found {w.tolist()})")
        if abs(w.sum() - 1.0) > _WEIGHT_TOL:
            raise PlanError(f"weights must sum to 1 (found sum {w.sum():.6g}: {w.tolist()})")
        if np.any(aa <= 0) or np.any(bb <= 0):
            raise PlanError(f"beta parameters a and b must be positive (found a={aa.tolist()}, b={bb.tolist()})")
        if abs(w.sum() - 1.0) > 1e-12:  # renormalise rounding, but keep exact values exact (JSON round trips)
            w = w / w.sum()
        for arr in (w, aa, bb):
            arr.flags.writeable = False
        object.__setattr__(self, "_w", w)
        object.__setattr__(self, "_a", aa)
        object.__setattr__(self, "_b", bb)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("BetaMixture is immutable")

    # ------------------------------------------------------------------ construction
    @classmethod
    def beta(cls, a: float, b: float) -> "BetaMixture":
        """A single ``Beta(a, b)`` component."""
        return cls([1.0], [a], [b])

    @classmethod
    def from_components(cls, components: Iterable[Sequence[float]]) -> "BetaMixture":
        """From ``(weight, a, b)`` triples, e.g. ``[(0.5, 4, 10), (0.5, 1, 1)]``."""
        comps = [tuple(c) for c in components]
        if any(len(c) != 3 for c in comps):
            raise PlanError("each component must be a (weight, a, b) triple")
        if not comps:
            raise PlanError("a beta mixture needs at least one component")
        w, a, b = zip(*comps)
        return cls(w, a, b)

    @classmethod
    def from_mean_n(cls, mean: float, n: float) -> "BetaMixture":
        """A single Beta with the given mean and prior sample size ``n = a + b``."""
        m = _check_rate(mean, "mean")
        if not (np.isfinite(n) and n > 0):
            raise PlanError(f"n must be a positive number (found {n!r})")
        return cls.beta(m * n, (1 - m) * n)

    @classmethod
    def from_moments(cls, mean: float, sd: float) -> "BetaMixture":
        """The single Beta with the given mean and standard deviation (moment matching)."""
        m = _check_rate(mean, "mean")
        if not (np.isfinite(sd) and 0 < sd**2 < m * (1 - m)):
            raise PlanError(f"sd must be positive and below sqrt(mean*(1-mean)) = {math.sqrt(m * (1 - m)):.4g} "
                            f"(found {sd!r})")
        n = m * (1 - m) / sd**2 - 1
        return cls.beta(m * n, (1 - m) * n)

    # ------------------------------------------------------------------ components
    @property
    def weights(self) -> np.ndarray:
        """Component weights (read-only array)."""
        return self._w

    @property
    def a(self) -> np.ndarray:
        """First shape parameters (read-only array)."""
        return self._a

    @property
    def b(self) -> np.ndarray:
        """Second shape parameters (read-only array)."""
        return self._b

    @property
    def n_components(self) -> int:
        """Number of components."""
        return int(self._w.size)

    def __len__(self) -> int:
        return self.n_components

    def components(self) -> list[tuple[float, float, float]]:
        """``(weight, a, b)`` of each component."""
        return [(float(w), float(a), float(b)) for w, a, b in zip(self._w, self._a, self._b)]

    # ------------------------------------------------------------------ densities
    def logpdf(self, x: Any) -> np.ndarray:
        """Log density at ``x`` (``-inf`` outside [0, 1])."""
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            lc = np.log(self._w) + stats.beta.logpdf(x[..., None], self._a, self._b)
            out = _logsumexp(lc, axis=-1)
        return np.where((x >= 0) & (x <= 1), out, -np.inf)

    def pdf(self, x: Any) -> np.ndarray:
        """Density at ``x``."""
        return np.exp(self.logpdf(x))

    def cdf(self, x: Any) -> np.ndarray:
        """``P(theta <= x)``."""
        x = _clip01(np.asarray(x, dtype=float))
        return np.sum(self._w * special.betainc(self._a, self._b, x[..., None]), axis=-1)

    def sf(self, x: Any) -> np.ndarray:
        """``P(theta > x)``, computed without cancellation."""
        x = _clip01(np.asarray(x, dtype=float))
        return np.sum(self._w * special.betaincc(self._a, self._b, x[..., None]), axis=-1)

    def ppf(self, q: Any) -> np.ndarray:
        """Quantile function by numeric inversion of :meth:`cdf` (vectorised bisection on the logit
        scale, to a relative precision of about 1e-13).

        Parameters
        ----------
        q : float or array-like
            Probabilities in [0, 1].
        """
        q = np.asarray(q, dtype=float)
        if np.any(~np.isfinite(q)) or np.any((q < 0) | (q > 1)):
            raise PlanError(f"probabilities must lie in [0, 1] (found {np.asarray(q).tolist()})")
        # bracket between the smallest and largest component quantiles (betaincinv is only a
        # starting point: it can disagree with betainc by ~1e-8 in the CDF, so the bracket is
        # widened until it holds the root of *our* cdf); bisect on the logit scale, which keeps
        # relative precision for quantiles very close to 0 or 1
        comp = special.betaincinv(self._a, self._b, q[..., None])
        tiny = np.finfo(float).tiny
        lo = special.logit(np.clip(np.min(comp, axis=-1), tiny, 1 - 1e-16))
        hi = special.logit(np.clip(np.max(comp, axis=-1), tiny, 1 - 1e-16))
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        inner = (q > 0) & (q < 1)
        for k in range(60):
            bad_lo = inner & (self.cdf(special.expit(lo)) > q)
            bad_hi = inner & (self.cdf(special.expit(hi)) < q)
            if not (bad_lo.any() or bad_hi.any()):
                break
            step = 1e-9 * 4.0 ** k * (1.0 + np.abs(lo))
            lo = np.where(bad_lo, lo - step, lo)
            hi = np.where(bad_hi, hi + step, hi)
        for _ in range(400):
            if np.all(hi - lo <= 1e-13 * np.maximum(1.0, np.abs(lo))):
                break
            mid = 0.5 * (lo + hi)
            below = self.cdf(special.expit(mid)) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out = special.expit(0.5 * (lo + hi))
        out = np.where(q <= 0, 0.0, np.where(q >= 1, 1.0, out))
        return out if np.ndim(out) else float(out)

    def quantiles(self, probs: Sequence[float] = (0.025, 0.5, 0.975)) -> np.ndarray:
        """Quantiles at ``probs`` (default 2.5%, 50%, 97.5%)."""
        return self.ppf(np.asarray(probs, dtype=float))

    # ------------------------------------------------------------------ moments
    @property
    def mean(self) -> float:
        """Mean of the mixture."""
        return float(np.sum(self._w * self._a / (self._a + self._b)))

    @property
    def var(self) -> float:
        """Variance of the mixture."""
        n = self._a + self._b
        m = self._a / n
        v = m * (1 - m) / (n + 1)
        return float(np.sum(self._w * (v + m**2)) - self.mean**2)

    @property
    def sd(self) -> float:
        """Standard deviation of the mixture."""
        return math.sqrt(max(self.var, 0.0))

    def mode(self) -> float:
        """The (highest) mode, found on a fine grid and refined by bounded optimisation."""
        from scipy.optimize import minimize_scalar

        a, b = self._a, self._b
        inner = (a > 1) & (b > 1)
        comp_modes = (a[inner] - 1) / (a[inner] + b[inner] - 2)  # so that narrow peaks are not missed
        grid = np.unique(np.concatenate([np.linspace(1e-6, 1 - 1e-6, 4001), comp_modes]))
        lp = self.logpdf(grid)
        i = int(np.nanargmax(lp))
        if i in (0, grid.size - 1):
            return float(0.0 if i == 0 else 1.0)
        res = minimize_scalar(lambda x: -float(self.logpdf(x)), bounds=(grid[i - 1], grid[i + 1]),
                              method="bounded", options={"xatol": 1e-12})
        return float(res.x) if -res.fun >= lp[i] else float(grid[i])

    def modes(self) -> np.ndarray:
        """All local maxima of the density on a fine grid (approximate locations)."""
        grid = np.linspace(1e-6, 1 - 1e-6, 4001)
        lp = self.logpdf(grid)
        inner = (lp[1:-1] > lp[:-2]) & (lp[1:-1] >= lp[2:])
        out = list(grid[1:-1][inner])
        if lp[0] > lp[1]:
            out.insert(0, 0.0)
        if lp[-1] > lp[-2]:
            out.append(1.0)
        return np.asarray(out)

    def summary(self, probs: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, float]:
        """Mean, sd and quantiles, as a dict (keys ``mean``, ``sd``, ``q2.5``, ``q50``, ``q97.5``)."""
        out = {"mean": self.mean, "sd": self.sd}
        for p, q in zip(probs, self.quantiles(probs)):
            out[f"q{100 * p:g}"] = float(q)
        return out

    def sample(self, size: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Independent draws (component by weight, then Beta)."""
        rng = np.random.default_rng(seed)
        size = _check_count(size, "size")
        k = rng.choice(self.n_components, size=size, p=self._w)
        return rng.beta(self._a[k], self._b[k])

    # ------------------------------------------------------------------ updating
    def posterior(self, r: int, n: int) -> "BetaMixture":
        """Conjugate update with ``r`` responders out of ``n`` patients.

        Each component becomes ``Beta(a_k + r, b_k + n - r)``; weights become proportional to
        ``w_k * BetaBinomial(r | n, a_k, b_k)`` (the component's marginal likelihood).
        """
        n = _check_count(n, "n")
        r = _check_count(r, "r")
        if r > n:
            raise PlanError(f"responders r={r} cannot exceed patients n={n}")
        lw = np.log(self._w) + stats.betabinom.logpmf(r, n, self._a, self._b)
        w = np.exp(lw - _logsumexp(lw))
        return BetaMixture(w, self._a + r, self._b + n - r)

    def predictive(self, n: int) -> "BetaBinomialMixture":
        """Prior predictive distribution of the number of responders in ``n`` new patients."""
        return BetaBinomialMixture(self._w, self._a, self._b, _check_count(n, "n", minimum=1))

    def robustify(self, weight: float, mean: float = 0.5, n: float = 1.0, *, exact_n: bool = False) -> "BetaMixture":
        """Add a vague component with weight ``weight`` (the others are scaled by ``1 - weight``).

        Parameters
        ----------
        weight : float
            Weight of the vague component, in (0, 1).
        mean : float
            Mean of the vague component (strongly recommended: the rate under the null hypothesis).
        n : float
            Its "number of observations". With ``exact_n=False`` (RBesT's convention, the default)
            the component is ``Beta(mean*(n+1), (1-mean)*(n+1))``, so the defaults give the uniform
            Beta(1, 1); with ``exact_n=True`` it is ``Beta(mean*n, (1-mean)*n)``, the unit-information
            prior Beta(1/2, 1/2) for ``n=1, mean=1/2``.
        """
        w = float(weight)
        if not (0.0 < w < 1.0):
            raise PlanError(f"robust weight must lie in (0, 1) (found {weight!r})")
        m = _check_rate(mean, "robust mean")
        if not (np.isfinite(n) and n > 0):
            raise PlanError(f"robust n must be a positive number (found {n!r})")
        size = float(n) if exact_n else float(n) + 1.0
        return BetaMixture(np.append(self._w * (1 - w), w), np.append(self._a, m * size),
                           np.append(self._b, (1 - m) * size))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self, **meta: Any) -> dict[str, Any]:
        """Plain-data form with the schema name and version (``meta`` is stored as given)."""
        d: dict[str, Any] = {
            "schema": SCHEMA, "version": SCHEMA_VERSION,
            "components": [{"weight": w, "a": a, "b": b} for w, a, b in self.components()],
        }
        if meta:
            d["meta"] = meta
        return d

    def to_json(self, **meta: Any) -> str:
        """JSON text (plain JSON, never pickle); see :meth:`from_json`."""
        return json.dumps(self.to_dict(**meta), indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "mixture") -> "BetaMixture":
        """Read the form written by :meth:`to_dict`, validating every field."""
        if not isinstance(d, dict):
            raise PlanError(f"{source}: expected a JSON object (found {type(d).__name__})")
        if d.get("schema") != SCHEMA:
            raise PlanError(f"{source}: not a beta mixture file: 'schema' must be {SCHEMA!r} (found {d.get('schema')!r})")
        if d.get("version") != SCHEMA_VERSION:
            raise PlanError(f"{source}: unsupported beta mixture version {d.get('version')!r} "
                            f"(this version of bayes_blina reads version {SCHEMA_VERSION})")
        unknown = set(d) - {"schema", "version", "components", "meta"}
        if unknown:
            raise PlanError(f"{source}: unknown key(s) {sorted(unknown)}")
        comps = d.get("components")
        if not isinstance(comps, list) or not comps:
            raise PlanError(f"{source}: 'components' must be a non-empty list")
        w, a, b = [], [], []
        for i, c in enumerate(comps, start=1):
            if not isinstance(c, dict) or set(c) != {"weight", "a", "b"}:
                raise PlanError(f"{source}: component {i} must have exactly the keys weight, a, b (found {c!r})")
            for key, dest in (("weight", w), ("a", a), ("b", b)):
                v = c[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise PlanError(f"{source}: component {i} {key} must be a number (found {v!r})")
                dest.append(float(v))
        try:
            return cls(w, a, b)
        except PlanError as e:
            raise PlanError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "mixture") -> "BetaMixture":
        """Parse JSON text written by :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise PlanError(f"{source}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=source)

    def save(self, path: str, **meta: Any) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        from bayes_blina._atomic import write_text_atomic

        write_text_atomic(path, self.to_json(**meta))

    @classmethod
    def load(cls, path: str) -> "BetaMixture":
        """Read a file written by :meth:`save`."""
        from pathlib import Path

        p = Path(path)
        if not p.is_file():
            raise PlanError(f"prior file {str(p)!r} does not exist")
        return cls.from_json(p.read_text(encoding="utf-8"), source=str(p))

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BetaMixture) and self.n_components == other.n_components
                and bool(np.all(self._w == other._w) and np.all(self._a == other._a) and np.all(self._b == other._b)))

    def __hash__(self) -> int:
        return hash((tuple(self._w), tuple(self._a), tuple(self._b)))

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:.4g}*Beta({a:.4g}, {b:.4g})" for w, a, b in self.components())
        return f"BetaMixture({parts})"


class BetaBinomialMixture:
    """Distribution of the number of responders ``Y`` in ``n`` patients under a beta-mixture rate:
    ``sum_k w_k BetaBinomial(n, a_k, b_k)`` (the prior predictive of :meth:`BetaMixture.predictive`).

    Parameters
    ----------
    weights, a, b : sequence of float
        The rate's mixture (validated as in :class:`BetaMixture`).
    n : int
        Number of patients.
    """

    __slots__ = ("rate", "n")

    def __init__(self, weights: Sequence[float], a: Sequence[float], b: Sequence[float], n: int):
        object.__setattr__(self, "rate", BetaMixture(weights, a, b))
        object.__setattr__(self, "n", _check_count(n, "n", minimum=1))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("BetaBinomialMixture is immutable")

    @property
    def support(self) -> np.ndarray:
        """``0, 1, ..., n``."""
        return np.arange(self.n + 1)

    def logpmf(self, y: Any) -> np.ndarray:
        """Log probability of ``y`` responders."""
        y = np.asarray(y)
        with np.errstate(divide="ignore"):
            lc = np.log(self.rate.weights) + stats.betabinom.logpmf(y[..., None], self.n, self.rate.a, self.rate.b)
        return _logsumexp(lc, axis=-1)

    def pmf(self, y: Any) -> np.ndarray:
        """Probability of ``y`` responders."""
        return np.exp(self.logpmf(y))

    def cdf(self, y: Any) -> np.ndarray:
        """``P(Y <= y)``."""
        y = np.floor(np.asarray(y, dtype=float))
        cum = np.concatenate([[0.0], np.cumsum(self.pmf(self.support))])
        idx = np.clip(y + 1, 0, self.n + 1).astype(int)
        return np.minimum(cum[idx], 1.0)

    def tail_prob(self, y: Any, *, upper: bool = True) -> np.ndarray:
        """``P(Y >= y)`` (``upper=True``) or ``P(Y <= y)`` (``upper=False``)."""
        y = np.asarray(y, dtype=float)
        if not upper:
            return self.cdf(y)
        p = self.pmf(self.support)
        rev = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])
        idx = np.clip(np.ceil(y), 0, self.n + 1).astype(int)
        return np.minimum(rev[idx], 1.0)

    @property
    def mean(self) -> float:
        """Expected number of responders."""
        return self.n * self.rate.mean

    @property
    def var(self) -> float:
        """Variance of the number of responders."""
        p = self.pmf(self.support)
        y = self.support
        return float(np.sum(p * y**2) - np.sum(p * y) ** 2)

    @property
    def sd(self) -> float:
        """Standard deviation of the number of responders."""
        return math.sqrt(max(self.var, 0.0))

    def quantiles(self, probs: Sequence[float] = (0.025, 0.5, 0.975)) -> np.ndarray:
        """Smallest ``y`` with ``P(Y <= y) >= p`` for each ``p``."""
        probs = np.asarray(probs, dtype=float)
        if np.any((probs < 0) | (probs > 1)):
            raise PlanError(f"probabilities must lie in [0, 1] (found {probs.tolist()})")
        cum = np.cumsum(self.pmf(self.support))
        return np.minimum(np.searchsorted(cum, probs - 1e-12, side="left"), self.n)

    def sample(self, size: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
        """Independent draws of the number of responders."""
        rng = np.random.default_rng(seed)
        theta = self.rate.sample(size, rng)
        return rng.binomial(self.n, theta)

    def __repr__(self) -> str:
        return f"BetaBinomialMixture(n={self.n}, rate={self.rate!r})"


# ---------------------------------------------------------------------- EM fitting
@dataclass(frozen=True)
class MixtureFit:
    """A beta mixture fitted to samples by EM.

    Attributes
    ----------
    mixture : BetaMixture
        The fitted mixture (components in decreasing weight).
    loglik : float
        Log likelihood of the samples under the mixture.
    n_params : int
        Free parameters, ``3k - 1``.
    n_obs : int
        Number of samples.
    n_iter : int
        EM iterations run.
    converged : bool
        Whether the relative change of the log likelihood fell below the tolerance.
    """

    mixture: BetaMixture
    loglik: float
    n_params: int
    n_obs: int
    n_iter: int
    converged: bool

    def aic(self, penalty: float = 6.0) -> float:
        """``-2 loglik + penalty * n_params`` (RBesT's ``automixfit`` uses penalty 6)."""
        return -2.0 * self.loglik + penalty * self.n_params

    def bic(self) -> float:
        """``-2 loglik + log(n_obs) * n_params``."""
        return -2.0 * self.loglik + math.log(self.n_obs) * self.n_params


def _beta_nll(a, b, c1, c2):
    return special.betaln(a, b) - (a - 1) * c1 - (b - 1) * c2


def _beta_mle(c1: np.ndarray, c2: np.ndarray, a: np.ndarray, b: np.ndarray, lower: float,
              max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Weighted beta MLE for several components at once: minimise
    ``log B(a, b) - (a-1) c1 - (b-1) c2`` (c1, c2 = weighted means of log x, log(1-x)) over
    ``a, b >= lower`` by projected Newton steps with an active set and backtracking (the objective
    is convex)."""
    a = np.maximum(a.astype(float).copy(), lower)
    b = np.maximum(b.astype(float).copy(), lower)
    for _ in range(max_iter):
        s = a + b
        ds, ts = special.digamma(s), special.polygamma(1, s)
        ga = special.digamma(a) - ds - c1
        gb = special.digamma(b) - ds - c2
        haa = special.polygamma(1, a) - ts
        hbb = special.polygamma(1, b) - ts
        hab = -ts
        det = haa * hbb - hab**2
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        fix_a = (a <= lower) & (ga > 0)
        fix_b = (b <= lower) & (gb > 0)
        only_b = fix_a & ~fix_b
        only_a = fix_b & ~fix_a
        both = fix_a & fix_b
        da = np.where(only_b | both, 0.0, np.where(only_a, -ga / haa, da))
        db = np.where(only_a | both, 0.0, np.where(only_b, -gb / hbb, db))
        decrement = -(ga * da + gb * db)  # Newton decrement squared (>= 0 on the active face)
        if np.all(decrement <= 1e-18):
            break
        f0 = _beta_nll(a, b, c1, c2)
        t = np.ones_like(a)
        new_a, new_b = a.copy(), b.copy()
        pending = decrement > 1e-18
        for _ in range(30):
            ca = np.maximum(a + t * da, lower)
            cb = np.maximum(b + t * db, lower)
            ok = pending & (_beta_nll(ca, cb, c1, c2) <= f0 + 1e-13 * np.maximum(1.0, np.abs(f0)))
            new_a = np.where(ok, ca, new_a)
            new_b = np.where(ok, cb, new_b)
            pending &= ~ok
            if not pending.any():
                break
            t = t / 2
        a, b = new_a, new_b
    return a, b


def _moment_ab(m: np.ndarray, v: np.ndarray, lower: float) -> tuple[np.ndarray, np.ndarray]:
    m = np.clip(m, 1e-6, 1 - 1e-6)
    v = np.clip(v, 1e-12, None)
    n = np.maximum(m * (1 - m) / v - 1, 0.5)
    return np.maximum(m * n, lower), np.maximum((1 - m) * n, lower)


def _em_loglik_terms(lx, l1x, w, a, b, out=None):
    """Component log densities (K, N) and the per-sample log mixture density (N,)."""
    lc = np.multiply((a - 1)[:, None], lx, out=out)
    lc += (b - 1)[:, None] * l1x
    lc += (np.log(w) - special.betaln(a, b))[:, None]
    mx = lc.max(axis=0)
    lse = np.log(np.exp(lc - mx).sum(axis=0))
    lse += mx
    return lc, lse


def _em_run(lx, l1x, w, a, b, lower, max_iter, tol):
    n_obs = lx.size
    ll_old = -np.inf
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        lc, lse = _em_loglik_terms(lx, l1x, w, a, b)
        ll = float(lse.sum())
        lc -= lse
        resp = np.exp(lc, out=lc)
        nk = resp.sum(axis=1)
        keep = nk > 1e-8 * n_obs
        if not keep.all():  # a component with no support: drop it
            resp, nk, a, b = resp[keep], nk[keep], a[keep], b[keep]
        w = nk / nk.sum()
        c1 = resp @ lx / nk
        c2 = resp @ l1x / nk
        a, b = _beta_mle(c1, c2, a, b, lower)
        if abs(ll - ll_old) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        ll_old = ll
    ll = float(_em_loglik_terms(lx, l1x, w, a, b)[1].sum())
    return w, a, b, ll, it, converged


def fit_mixture_em(samples: Sequence[float], k: int, *, constrain_gt1: bool = True, max_iter: int = 2000,
                   tol: float = 1e-8) -> MixtureFit:
    """Fit a ``k``-component beta mixture to samples in (0, 1) by EM (weighted MLE M-step).

    The M-step solves each component's weighted beta maximum likelihood equations exactly
    (convex, by projected Newton). Starts are deterministic: the sorted samples split into ``k``
    equal-probability groups, and a second start with all components centred on the sample mean
    and spreads from tight to wide (suits the heavy-tailed unimodal shapes of MAP priors); the
    start with the higher likelihood wins.

    Parameters
    ----------
    samples : sequence of float
        Draws in (0, 1); exact 0 and 1 are moved inside by machine epsilon.
    k : int
        Number of components (>= 1).
    constrain_gt1 : bool
        Keep every ``a, b >= 1`` (as RBesT does by default): the density then stays finite and the
        ELIR effective sample size is defined.
    max_iter, tol : int, float
        EM stops when the relative change of the log likelihood is below ``tol``.

    Returns
    -------
    MixtureFit
    """
    x = _as_1d(samples, "samples")
    k = _check_count(k, "k", minimum=1)
    if x.size < 10 * k:
        raise PlanError(f"need at least {10 * k} samples to fit {k} components (found {x.size})")
    if np.any(~np.isfinite(x)) or np.any((x < 0) | (x > 1)):
        raise PlanError("samples must be finite numbers in [0, 1]")
    eps = np.finfo(float).eps
    x = np.clip(x, eps, 1 - eps)
    lx, l1x = np.log(x), np.log1p(-x)
    lower = 1.0 if constrain_gt1 else 1e-6
    starts = []
    xs = np.sort(x)
    groups = np.array_split(xs, k)
    m = np.array([g.mean() for g in groups])
    v = np.array([g.var() if g.size > 1 else xs.var() for g in groups])
    starts.append((np.full(k, 1.0 / k), *_moment_ab(m, np.maximum(v, xs.var() / (4 * k * k)), lower)))
    if k > 1:
        scales = np.geomspace(0.25, 4.0, k)
        a0, b0 = _moment_ab(np.full(k, x.mean()), x.var() * scales, lower)
        starts.append((np.full(k, 1.0 / k), a0, b0))
    best = None
    for w0, a0, b0 in starts:
        w, a, b, ll, it, conv = _em_run(lx, l1x, w0, a0, b0, lower, max_iter, tol)
        if best is None or ll > best[3]:
            best = (w, a, b, ll, it, conv)
    w, a, b, ll, it, conv = best
    order = np.argsort(-w)
    mix = BetaMixture(w[order], a[order], b[order])
    kk = mix.n_components
    return MixtureFit(mixture=mix, loglik=ll, n_params=3 * kk - 1, n_obs=int(x.size), n_iter=it, converged=conv)


def approximation_error(mixture: BetaMixture, samples: Sequence[float],
                        probs: Sequence[float] = (0.025, 0.5, 0.975)) -> dict[str, float]:
    """How well a mixture represents samples.

    Returns
    -------
    dict
        ``ks`` (max |mixture CDF - empirical CDF| over the samples), ``d_mean``, ``d_sd`` and
        ``d_q<p>`` (mixture minus sample values).
    """
    x = np.sort(_as_1d(samples, "samples"))
    n = x.size
    f = mixture.cdf(x)
    ks = float(np.max(np.maximum(np.abs(f - np.arange(1, n + 1) / n), np.abs(f - np.arange(n) / n))))
    out = {"ks": ks, "d_mean": mixture.mean - float(x.mean()), "d_sd": mixture.sd - float(x.std(ddof=1))}
    for p, mq, sq in zip(probs, mixture.quantiles(probs), np.quantile(x, probs)):
        out[f"d_q{100 * p:g}"] = float(mq - sq)
    return out


@dataclass(frozen=True)
class AutoMixture:
    """Result of :func:`auto_mixture`.

    Attributes
    ----------
    mixture : BetaMixture
        The chosen mixture.
    k : int
        Its number of components.
    criterion : str
        ``"AIC"`` or ``"BIC"``.
    scores : dict
        Criterion value of each ``k`` tried (lower is better).
    fits : dict
        The :class:`MixtureFit` of each ``k`` tried.
    error : dict
        :func:`approximation_error` of the chosen mixture.
    """

    mixture: BetaMixture
    k: int
    criterion: str
    scores: dict[int, float]
    fits: dict[int, MixtureFit] = field(repr=False)
    error: dict[str, float]


def auto_mixture(samples: Sequence[float], k_max: int = 4, criterion: str = "AIC", *, aic_penalty: float = 6.0,
                 constrain_gt1: bool = True) -> AutoMixture:
    """Fit beta mixtures with 1..``k_max`` components and keep the best by AIC or BIC.

    Parameters
    ----------
    samples : sequence of float
        Draws in (0, 1), e.g. MAP prior draws.
    k_max : int
        Largest number of components tried (RBesT's default 4).
    criterion : {"AIC", "BIC"}
        ``AIC = -2 loglik + aic_penalty * (3k - 1)``; ``BIC`` uses ``log(N)`` as penalty.
    aic_penalty : float
        AIC penalty per parameter; RBesT's ``automixfit`` uses 6 (favouring fewer components).
    constrain_gt1 : bool
        Passed to :func:`fit_mixture_em`.

    Returns
    -------
    AutoMixture
        With the approximation error (max CDF distance, mean/sd/quantile differences).
    """
    crit = str(criterion).upper()
    if crit not in ("AIC", "BIC"):
        raise PlanError(f"criterion must be 'AIC' or 'BIC' (found {criterion!r})")
    k_max = _check_count(k_max, "k_max", minimum=1)
    fits, scores = {}, {}
    for k in range(1, k_max + 1):
        f = fit_mixture_em(samples, k, constrain_gt1=constrain_gt1)
        fits[k] = f
        scores[k] = f.aic(aic_penalty) if crit == "AIC" else f.bic()
    best = min(scores, key=lambda k: (scores[k], k))
    mix = fits[best].mixture
    return AutoMixture(mixture=mix, k=mix.n_components, criterion=crit, scores=scores, fits=fits,
                       error=approximation_error(mix, samples))
