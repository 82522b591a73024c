"""Meta-analytic-predictive (MAP) prior for the response rate of a new study.

Model (binomial, logit link, non-centred random effects; RBesT's ``gMAP`` with
``family=binomial``)::

    r_s   ~ Binomial(n_s, theta_s),        s = 1..S historical studies
    logit(theta_s) = mu + tau * z_s,       z_s ~ Normal(0, 1)
    mu    ~ Normal(m, s_mu)                (default Normal(0, 2))
    tau   ~ HalfNormal(scale)              (between-study sd on the logit scale)

The MAP prior is the predictive distribution of a new study's rate,
``theta_new = invlogit(mu + tau * z_new)`` with ``z_new ~ Normal(0, 1)``, drawn once or more per
posterior draw. It is then approximated by a beta mixture (EM, number of components by AIC as in
RBesT's ``automixfit``) so that it can be robustified, updated in closed form and used in the
design functions of :mod:`bayes_blina.plan.decision`.

MCMC runs through :func:`bayes_blina.inference.sample_model` (nutpie when installed) and is judged
by the convergence gate (:func:`bayes_blina.diagnostics.convergence_verdict`): a MAP prior from a
fit that fails the gate is refused (:class:`~bayes_blina.errors.ConvergenceError`) unless
``allow_unconverged=True``, in which case it is flagged (``converged=False``) and a warning is
issued.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaWarning, ConvergenceError, DataValidationError, Problem
from bayes_blina.plan.ess import ess_all
from bayes_blina.plan.mixture import AutoMixture, BetaMixture, PlanError, auto_mixture

log = logging.getLogger("bayes_blina")

DATA_DIR = Path(__file__).resolve().parent / "data"


def load_as_example() -> pd.DataFrame:
    """RBesT's ankylosing-spondylitis example: 8 historical placebo studies (``study, n, r``).

    Source: RBesT AS example data, RBesT vignette 1.9-0 (see ``bayes_blina/plan/data/README.md``).
    """
    return read_historical(DATA_DIR / "rbest_as.csv")


def _parse_prior(spec: Any, kind: str) -> tuple[str, tuple[float, ...]]:
    """``("HalfNormal", 1.0)``, ``"halfnormal:1"``, ``("Normal", 0, 2)`` or ``"normal:0:2"``."""
    if isinstance(spec, str):
        parts = spec.split(":")
        spec = (parts[0], *parts[1:])
    if not isinstance(spec, (tuple, list)) or not spec:
        raise PlanError(f"{kind} prior must be like {('HalfNormal', 1.0) if kind == 'tau' else ('Normal', 0, 2)} "
                        f"(found {spec!r})")
    name = str(spec[0]).strip().lower()
    try:
        params = tuple(float(p) for p in spec[1:])
    except (TypeError, ValueError):
        raise PlanError(f"{kind} prior parameters must be numbers (found {spec!r})") from None
    if not all(np.isfinite(params)):
        raise PlanError(f"{kind} prior parameters must be finite (found {spec!r})")
    if kind == "tau":
        allowed = {"halfnormal": 1, "halfcauchy": 1, "exponential": 1, "halfstudentt": 2}
    else:
        allowed = {"normal": 2}
    if name not in allowed:
        raise PlanError(f"unknown {kind} prior {spec[0]!r}; expected one of {', '.join(allowed)}")
    if len(params) != allowed[name]:
        raise PlanError(f"{kind} prior {spec[0]} takes {allowed[name]} parameter(s) (found {len(params)}: {spec!r})")
    if kind == "tau" and any(p <= 0 for p in params):
        raise PlanError(f"{kind} prior parameters must be positive (found {spec!r})")
    if kind == "mu" and params[1] <= 0:
        raise PlanError(f"mu prior sd must be positive (found {spec!r})")
    return name, params


def read_historical(path: str | Path) -> pd.DataFrame:
    """Read and validate a historical-studies CSV with columns ``study, n, r``.

    Raises
    ------
    DataValidationError
        Listing every problem with file, column and 1-based data row.
    """
    p = Path(path)
    if not p.is_file():
        raise PlanError(f"historical data file {str(p)!r} does not exist")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, comment=None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataValidationError([Problem(str(p), None, None, f"a readable CSV file ({e})")]) from None
    return validate_historical(df, source=str(p))


def validate_historical(df: pd.DataFrame, *, source: str = "historical") -> pd.DataFrame:
    """Check a ``study, n, r`` table; return it with ``n``, ``r`` as integers.

    Every study needs a non-empty unique name, ``n >= 1`` and ``0 <= r <= n`` (whole numbers).
    """
    if not isinstance(df, pd.DataFrame):
        raise PlanError(f"historical data must be a pandas DataFrame (found {type(df).__name__})")
    problems: list[Problem] = []
    cols = [str(c).strip() for c in df.columns]
    df = df.copy()
    df.columns = cols
    missing = [c for c in ("study", "n", "r") if c not in cols]
    for c in missing:
        problems.append(Problem(source, c, None, "a column named 'study', 'n' and 'r' (this one is missing)"))
    if missing:
        raise DataValidationError(problems)
    if len(df) == 0:
        raise DataValidationError([Problem(source, None, None, "at least one historical study (the file has no rows)")])
    values: dict[str, list[int | None]] = {"n": [], "r": []}
    for col in ("n", "r"):
        for i, v in enumerate(df[col].tolist(), start=1):
            try:
                x = float(str(v).strip())
                if not np.isfinite(x) or not x.is_integer():
                    raise ValueError
                values[col].append(int(x))
            except ValueError:
                problems.append(Problem(source, col, i, "a whole number", str(v)))
                values[col].append(None)
    names = [str(s).strip() for s in df["study"].tolist()]
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if not name:
            problems.append(Problem(source, "study", i, "a non-empty study name"))
        elif name in seen:
            problems.append(Problem(source, "study", i, f"a unique study name (also in row {seen[name]})", name))
        else:
            seen[name] = i
    for i, (n, r) in enumerate(zip(values["n"], values["r"]), start=1):
        if n is not None and n < 1:
            problems.append(Problem(source, "n", i, "at least 1 patient", str(n)))
        if r is not None and r < 0:
            problems.append(Problem(source, "r", i, "a non-negative number of responders", str(r)))
        if n is not None and r is not None and n >= 1 and r > n:
            problems.append(Problem(source, "r", i, f"at most n = {n} responders", str(r)))
    if problems:
        raise DataValidationError(problems)
    return pd.DataFrame({"study": names, "n": values["n"], "r": values["r"]}).astype({"n": int, "r": int})


def _build_model(hist: pd.DataFrame, tau_prior: tuple[str, tuple[float, ...]], mu_prior: tuple[str, tuple[float, ...]]):
    import pymc as pm

    n = hist["n"].to_numpy()
    r = hist["r"].to_numpy()
    coords = {"study": hist["study"].tolist()}
    name, params = tau_prior
    with pm.Model(coords=coords) as model:
        mu = pm.Normal("mu", mu=mu_prior[1][0], sigma=mu_prior[1][1])
        if name == "halfnormal":
            tau = pm.HalfNormal("tau", sigma=params[0])
        elif name == "halfcauchy":
            tau = pm.HalfCauchy("tau", beta=params[0])
        elif name == "exponential":
            tau = pm.Exponential("tau", lam=1.0 / params[0])
        else:
            tau = pm.HalfStudentT("tau", nu=params[0], sigma=params[1])
        z = pm.Normal("z", 0.0, 1.0, dims="study")
        theta = pm.Deterministic("theta", pm.math.invlogit(mu + tau * z), dims="study")
        pm.Binomial("r", n=n, p=theta, observed=r, dims="study")
    return model


@dataclass
class MAPResult:
    """A meta-analytic-predictive prior.

    Attributes
    ----------
    historical : pandas.DataFrame
        The studies used (``study, n, r``).
    tau_prior, mu_prior : tuple
        Priors as ``(name, params)``.
    idata : xarray.DataTree
        The MCMC fit (``mu``, ``tau``, ``z``, ``theta``).
    verdict : bayes_blina.diagnostics.Verdict
        The convergence gate's verdict.
    converged : bool
        ``verdict.passed``.
    samples : ndarray
        MAP draws of a new study's rate.
    mixture : BetaMixture
        The beta-mixture approximation of the MAP prior.
    fit : AutoMixture
        The mixture fit (all candidate ``k``, scores, approximation error).
    backend : str
        Sampler used.
    """

    historical: pd.DataFrame
    tau_prior: tuple[str, tuple[float, ...]]
    mu_prior: tuple[str, tuple[float, ...]]
    idata: Any = field(repr=False)
    verdict: Any
    converged: bool
    samples: np.ndarray = field(repr=False)
    mixture: BetaMixture
    fit: AutoMixture = field(repr=False)
    backend: str = ""

    @property
    def tau(self) -> np.ndarray:
        """Posterior draws of the between-study sd (logit scale)."""
        return np.asarray(self.idata.posterior["tau"].values).ravel()

    def tau_summary(self) -> dict[str, float]:
        """Mean, sd and 2.5/50/97.5% quantiles of ``tau``."""
        return _summ(self.tau)

    def sample_summary(self) -> dict[str, float]:
        """Mean, sd and 2.5/50/97.5% quantiles of the MAP draws."""
        return _summ(self.samples)

    def summary(self) -> pd.DataFrame:
        """One row each for ``tau``, the MAP samples and the mixture: mean, sd, q2.5, q50, q97.5,
        and the ESS of the mixture by each method (elir, moment, morita)."""
        rows = [{"quantity": "tau", **self.tau_summary()},
                {"quantity": "MAP (samples)", **self.sample_summary()},
                {"quantity": "MAP (mixture)", **self.mixture.summary()}]
        df = pd.DataFrame(rows)
        e = self.ess()
        for m, v in e.items():
            df[f"ess_{m}"] = [np.nan, np.nan, v]
        return df

    def ess(self) -> dict[str, float]:
        """ESS of the mixture approximation by each method."""
        return ess_all(self.mixture)


def _summ(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.025, 0.5, 0.975])
    return {"mean": float(np.mean(x)), "sd": float(np.std(x, ddof=1)), "q2.5": float(q[0]), "q50": float(q[1]),
            "q97.5": float(q[2])}


def map_prior(historical: pd.DataFrame, tau_prior: Any = ("HalfNormal", 1.0), mu_prior: Any = ("Normal", 0.0, 2.0),
              *, seed: int = 20161003, chains: int = 4, draws: int = 1000, tune: int = 1000,
              target_accept: float = 0.95, backend: str = "auto", predictive_per_draw: int = 2,
              k_max: int = 4, criterion: str = "AIC", allow_unconverged: bool = False, gate=None,
              progress: bool = False) -> MAPResult:
    """Derive the MAP prior of a new study's response rate from historical studies.

    Parameters
    ----------
    historical : pandas.DataFrame
        Columns ``study``, ``n`` (patients) and ``r`` (responders), one row per study.
    tau_prior : tuple or str
        Between-study sd prior: ``("HalfNormal", scale)`` (default scale 1, RBesT's recommended
        conservative default for rates between 0.2 and 0.8), ``("HalfCauchy", scale)``,
        ``("Exponential", mean)``, ``("HalfStudentT", nu, scale)``; or ``"halfnormal:0.5"``.
    mu_prior : tuple or str
        ``("Normal", mean, sd)`` on the logit-scale mean (default Normal(0, 2)).
    seed, chains, draws, tune, target_accept, backend : sampler settings
        Passed to :func:`bayes_blina.inference.sample_model`.
    predictive_per_draw : int
        New-study draws ``z_new`` per posterior draw (more smooths the sample the mixture is fitted to).
    k_max, criterion : int, str
        Passed to :func:`~bayes_blina.plan.mixture.auto_mixture`.
    allow_unconverged : bool
        Return a result flagged ``converged=False`` (with a warning) instead of raising when the
        convergence gate fails.
    gate : bayes_blina.spec.GateConfig, optional
        Gate thresholds (default: the package's).
    progress : bool
        Show the sampler's progress bar.

    Returns
    -------
    MAPResult

    Raises
    ------
    DataValidationError
        If the historical table is invalid.
    ConvergenceError
        If the fit fails the convergence gate and ``allow_unconverged`` is False.
    """
    from bayes_blina.diagnostics import convergence_verdict
    from bayes_blina.inference import sample_model
    from bayes_blina.spec import SamplerConfig

    hist = validate_historical(historical)
    tp = _parse_prior(tau_prior, "tau")
    mp = _parse_prior(mu_prior, "mu")
    k = int(predictive_per_draw)
    if k < 1:
        raise PlanError(f"predictive_per_draw must be at least 1 (found {predictive_per_draw!r})")
    try:
        sampler = SamplerConfig(backend=backend, chains=chains, draws=draws, tune=tune, seed=seed,
                                target_accept=target_accept)
    except Exception as e:  # pydantic ValidationError: report as a planning error
        raise PlanError(f"invalid sampler settings: {e}") from None
    model = _build_model(hist, tp, mp)
    idata, used = sample_model(model, sampler, progress=progress)
    verdict = convergence_verdict(idata, gate, var_names=["mu", "tau", "z"])
    log.info("MAP prior: %s", verdict)
    if not verdict.passed:
        if not allow_unconverged:
            raise ConvergenceError(
                f"refusing the MAP prior: its fit failed the convergence gate:\n{verdict}\n"
                "Rerun with more draws/tuning (or a higher target_accept), or pass allow_unconverged=True "
                "to get it flagged as unreliable.")
        warnings.warn(f"the MAP prior's fit FAILED the convergence gate; the prior is unreliable:\n{verdict}",
                      BayesBlinaWarning, stacklevel=2)
    post = as_dataset(idata.posterior)
    mu = np.asarray(post["mu"].values).ravel()
    tau = np.asarray(post["tau"].values).ravel()
    rng = np.random.default_rng([seed, 1])
    z_new = rng.standard_normal((mu.size, k))
    samples = (1.0 / (1.0 + np.exp(-(mu[:, None] + tau[:, None] * z_new)))).ravel()
    fit = auto_mixture(samples, k_max=k_max, criterion=criterion)
    return MAPResult(historical=hist, tau_prior=tp, mu_prior=mp, idata=idata, verdict=verdict,
                     converged=bool(verdict.passed), samples=samples, mixture=fit.mixture, fit=fit, backend=used)
