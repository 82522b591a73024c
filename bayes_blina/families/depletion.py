"""B-cell depletion (CD19): first-order decline to a patient floor, with a censored (M3) likelihood.

Blinatumomab engages CD19: circulating B cells (and CD19+ blasts) disappear within days of the
first infusion start and stay below the detection limit in most patients; a few patients do not
deplete. For analyte ``j`` and patient ``i``, an observation at time ``t`` (hours since the first
infusion start) has the noise-free count::

    N_ij(t) = B_ij * depletion(t; k_dep_ij, floor_ij)
            = B_ij * (floor_ij + (1 - floor_ij) * exp(-k_dep_ij * t))     (t > 0; B_ij before)
    log y   ~ Normal(log N_ij(t), sigma_obs_j)        (below the row's LOD/LLOQ: Beal's M3)

with :func:`bayes_blina.curves.depletion` (in its stable log form :func:`depletion_log_mean`, which
the simulator draws from too). Patients and population (per analyte)::

    log B_ij       ~ Normal(log_baseline_mu_j, sd_log_baseline_j)
    log k_dep_ij   ~ Normal(log_k_dep_mu_j [+ covariate effects], sd_log_k_dep_j)
    logit floor_ij ~ the prior ``logit_floor`` (independently per patient)

Censoring is essential: after the first days almost every result is below the LOD, and each such
row says only that ``N_ij(t)`` is probably below the limit. The floor of a depleted patient is
therefore known only to lie below about ``LOD / B_ij``; its posterior below that is the prior's.
That is why the summaries report ``depleted`` (the patient's floor is below 1% of the baseline;
its posterior mean is the probability that the patient depleted) rather than the floor itself.

Why the floors have no population distribution
----------------------------------------------
The floors of the patients who deplete are bounded only from above, and a patient who does not
deplete (floor 0.3 to 1) is far from the others on the logit scale, so a population distribution
of ``logit floor`` is not identified by the data (the chains split between a large floor and a
near-zero rate for a non-depleting patient; ``docs/sampling.md`` has the measurements). Each
patient's floor therefore has the same declared, wide prior ``logit_floor`` (override it by name),
which leaves one independent one-sided constraint per patient and gives well-mixing chains.

Sampling coordinates
--------------------
``log B`` (seen directly in the pre-treatment samples) and ``log k_dep`` are sampled centred. The
rate is seen only in patients sampled while counts fall (the "frequent" arms, 2 to 24 h after the
start); for the others a censored result 48 h after the start bounds it from below, a constraint
that is fixed in the centred coordinate but moves with the population mean and SD in a
non-centred one (``docs/sampling.md``).

The curve does not depend on the infusion events (the decline starts at the first start and is not
reset by later cycles), so no (observation, event) pairs are built.

Derived quantities
------------------
``log_floor`` (subject, analyte)
    ``log floor_ij``: log of the remaining fraction.
``depleted`` (subject, analyte)
    1 where ``floor_ij < 0.01`` (its posterior mean is the probability that the patient depleted).
``log_k_dep`` (subject, analyte)
    The patient's log depletion rate (1/h).
``typical_k_dep``, ``typical_half_life_h`` (analyte)
    ``exp(log_k_dep_mu)`` and ``log 2 / typical_k_dep``: the typical patient's rate and half-life.

Every row left out is recorded with its reason in ``data_use``.
"""
from __future__ import annotations

import math
from typing import Any, Literal, override

import numpy as np
from pydantic import ConfigDict, Field

from bayes_blina.families.base import Prepared
from bayes_blina.families.trajectory import TrajectoryFamily, TrajectoryOptions, _values
from bayes_blina.priors import Prior

__all__ = ["DEPLETED_BELOW", "DepletionModel", "DepletionOptions", "POPULATION_PARAMETERS",
           "depletion_log_mu"]

#: Population parameters (each with dimension ``analyte``), in summary order.
POPULATION_PARAMETERS: tuple[str, ...] = (
    "log_baseline_mu", "sd_log_baseline", "log_k_dep_mu", "sd_log_k_dep", "sigma_obs",
)

#: A patient counts as depleted when the floor is below this fraction of the baseline.
DEPLETED_BELOW = 0.01


class DepletionOptions(TrajectoryOptions):
    """Options of the depletion family (see the module docstring).

    Attributes
    ----------
    analytes : list of str
        Cell counts modelled (default CD19).
    covariates : list of str
        Subject covariates shifting ``log k_dep``: ``blast_burden``, ``age_group``, ``response``
        (descriptive only).
    cycles, max_event_lag_h, relative_to_baseline, censoring, gap_tol_h
        As in every trajectory family (:class:`~bayes_blina.families.trajectory.TrajectoryOptions`;
        ``max_event_lag_h`` is not used: the curve does not depend on the events).
    """

    model_config = ConfigDict(extra="forbid")
    analytes: list[str] = Field(default_factory=lambda: ["CD19"])
    covariates: list[Literal["blast_burden", "age_group", "response"]] = Field(default_factory=list)


class DepletionModel(TrajectoryFamily):
    """Depletion family of B-cell counts (see the module docstring).

    Default priors (each per analyte; override by name in the spec's ``[priors]`` table; counts on
    the log scale of cells/µL), centred on the adult study (baseline CD19 ~30/µL including blasts,
    depletion within days, mostly below the LOD of about 1/µL; see
    :mod:`bayes_blina.simulate.presets`) but wide:

    ``log_baseline_mu``  Normal(3, 2): typical baseline ~20/µL, 95% within 0.4 and 1,000/µL.
    ``sd_log_baseline``  HalfNormal(1.5): between-patient SD of log baselines (wide: CD19+ blasts
                         vary a lot).
    ``log_k_dep_mu``     Normal(log 0.05, 1.5): typical depletion rate 0.05/h (half-life 14 h),
                         95% within 0.003 and 0.95 /h.
    ``sd_log_k_dep``     HalfNormal(0.5): between-patient SD of the log rate.
    ``logit_floor``      Normal(-7, 4): every patient's remaining fraction (no population
                         distribution; see the module docstring): median ~1e-3, 95% within 4e-7
                         and 0.7, so both a full depletion and none are plausible; the data bound
                         it from above where results fall below the LOD.
    ``sigma_obs``        HalfNormal(0.5): residual SD of log counts.
    ``beta_<covariate>`` Normal(0, 1): difference of ``log k_dep`` of each level from the
                         reference level, per analyte.
    """

    name = "depletion"
    Options = DepletionOptions
    uses_events = False
    patient_vars = ("log_baseline", "log_k_dep", "log_floor")
    population_vars = ()
    analyte_prior_names = POPULATION_PARAMETERS + ("logit_floor",)

    @override
    def default_priors(self) -> dict[str, Prior]:
        rel = self.options.relative_to_baseline
        pri = {
            "log_baseline_mu": Prior("Normal", mu=0.0, sigma=0.5) if rel else Prior("Normal", mu=3.0, sigma=2.0),
            "sd_log_baseline": Prior("HalfNormal", sigma=0.5 if rel else 1.5),
            "log_k_dep_mu": Prior("Normal", mu=round(math.log(0.05), 6), sigma=1.5),
            "sd_log_k_dep": Prior("HalfNormal", sigma=0.5),
            "logit_floor": Prior("Normal", mu=-7.0, sigma=4.0),
            "sigma_obs": Prior("HalfNormal", sigma=0.5),
        }
        for f in self.options.covariates:
            pri[f"beta_{f}"] = Prior("Normal", mu=0.0, sigma=1.0)
        return pri

    # ------------------------------------------------------------------ model
    def add_to_model(self, prepared: Prepared, prefix: str = "") -> dict[str, Any]:
        """Add the depletion model to the current PyMC model (inside ``with model:``).

        Every variable is named ``prefix + name`` and every dimension ``prefix + dim``; the M3
        likelihood is the potential ``prefix + "loglik"``.

        Returns
        -------
        dict
            ``log_floor`` and ``log_baseline``: tensors (subject, analyte).
        """
        import pymc as pm
        import pytensor.tensor as pt

        self._ensure_coords(prepared, prefix)
        opt, A, q = self.options, prepared.arrays, prefix
        n_ana = len(opt.analytes)
        ana, sub = q + "analyte", q + "subject"
        lbm = self.create_prior("log_baseline_mu", q + "log_baseline_mu", dims=ana)
        sdb = self.create_prior("sd_log_baseline", q + "sd_log_baseline", dims=ana)
        lkm = self.create_prior("log_k_dep_mu", q + "log_k_dep_mu", dims=ana)
        sdk = self.create_prior("sd_log_k_dep", q + "sd_log_k_dep", dims=ana)
        sigma = self.create_prior("sigma_obs", q + "sigma_obs", dims=ana)
        eff = self.covariate_effects(prepared, q)
        log_base = pm.Normal(q + "log_baseline", lbm, sdb, dims=(sub, ana))
        log_k = pm.Normal(q + "log_k_dep", lkm + eff, sdk, dims=(sub, ana))
        logit_floor = self.create_prior("logit_floor", q + "logit_floor", dims=(sub, ana))
        log_floor = pm.Deterministic(q + "log_floor", -_softplus(-logit_floor, pt), dims=(sub, ana))

        cell = A["obs_subject"] * n_ana + A["obs_analyte"]
        mu = depletion_log_mean(log_base.flatten()[cell], log_k.flatten()[cell], logit_floor.flatten()[cell],
                                A["obs_time_h"], xp=pt)
        self.add_likelihood(prepared, mu, sigma[A["obs_analyte"]], prefix=q)

        pm.Deterministic(q + "depleted", pt.cast(pt.lt(log_floor, math.log(DEPLETED_BELOW)), "float64"),
                         dims=(sub, ana))
        pm.Deterministic(q + "typical_k_dep", pt.exp(lkm), dims=ana)
        pm.Deterministic(q + "typical_half_life_h", math.log(2.0) * pt.exp(-lkm), dims=ana)
        return {"log_floor": log_floor, "log_baseline": log_base}

    # ------------------------------------------------------------------ afterwards
    def mean_log(self, draws, prepared: Prepared) -> np.ndarray:
        """Noise-free log count of every row (numpy; :func:`depletion_log_mu`)."""
        return depletion_log_mu(draws, prepared.arrays)

    def typical_patient(self, draws) -> dict[str, np.ndarray]:
        """``log_baseline_mu``, ``log_k_dep_mu`` (covariates at their reference levels) and, as the
        floors have no population distribution, the median of the fitted patients' ``log_floor``
        in each draw."""
        return {"log_baseline": np.asarray(draws["log_baseline_mu"].values),
                "log_k_dep": np.asarray(draws["log_k_dep_mu"].values),
                "log_floor": np.median(np.asarray(draws["log_floor"].transpose(..., "subject", "analyte").values),
                                       axis=-2)}

    @override
    def summary_vars(self) -> list[str]:
        return (list(POPULATION_PARAMETERS) + [f"beta_{f}" for f in self.options.covariates]
                + ["typical_k_dep", "typical_half_life_h"])


def _softplus(x, xp):
    """``log(1 + e^x)`` without overflow, the same formula for numpy and pytensor."""
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-abs(x)))


def _log_depletion(t, log_k, logit_floor, xp):
    """``log curves.depletion(t, k, floor)`` computed stably from ``log k`` and ``logit floor``.

    ``log(floor + (1 - floor) e^{-kt}) = log(sigmoid(l) + sigmoid(-l) e^{-kt})
    = logaddexp(-softplus(-l), -softplus(l) - k t)`` with ``l = logit floor``; for ``t <= 0`` the
    curve is 1 (log 0), as :func:`bayes_blina.curves.depletion` gives.
    """
    tt = np.maximum(np.asarray(t, dtype=float), 0.0)
    a = -_softplus(-logit_floor, xp)
    b = -_softplus(logit_floor, xp) - xp.exp(log_k) * tt
    m = xp.maximum(a, b)
    return m + xp.log1p(xp.exp(-abs(a - b)))


def depletion_log_mean(log_baseline, log_k, logit_floor, t, *, xp=np):
    """The family's one mean formula: ``log B + log depletion(t; k, floor)`` of each row.

    Written once for numpy and ``pytensor.tensor`` (``xp``): the model, :func:`depletion_log_mu`
    (predictions, checks) and the simulator (:mod:`bayes_blina.simulate.cohort`) use it.

    Parameters
    ----------
    log_baseline, log_k, logit_floor : array_like
        Each row's log baseline count, log depletion rate (1/h) and logit of the remaining fraction.
    t : array_like
        Hours from the first infusion start (the curve is the baseline before 0).
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayes_blina.curves import depletion
    >>> t = np.array([-5.0, 0.0, 24.0, 240.0])
    >>> got = np.exp(depletion_log_mean(np.log(30.0), np.log(0.05), np.log(0.01 / 0.99), t))
    >>> bool(np.allclose(got, 30.0 * depletion(t, 0.05, 0.01)))
    True
    """
    return log_baseline + _log_depletion(t, log_k, logit_floor, xp)


def depletion_log_mu(draws, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Noise-free ``log`` count of every observation row, for each draw (numpy).

    Parameters
    ----------
    draws : xarray.Dataset or mapping
        Draws of ``log_baseline``, ``log_k_dep`` and ``log_floor`` (..., subject, analyte).
    arrays : dict
        :attr:`Prepared.arrays` of a depletion model.

    Returns
    -------
    numpy.ndarray
        Shape (..., obs): ``log B + log depletion(t; k_dep, floor)``
        (:func:`bayes_blina.curves.depletion`).
    """
    val = {k: _values(draws, k) for k in ("log_baseline", "log_k_dep", "log_floor")}
    s, a = arrays["obs_subject"], arrays["obs_analyte"]
    log_floor = val["log_floor"][..., s, a]
    logit_floor = log_floor - np.log(-np.expm1(np.minimum(log_floor, -1e-300)))
    return depletion_log_mean(val["log_baseline"][..., s, a], val["log_k_dep"][..., s, a], logit_floor,
                              arrays["obs_time_h"], xp=np)
