"""Dose-toxicity: Bayesian logistic regression of DLT on log dose (BLRM; Neuenschwander et al. 2008).

For a cohort of ``n`` patients at dose ``d`` (ug/m2/day) with ``y`` dose-limiting toxicities::

    y ~ Binomial(n, pi(d)),    logit pi(d) = log_alpha + exp(log_beta) * log(d / d_ref)

``d_ref`` is the spec option ``reference_dose``: ``alpha`` is the odds of a DLT at ``d_ref`` and
``beta > 0`` makes the DLT rate increase with dose. The prior of ``(log_alpha, log_beta)`` is
bivariate normal: the two declared priors (``Normal``, overridable by name as any prior) and the
option ``prior_correlation``. The defaults, ``log_alpha ~ Normal(0, 2)`` (a median DLT rate of 0.5
at ``d_ref`` with a wide spread) and ``log_beta ~ Normal(0, 1)``, are the weakly informative
prior of Neuenschwander et al. (2008) as used in OncoBayes2's single-agent example; they are not
tuned to the bundled data.

A step regimen (``'15-30'``: 15 in week 1, then 30) is placed at one dose, named by the option
``step_dose``: ``"first"`` (default) or ``"highest"``. ``first`` is the choice for blinatumomab: the
DLTs that set the pediatric MTD were mostly cytokine-release syndrome, which follows the first
infusion start and is lowered by starting low (both source papers); the one DLT on 15-30 happened
during the 15 week. Every placement is recorded in the fit's data use.

The model has two parameters, so its posterior is also computed by deterministic quadrature
(:func:`bayes_blina.safety.quadrature.grid_posterior` on :meth:`DoseToxicityModel.log_posterior`):
escalation decisions then carry no Monte Carlo error (``bayes-blina escalate``).

Strata and historical data (exchangeable / non-exchangeable priors) are not in this version: a
table with more than one ``study`` or ``stratum`` is refused unless ``pool_strata = true`` says to
treat all cohorts as one population.
"""
from __future__ import annotations

from typing import Any, Literal, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from bayes_blina.errors import DataValidationError, Problem, SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.priors import Prior


class DoseToxicityOptions(BaseModel):
    """Options of the dose-toxicity model."""

    model_config = ConfigDict(extra="forbid")
    #: d_ref (ug/m2/day): log_alpha is the log odds of a DLT at this dose.
    reference_dose: float = Field(15.0, gt=0)
    #: Correlation of log_alpha and log_beta in the prior (both priors must then be Normal).
    prior_correlation: float = Field(0.0, gt=-1.0, lt=1.0)
    #: Dose of a step regimen: its first (starting) step or its highest step.
    step_dose: Literal["first", "highest"] = "first"
    #: Treat the cohorts of several studies or strata as one population.
    pool_strata: bool = False


def dlt_logit(log_alpha, log_beta, log_dose_ratio, *, exp=np.exp):
    """The model's one mean formula: ``log_alpha + exp(log_beta) * log(d / d_ref)``.

    Works on numpy arrays (broadcasting draws against doses) and, with ``exp=pm.math.exp``, on
    PyTensor variables.

    Examples
    --------
    >>> import numpy as np
    >>> float(dlt_logit(np.log(0.5), 0.0, np.log(2.0)))  # beta = 1: odds 0.5 x 2 = 1
    0.0
    """
    return log_alpha + exp(log_beta) * log_dose_ratio


def step_dose_of(regimen: str, rule: str) -> float:
    """The dose (ug/m2/day) of a regimen label under ``rule`` (``"first"`` or ``"highest"``).

    Examples
    --------
    >>> step_dose_of("15-30", "first"), step_dose_of("15-30", "highest"), step_dose_of("5", "first")
    (15.0, 30.0, 5.0)
    """
    steps = [float(s) for s in str(regimen).split("-")]
    return steps[0] if rule == "first" else max(steps)


class DoseToxicityModel(ModelFamily):
    """Bayesian logistic regression of DLTs on log dose (see module docstring).

    Examples
    --------
    >>> from bayes_blina.data import read_dataset
    >>> from bayes_blina.families import DoseToxicityModel
    >>> prepared = DoseToxicityModel().prepare(read_dataset("vonstackelberg2016-escalation"))
    >>> prepared.arrays["dose"].tolist(), prepared.arrays["dlt"].tolist(), prepared.arrays["n"].tolist()
    ([5.0, 15.0, 30.0, 15.0], [0, 1, 2, 1], [5, 7, 5, 6])
    >>> prepared.data_use["placed"]
    [{'cohort': 'cohort 4', 'regimen': '15-30', 'dose': 15.0, 'rule': 'first'}]
    """

    name = "dose-toxicity"
    Options = DoseToxicityOptions

    @override
    def default_priors(self) -> dict[str, Prior]:
        return {"log_alpha": Prior("Normal", mu=0.0, sigma=2.0), "log_beta": Prior("Normal", mu=0.0, sigma=1.0)}

    def __init__(self, options=None, priors=None):
        super().__init__(options, priors)
        if self.options.prior_correlation != 0.0:
            bad = [k for k in ("log_alpha", "log_beta") if self.priors[k].dist != "Normal"]
            if bad:
                raise SpecError(f"prior_correlation = {self.options.prior_correlation} needs Normal priors for "
                                f"log_alpha and log_beta (a bivariate normal prior); {', '.join(bad)} "
                                f"is {self.priors[bad[0]].dist}")

    # -- data ----------------------------------------------------------------------------------
    @override
    def prepare(self, dataset) -> Prepared:
        t = getattr(dataset, "dlt", None)
        if t is None or len(t) == 0:
            raise DataValidationError([Problem(
                "dlt.csv", None, None,
                "the dose-toxicity model needs a dlt table (dlt.csv: one row per cohort with dose or regimen, "
                "n, dlt); the pediatric escalation cohorts are the bundled dataset "
                "'vonstackelberg2016-escalation'")])
        t = t.reset_index(drop=True)
        groups = {c: sorted(set(t[c].dropna().astype(str))) for c in ("study", "stratum") if c in t}
        several = {c: v for c, v in groups.items() if len(v) > 1}
        if several and not self.options.pool_strata:
            c, v = next(iter(several.items()))
            raise DataValidationError([Problem(
                "dlt.csv", c, None,
                f"cohorts of {len(v)} {c} values ({', '.join(v)}): strata and historical data (hierarchical "
                "priors) are not in this version; fit one at a time, or set the option pool_strata = true "
                "to treat them as one population")])
        dose = pd.to_numeric(t["dose"], errors="coerce").to_numpy(dtype=float, copy=True)
        labels = (t["cohort"].fillna("") if "cohort" in t else pd.Series([""] * len(t))).astype(str).tolist()
        labels = [lab or f"row {i + 1}" for i, lab in enumerate(labels)]
        placed = []
        for i in np.flatnonzero(~np.isfinite(dose)):
            reg = str(t["regimen"].iloc[i])
            dose[i] = step_dose_of(reg, self.options.step_dose)
            placed.append({"cohort": labels[i], "regimen": reg, "dose": float(dose[i]), "rule": self.options.step_dose})
        if len(set(labels)) != len(labels):
            labels = [f"{lab} ({i + 1})" for i, lab in enumerate(labels)]
        arrays = self.cohort_arrays(dose, t["n"], t["dlt"])
        use: dict[str, Any] = {"cohorts": len(t), "patients": int(arrays["n"].sum()), "dlts": int(arrays["dlt"].sum()),
                               "placed": placed, "left_out": []}
        if several:
            use["pooled"] = several
        return Prepared(arrays=arrays, coords={"cohort": labels}, data_use=use)

    def cohort_arrays(self, dose, n, dlt) -> dict[str, np.ndarray]:
        """The model's arrays for cohorts at ``dose`` with ``n`` patients and ``dlt`` DLTs (what
        :meth:`prepare` returns, and what a simulated trial builds as it goes)."""
        dose = np.asarray(dose, dtype=float)
        return {"dose": dose, "n": np.asarray(n, dtype=np.int64), "dlt": np.asarray(dlt, dtype=np.int64),
                "log_dose_ratio": np.log(dose / self.options.reference_dose)}

    # -- model ---------------------------------------------------------------------------------
    def _prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the bivariate normal prior of (log_alpha, log_beta)."""
        a, b = self.priors["log_alpha"].params, self.priors["log_beta"].params
        mean = np.array([a["mu"], b["mu"]], dtype=float)
        sd = np.array([a["sigma"], b["sigma"]], dtype=float)
        rho = self.options.prior_correlation
        return mean, np.outer(sd, sd) * np.array([[1.0, rho], [rho, 1.0]])

    @override
    def build(self, prepared: Prepared):
        import pymc as pm

        A = prepared.arrays
        with pm.Model(coords=prepared.coords) as model:
            if self.options.prior_correlation == 0.0:
                log_alpha = self.priors["log_alpha"].create("log_alpha")
                log_beta = self.priors["log_beta"].create("log_beta")
            else:  # bivariate normal, non-centred
                mean, cov = self._prior_moments()
                chol = np.linalg.cholesky(cov)
                z = pm.Normal("z_prior", 0.0, 1.0, shape=2)
                log_alpha = pm.Deterministic("log_alpha", mean[0] + chol[0, 0] * z[0])
                log_beta = pm.Deterministic("log_beta", mean[1] + chol[1, 0] * z[0] + chol[1, 1] * z[1])
            eta = dlt_logit(log_alpha, log_beta, A["log_dose_ratio"], exp=pm.math.exp)
            p = pm.Deterministic("p_dlt", pm.math.invlogit(eta), dims="cohort")
            pm.Binomial("y", n=A["n"], p=p, observed=A["dlt"], dims="cohort")
        return model

    @override
    def summary_vars(self) -> list[str]:
        return ["log_alpha", "log_beta", "p_dlt"]

    @override
    def prior_terms(self) -> dict[str, tuple[str, dict[str, Any]]]:
        if self.options.prior_correlation != 0.0:  # the declared priors are one bivariate normal
            return {}
        return super().prior_terms()

    # -- numpy: predictions and the log posterior ----------------------------------------------
    def p_dlt(self, log_alpha, log_beta, doses) -> np.ndarray:
        """P(DLT) at ``doses`` for each value of ``(log_alpha, log_beta)``: shape ``(..., dose)``."""
        x = np.log(np.asarray(doses, dtype=float) / self.options.reference_dose)
        eta = dlt_logit(np.asarray(log_alpha, dtype=float)[..., None], np.asarray(log_beta, dtype=float)[..., None], x)
        from scipy.special import expit

        return expit(eta)

    def log_alpha_below(self, log_beta, doses, p) -> np.ndarray:
        """The ``log_alpha`` below which ``pi(d) < p``, for each ``log_beta`` (rows) and dose:
        ``logit(p_d) - exp(log_beta) * log(d / d_ref)`` (the mean formula solved for log_alpha).
        Shape ``(len(log_beta), len(doses))``; ``p`` has one value per dose."""
        x = np.log(np.asarray(doses, dtype=float) / self.options.reference_dose)
        p = np.asarray(p, dtype=float)
        with np.errstate(divide="ignore"):
            logit_p = np.log(p) - np.log1p(-p)
        return logit_p[None, :] - dlt_logit(0.0, np.asarray(log_beta, dtype=float)[:, None], x[None, :])

    def log_posterior(self, log_alpha, log_beta, prepared: Prepared) -> np.ndarray:
        """Unnormalised log posterior density at ``(log_alpha, log_beta)`` (numpy, broadcasting).

        The same prior and likelihood as :meth:`build` (binomial constants dropped), for
        deterministic quadrature of the two-parameter posterior.
        """
        from scipy import stats

        la, lb = np.asarray(log_alpha, dtype=float), np.asarray(log_beta, dtype=float)
        if self.options.prior_correlation == 0.0:
            lp = sum(self._scipy_logpdf(self.priors[k], v) for k, v in (("log_alpha", la), ("log_beta", lb)))
        else:
            mean, cov = self._prior_moments()
            lp = stats.multivariate_normal(mean, cov).logpdf(np.stack([la, lb], axis=-1))
        A = prepared.arrays
        eta = dlt_logit(la[..., None], lb[..., None], A["log_dose_ratio"])
        # y log p + (n - y) log(1 - p), written stably: log p = -log1p(exp(-eta))
        ll = -(A["dlt"] * np.logaddexp(0.0, -eta) + (A["n"] - A["dlt"]) * np.logaddexp(0.0, eta))
        return lp + ll.sum(axis=-1)

    @staticmethod
    def _scipy_logpdf(prior: Prior, x: np.ndarray) -> np.ndarray:
        from scipy import stats

        p = prior.params
        if prior.dist == "Normal":  # written out: a frozen scipy distribution per call is 100x slower
            z = (x - p["mu"]) / p["sigma"]
            return -0.5 * z * z - np.log(p["sigma"]) - 0.5 * np.log(2.0 * np.pi)
        if prior.dist == "StudentT":
            return stats.t(p["nu"], p.get("mu", 0.0), p["sigma"]).logpdf(x)
        raise SpecError(f"quadrature of the dose-toxicity posterior supports Normal and StudentT priors of "
                        f"log_alpha and log_beta; this fit's is {prior.dist} (use the MCMC draws: --method mcmc)")
